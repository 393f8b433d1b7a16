// The tests of this package run against the real lab Asterisk 22 (internal/lab): the concern
// acts as the daemon's least-privilege AMI user, and every result is checked by reading the PBX
// through a second client logged in as the lab's test user, never from the concern's memory.
// Tests share one Asterisk and isolate themselves with unique astdb families, globals and
// extensions 92xx/93xx.
package astdb_test

import (
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

// newConcern returns an astdb concern on its own daemon-user client, and that client's
// metrics registry.
func newConcern(t testing.TB, maxInFlight int) (*astdb.Concern, *prometheus.Registry) {
	t.Helper()
	c, reg := env.DaemonAMI(t)
	con, err := astdb.New(astdb.Options{AMI: c, Logger: lab.Logger(t), Registerer: reg, MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	return con, reg
}

func ptr(s string) *string { return &s }
