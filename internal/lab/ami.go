package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
)

// AMI runs an ami.Client against the lab Asterisk until the test ends and returns it once
// Asterisk is fully booted. admin picks the lab's test user, allowed everything (to check what
// presenced did, as an admin's tool would), instead of the daemon's least-privilege user.
// mod, when not nil, adjusts the configuration (a Registerer, a Dial hook, Events...).
func (e *Env) AMI(t testing.TB, admin bool, mod func(*ami.Config)) *ami.Client {
	t.Helper()
	cfg := ami.Config{
		Addr:       e.AMIAddr,
		Username:   e.AMIUser,
		Secret:     e.AMISecret,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
	}
	if admin {
		cfg.Username, cfg.Secret = e.AMITestUser, e.AMITestSecret
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatalf("lab: ami.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lab: ami Run: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !c.Status().FullyBooted {
		if time.Now().After(deadline) {
			t.Fatalf("lab: AMI not fully booted: %+v", c.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// DaemonAMI is AMI as the daemon's least-privilege user, the client a concern under test runs
// on, with a registry of its own for the client's metrics (what ActionCount reads).
func (e *Env) DaemonAMI(t testing.TB) (*ami.Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return e.AMI(t, false, func(c *ami.Config) { c.Registerer = reg }), reg
}

// Logger is a debug-level slog.Logger writing to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Unique returns prefix plus 8 random hex digits: letters and digits only, safe in astdb names
// (where '_' and '%' are LIKE wildcards), device names and global names.
func Unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Context is a minute-long context ended with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ActionCount returns presenced_ami_actions_total{action,result="success"} from reg: how many
// actions of that name a client with that registry sent successfully.
func ActionCount(t testing.TB, reg prometheus.Gatherer, action string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "presenced_ami_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var a, r string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "action":
					a = l.GetValue()
				case "result":
					r = l.GetValue()
				}
			}
			if a == action && r == "success" {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// DBGet reads "FAMILY/key" from the PBX: its value, or nil when it does not exist.
func DBGet(t testing.TB, c *ami.Client, fullKey string) *string {
	t.Helper()
	fam, key, _ := strings.Cut(fullKey, "/")
	v, err := c.DBGet(context.Background(), fam, key)
	if msg, ok := ami.ResponseMessage(err); ok && msg == "Database entry not found" {
		return nil
	}
	if err != nil {
		t.Fatalf("lab: DBGet %s: %v", fullKey, err)
	}
	return &v
}

// Show prints a value DBGet returned: quoted, or <nil> when the key does not exist.
func Show(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return "\"" + *p + "\""
}

// Getvar reads a global variable or function (e.g. DEVICE_STATE(Custom:X)) from the PBX.
func Getvar(t testing.TB, c *ami.Client, name string) string {
	t.Helper()
	v, err := c.Getvar(context.Background(), "", name)
	if err != nil {
		t.Fatalf("lab: Getvar %s: %v", name, err)
	}
	return v
}
