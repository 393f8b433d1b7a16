// The tests of this package run against the real lab Asterisk 22 (internal/lab): the concern
// acts as the daemon's least-privilege AMI user, and every result is checked by reading the PBX
// through a second client logged in as the lab's test user, never from the concern's memory.
// Tests share one Asterisk and isolate themselves with unique Custom: devices and
// CustomPresence: providers; the lab hints 1001 and *761001 (Custom:DND1001) are restored.
package blf_test

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

// newConcern returns a blf concern on its own daemon-user client, and that client's
// metrics registry.
func newConcern(t testing.TB, maxInFlight int) (*blf.Concern, *prometheus.Registry) {
	t.Helper()
	c, reg := env.DaemonAMI(t)
	con, err := blf.New(blf.Options{AMI: c, Logger: lab.Logger(t), Registerer: reg, MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	return con, reg
}
