package ari

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsRegistration(t *testing.T) {
	cfg := Config{URL: "http://127.0.0.1:1/ari", Username: "u", Password: "p", App: "presenced"}
	if _, err := New(cfg); err != nil { // nil Registerer: no metrics, no panic
		t.Fatalf("New without Registerer: %v", err)
	}

	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.metrics.events.WithLabelValues("StasisStart").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"presenced_ari_connected",
		"presenced_ari_reconnects_total",
		"presenced_ari_request_duration_seconds",
		"presenced_ari_events_total",
		"presenced_ari_events_dropped_total",
		"presenced_ari_orphans_hungup_total",
	} {
		if !got[name] {
			t.Errorf("metric %s not registered", name)
		}
	}

	// A second client on the same registry is refused, not a panic, and
	// leaves nothing half-registered behind.
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("second New on the same registry: %v, want a registration error", err)
	}
}
