package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/internal/promshare"
)

// metrics holds the concern's collectors; a nil *metrics counts nothing.
type metrics struct {
	calls *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	// A second Concern on the same registry shares the series.
	calls, err := promshare.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_webhook_calls_total",
		Help: "Webhook operations by result: success (2xx), status (another status), timeout, error (no request, connection error, cancelled).",
	}, []string{"result"}))
	if err != nil {
		return nil, err
	}
	for _, r := range []string{resultSuccess, resultStatus, resultTimeout, resultError} {
		calls.WithLabelValues(r)
	}
	return &metrics{calls: calls}, nil
}

func (m *metrics) count(result string) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(result).Inc()
}
