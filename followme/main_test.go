// The tests of this package run against the real lab Asterisk 22 (internal/lab): the concern
// acts as the daemon's least-privilege AMI user, and every result is checked by reading the PBX
// through a second client logged in as the lab's test user, never from the concern's memory.
// Tests share one Asterisk and isolate themselves with unique astdb families, globals and
// extensions 92xx/93xx.
package followme_test

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
	"github.com/presenced/presenced/followme"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
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

// uniq returns prefix plus 8 random hex digits: letters and digits only, safe in astdb names
// (where '_' and '%' are LIKE wildcards) and in global names.
func uniq(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newAMI runs an ami.Client against the lab until the test ends and waits for FullyBooted.
// test selects the lab's all-powerful test user (for checking) instead of the daemon's.
func newAMI(t testing.TB, test bool, reg prometheus.Registerer) *ami.Client {
	t.Helper()
	cfg := ami.Config{
		Addr:       env.AMIAddr,
		Username:   env.AMIUser,
		Secret:     env.AMISecret,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond,
		Registerer: reg,
	}
	if test {
		cfg.Username, cfg.Secret = env.AMITestUser, env.AMITestSecret
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
		if err := <-done; err != nil {
			t.Errorf("ami Run: %v", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !c.Status().FullyBooted {
		if time.Now().After(deadline) {
			t.Fatalf("AMI not fully booted: %+v", c.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// newConcern returns a followme concern on its own daemon-user client, and that client's
// metrics registry.
func newConcern(t testing.TB, maxInFlight int) (*followme.Concern, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := followme.New(followme.Options{AMI: newAMI(t, false, reg), Logger: logger(t), Registerer: reg, MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// actions returns presenced_ami_actions_total{action,result="success"} from reg.
func actions(t testing.TB, reg *prometheus.Registry, action string) int {
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

// dbGet reads family/key from the PBX: its value, or nil when it does not exist.
func dbGet(t testing.TB, c *ami.Client, fullKey string) *string {
	t.Helper()
	fam, key, _ := strings.Cut(fullKey, "/")
	v, err := c.DBGet(context.Background(), fam, key)
	if msg, ok := ami.ResponseMessage(err); ok && msg == "Database entry not found" {
		return nil
	}
	if err != nil {
		t.Fatalf("DBGet %s: %v", fullKey, err)
	}
	return &v
}

func getvar(t testing.TB, c *ami.Client, name string) string {
	t.Helper()
	v, err := c.Getvar(context.Background(), "", name)
	if err != nil {
		t.Fatalf("Getvar %s: %v", name, err)
	}
	return v
}

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
