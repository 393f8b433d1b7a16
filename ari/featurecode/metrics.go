package featurecode

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the application's Prometheus collectors.
type metrics struct {
	calls       *prometheus.CounterVec
	pinFailures prometheus.Counter
	lockouts    prometheus.Counter
	latency     prometheus.Histogram
	active      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_featurecode_calls_total",
			Help: "Feature-code calls (*55), by how they ended.",
		}, []string{"result"}),
		pinFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_featurecode_pin_failures_total",
			Help: "Wrong PINs keyed in on feature-code calls.",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_featurecode_lockouts_total",
			Help: "Users whose feature codes were locked after too many wrong PINs.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_featurecode_switch_latency_seconds",
			Help:    "Time from the last digit of a feature-code call to the confirmation prompt starting, the switch applied in between.",
			Buckets: []float64{.01, .025, .05, .075, .1, .15, .2, .3, .5, 1, 2.5, 5},
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_featurecode_active_calls",
			Help: "Feature-code calls in progress.",
		}),
	}
	for _, r := range Results() {
		m.calls.WithLabelValues(string(r))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.pinFailures, m.lockouts, m.latency, m.active} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("featurecode: register metrics: %w", err)
		}
	}
	return m, nil
}
