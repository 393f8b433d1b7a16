package blf

import (
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// kinds are the operation kinds the concern applies, the values of the "kind" label.
func kinds() []presence.OpKind { return []presence.OpKind{presence.OpDeviceState, presence.OpPresence} }

// metrics holds the concern's collectors; a nil *metrics counts nothing.
type metrics struct {
	ops *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_blf_ops_total",
		Help: "Lamp and presence operations applied, by kind (device_state, presence) and result (applied, unchanged, failed).",
	}, []string{"kind", "result"})
	if err := reg.Register(ops); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		ops = existing // a second Concern on the same registry shares the series
	}
	for _, k := range kinds() {
		for _, r := range []presence.Result{presence.ResultApplied, presence.ResultUnchanged, presence.ResultFailed} {
			ops.WithLabelValues(string(k), string(r))
		}
	}
	return &metrics{ops: ops}, nil
}

// count counts one outcome; kinds of other concerns (a misrouted operation) count as "other",
// which keeps the label set bounded.
func (m *metrics) count(k presence.OpKind, r presence.Result) {
	if m == nil {
		return
	}
	kind := "other"
	if slices.Contains(kinds(), k) {
		kind = string(k)
	}
	m.ops.WithLabelValues(kind, string(r)).Inc()
}
