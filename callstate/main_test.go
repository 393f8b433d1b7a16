// The tests of this package run against the real lab Asterisk 22 (internal/lab); they stand
// Custom: devices with unique names in for phones, whose states change only with calls.
package callstate_test

import (
	"os"
	"testing"

	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}
