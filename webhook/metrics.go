package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the concern's collectors; a nil *metrics counts nothing.
type metrics struct {
	calls *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_webhook_calls_total",
		Help: "Webhook operations by result: success (2xx), status (another status), timeout, error (no request, connection error, cancelled).",
	}, []string{"result"})
	if err := reg.Register(calls); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		calls = existing // a second Concern on the same registry shares the series
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
