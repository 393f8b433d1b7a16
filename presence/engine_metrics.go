package presence

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type engineMetrics struct {
	switches       *prometheus.CounterVec
	switchDuration *prometheus.HistogramVec
	ops            *prometheus.CounterVec
	observeBatch   prometheus.Histogram
	observeTime    prometheus.Histogram
	observeErrors  prometheus.Counter
	pendingRetries prometheus.Gauge
	driftRepairs   prometheus.Counter
	flapping       prometheus.Counter
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	f := promauto.With(reg) // a nil Registerer makes unregistered metrics
	m := &engineMetrics{
		switches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_switches_total",
			Help: "Profile switches by source and result (in_sync, drift: some operation failed and a repair is pending).",
		}, []string{"source", "result"}),
		switchDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_switch_duration_seconds",
			Help:    "Time from a switch request to the PBX state applied.",
			Buckets: []float64{.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		ops: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_operations_total",
			Help: "PBX operations of switches and repairs by kind and result.",
		}, []string{"kind", "result"}),
		observeBatch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_observe_batch_users",
			Help:    "Users served by one batched read of the PBX.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		observeTime: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_observe_duration_seconds",
			Help:    "Time of one batched read of the PBX.",
			Buckets: prometheus.DefBuckets,
		}),
		observeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_observe_errors_total",
			Help: "Batched reads of the PBX that failed.",
		}),
		driftRepairs: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_drift_repairs_total",
			Help: "Repairs, asked for by a change the PBX reported, that found drift and put it back.",
		}),
		flapping: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_drift_flapping_total",
			Help: "Times a user's PBX state kept being changed back and was reported instead of repaired again.",
		}),
		pendingRetries: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_repairs_pending",
			Help: "Users whose last switch or repair failed and who wait for a retry.",
		}),
	}
	for _, s := range []Source{SourceAPI, SourceFeatureCode, SourceSchedule, SourceExternal, SourceExpiry, SourceSystem} {
		for _, r := range []string{"in_sync", "drift"} {
			m.switches.WithLabelValues(string(s), r)
		}
	}
	return m
}

func (m *engineMetrics) switched(src Source, inSync bool, took time.Duration) {
	r := "in_sync"
	if !inSync {
		r = "drift"
	}
	m.switches.WithLabelValues(string(src), r).Inc()
	m.switchDuration.WithLabelValues(string(src)).Observe(took.Seconds())
}

func (m *engineMetrics) op(o Outcome) {
	m.ops.WithLabelValues(string(o.Op.Kind), string(o.Result)).Inc()
}

func (m *engineMetrics) observed(users int, took time.Duration, err error) {
	m.observeBatch.Observe(float64(users))
	m.observeTime.Observe(took.Seconds())
	if err != nil {
		m.observeErrors.Inc()
	}
}
