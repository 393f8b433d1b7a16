// Package integration tests the ami package against the real lab Asterisk 22
// (internal/lab): every typed helper, with the least-privilege user the
// daemon runs as. It fails, not skips, when the lab cannot start.
//
// The tests share one Asterisk and run in any order: each uses unique
// astdb families, member interfaces, globals and device names.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// uniq returns prefix plus 8 random hex digits (letters and digits only, so
// it is safe in astdb names, where '_' and '%' are LIKE wildcards).
func uniq(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// uniqDigits returns n random decimal digits.
func uniqDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

type clientOpts struct {
	test     bool // log in as the all-powerful test user instead of the daemon's
	mod      func(*ami.Config)
	noBooted bool // do not wait for FullyBooted
}

// newClient runs a Client against the lab and waits until Asterisk is
// fully booted on it. It is stopped at cleanup.
func newClient(t testing.TB, o clientOpts) *ami.Client {
	t.Helper()
	cfg := ami.Config{
		Addr:         env.AMIAddr,
		Username:     env.AMIUser,
		Secret:       env.AMISecret,
		PingInterval: 2 * time.Second,
		BackoffMin:   20 * time.Millisecond,
		BackoffMax:   200 * time.Millisecond,
		Logger:       logger(t),
		Registerer:   prometheus.NewRegistry(),
	}
	if o.test {
		cfg.Username, cfg.Secret = env.AMITestUser, env.AMITestSecret
	}
	if o.mod != nil {
		o.mod(&cfg)
	}
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatalf("ami.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	if !o.noBooted {
		waitFor(t, "FullyBooted", func() bool { return c.Status().FullyBooted })
	}
	return c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent returns the first event from sub that match accepts.
func waitEvent(t testing.TB, sub *ami.Subscription, what string, match func(*ami.Message) bool) *ami.Message {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription closed while waiting for %s", what)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s event within 15s", what)
		}
	}
}

// wantResponseError checks that err carries Asterisk's message want.
func wantResponseError(t testing.TB, what string, err error, want string) {
	t.Helper()
	msg, ok := ami.ResponseMessage(err)
	if !ok || msg != want {
		t.Errorf("%s: got error %v, want Asterisk's %q", what, err, want)
	}
}

// metricValue returns the value of an unlabelled gauge or counter.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
