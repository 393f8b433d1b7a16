// The tests of this package run against the real lab Asterisk 22 (internal/lab): the concern
// acts as the daemon's least-privilege AMI user, and every result is checked by reading the PBX
// through a second client logged in as the lab's test user, never from the concern's memory.
// Tests share one Asterisk and isolate themselves with unique astdb families, globals and
// extensions 92xx/93xx.
package astdb_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/astdb"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

func logger(t testing.TB) *slog.Logger { return lab.Logger(t) }

func uniq(prefix string) string { return lab.Unique(prefix) }

func testCtx(t testing.TB) context.Context { return lab.Context(t) }

// newAMI returns a client of the lab; test picks the lab's all-powerful test user.
func newAMI(t testing.TB, test bool, reg prometheus.Registerer) *ami.Client {
	return env.AMI(t, test, func(c *ami.Config) { c.Registerer = reg })
}

// newConcern returns an astdb concern on its own daemon-user client, and that client's
// metrics registry.
func newConcern(t testing.TB, maxInFlight int) (*astdb.Concern, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := astdb.New(astdb.Options{AMI: newAMI(t, false, reg), Logger: logger(t), Registerer: reg, MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func actions(t testing.TB, reg *prometheus.Registry, action string) int {
	return lab.ActionCount(t, reg, action)
}

func dbGet(t testing.TB, c *ami.Client, fullKey string) *string { return lab.DBGet(t, c, fullKey) }

func getvar(t testing.TB, c *ami.Client, name string) string { return lab.Getvar(t, c, name) }

func ptr(s string) *string { return &s }

func show(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return "\"" + *p + "\""
}

func results(out []presence.Outcome) []presence.Result {
	r := make([]presence.Result, len(out))
	for i, o := range out {
		r[i] = o.Result
	}
	return r
}
