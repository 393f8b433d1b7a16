package lab

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Lazy is a lab started by the first test that asks for it (Env), so that a package's pure
// tests run on a machine without Docker: `go test ./presence -run 'Plan|Desire|Compile'`
// starts nothing. A test that needs the lab fails (never skips) when it cannot start. Run the
// package's tests with MainLazy, which stops the lab if a test started it.
type Lazy struct {
	// Options say which parts to start.
	Options Options

	once sync.Once
	env  *Env
	err  error
}

// Env returns the lab, starting it at the first call; t fails with the reason when it cannot
// start (then every later call fails the same way, without trying again).
func (l *Lazy) Env(t testing.TB) *Env {
	t.Helper()
	l.once.Do(func() {
		timeout := l.Options.StartTimeout
		if timeout == 0 {
			timeout = 20 * time.Minute
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		l.env, l.err = Start(ctx, l.Options)
	})
	if l.err != nil {
		t.Fatalf("lab: cannot start the test lab (this test needs Docker and the lab images): %v", l.err)
	}
	return l.env
}

// MainLazy runs the tests and stops the lab if one of them started it. It returns the exit
// code for os.Exit.
func MainLazy(m *testing.M, l *Lazy) int {
	code := m.Run()
	if l.env == nil {
		return code
	}
	if code != 0 && l.env.asterisk != nil {
		l.env.dumpAsteriskLog()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.env.Close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "lab: stop: %v\n", err)
	}
	return code
}
