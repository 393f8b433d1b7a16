package calendar

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	polls    *prometheus.CounterVec
	seen     prometheus.Counter
	planned  prometheus.Gauge
	failing  prometheus.Gauge
	switches *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_calendar_polls_total",
			Help: "Calendar polls, by source type (caldav, ics) and result (ok, unchanged, error).",
		}, []string{"type", "result"}),
		seen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_calendar_events_seen_total",
			Help: "Event instances read by successful calendar polls (within the plan's horizon).",
		}),
		planned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_calendar_planned_events",
			Help: "Events ahead that rules map to a profile, over every user's plan.",
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_calendar_sources_failing",
			Help: "Calendars whose last poll failed: their users' last known plans stay in force.",
		}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_calendar_switches_total",
			Help: "Calendar events acted on, by action (start, end) and result (switched, kept, skipped, refused, failed).",
		}, []string{"action", "result"}),
	}
	for _, t := range []string{"caldav", "ics"} {
		for _, r := range []string{"ok", "unchanged", "error"} {
			m.polls.WithLabelValues(t, r)
		}
	}
	for _, a := range []string{"start", "end"} {
		for _, r := range []string{"switched", "kept", "skipped", "refused", "failed"} {
			m.switches.WithLabelValues(a, r)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.polls, m.seen, m.planned, m.failing, m.switches} {
			if err := reg.Register(c); err != nil {
				return m, fmt.Errorf("calendar: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
