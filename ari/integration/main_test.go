// Package integration tests the ari package against the real lab Asterisk
// 22 (internal/lab), driving calls over AMI as docs/asterisk.md §8 describes.
// It fails, not skips, when the lab cannot start.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func uniq(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// amiClient returns an AMI client of the lab's test user, fully booted.
func amiClient(t *testing.T) *ami.Client {
	t.Helper()
	c, err := ami.New(ami.Config{Addr: env.AMIAddr, Username: env.AMITestUser, Secret: env.AMITestSecret, Logger: logger(t)})
	if err != nil {
		t.Fatalf("ami.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 20*time.Second, func() bool { return c.Status().FullyBooted }, "AMI fully booted")
	return c
}

// running is an ari.Client running in the background.
type running struct {
	*ari.Client
	reg   *prometheus.Registry
	hooks chan struct{} // one value per OnReconnect call
	stop  func()        // cancels Run and waits for it; idempotent
}

// startARI starts a client for application "itest-<instance>" at url
// ("" means the lab's ARI URL).
func startARI(t *testing.T, instance, url string) *running {
	t.Helper()
	if url == "" {
		url = env.ARIURL
	}
	r := &running{reg: prometheus.NewRegistry(), hooks: make(chan struct{}, 16)}
	c, err := ari.New(ari.Config{
		URL:            url,
		Username:       env.ARIUser,
		Password:       env.ARIPassword,
		App:            "itest",
		InstanceID:     instance,
		RequestTimeout: 5 * time.Second,
		PingInterval:   time.Second,
		OnReconnect:    func(context.Context) { r.hooks <- struct{}{} },
		Logger:         logger(t),
		Registerer:     r.reg,
	})
	if err != nil {
		t.Fatalf("ari.New: %v", err)
	}
	r.Client = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) waitHook(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-r.hooks:
	case <-time.After(d):
		t.Fatalf("OnReconnect not called within %v; status %+v", d, r.Status())
	}
}

// waitEvent reads events until match returns true.
func waitEvent(t *testing.T, c *ari.Client, d time.Duration, what string, match func(ari.Event) bool) ari.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %s", what)
			}
			t.Logf("event %s", ev.GetType())
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFeatureCode places a call from 1001 to *55<n> as docs/asterisk.md §8 describes
// and returns the uniqueid of the ;2 half, the one that enters Stasis.
func dialFeatureCode(t *testing.T, ctx context.Context, a *ami.Client, n string) string {
	t.Helper()
	id := uniq("it-")
	err := a.Originate(ctx, ami.OriginateSpec{
		Channel:        "Local/*55" + n + "@presenced-features",
		Application:    "Wait",
		Data:           "30",
		CallerID:       `"Alice" <1001>`,
		Async:          true,
		ChannelID:      id + "-1",
		OtherChannelID: id + "-2",
	})
	if err != nil {
		t.Fatalf("originate: %v", err)
	}
	return id + "-2"
}

// newProxy puts a lab.Proxy in front of Asterisk's HTTP server and returns
// it with the ARI URL through it, to break the events websocket without
// touching Asterisk.
func newProxy(t *testing.T) (*lab.Proxy, string) {
	t.Helper()
	p, err := lab.NewProxy(env.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, "http://" + p.Addr() + "/ari"
}
