// The tests of this package run against the real lab Asterisk 22 (internal/lab); they stand
// Custom: devices with unique names in for phones, whose states change only with calls.
package callstate_test

import (
	"context"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

func uniq(prefix string) string { return lab.Unique(prefix) }

func testCtx(t testing.TB) context.Context { return lab.Context(t) }

// newAMI returns a client of the lab; test picks the lab's all-powerful test user.
func newAMI(t testing.TB, test bool, reg prometheus.Registerer) *ami.Client {
	return env.AMI(t, test, func(c *ami.Config) { c.Registerer = reg })
}
