package ari

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testLogger logs through t.Log, so logs show up only for failed tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testConfig(t *testing.T, url string) Config {
	return Config{
		URL:            url,
		Username:       fakeUser,
		Password:       fakePass,
		App:            "presenced",
		InstanceID:     "t1",
		RequestTimeout: time.Second,
		Logger:         testLogger(t),
	}
}

// harness is a Client running in the background.
type harness struct {
	*Client
	reg   *prometheus.Registry
	hooks atomic.Int32 // OnReconnect calls
	stop  func()
}

// start creates a client from cfg with a fresh registry, short backoff
// and an OnReconnect counter, and runs it until the test ends.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with a hook that runs before Run starts.
func startWith(t *testing.T, cfg Config, before func(*Client)) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	cfg.Registerer = h.reg
	user := cfg.OnReconnect
	cfg.OnReconnect = func(ctx context.Context) {
		if user != nil {
			user(ctx)
		}
		h.hooks.Add(1)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.backoffMin, c.backoffMax = 20*time.Millisecond, 200*time.Millisecond
	h.Client = c
	if before != nil {
		before(c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped atomic.Bool
	h.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	}
	t.Cleanup(h.stop)
	return h
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvent reads events until match returns true, skipping the others.
func waitEvent(t *testing.T, c *Client, d time.Duration, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed while waiting")
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no matching event within %v", d)
		}
	}
}

func isResync(reason string) func(Event) bool {
	return func(ev Event) bool {
		r, ok := ev.(*Resync)
		return ok && r.Reason == reason
	}
}
