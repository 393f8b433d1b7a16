// Package opcount counts the operations a concern package applies, by kind and result, in one
// counter per concern (presenced_<concern>_ops_total).
package opcount

import (
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// Counter counts outcomes; a nil *Counter counts nothing.
type Counter struct {
	ops   *prometheus.CounterVec
	kinds []presence.OpKind
}

// New registers name (help) on reg with labels kind and result, the series of every kind and
// result made at 0. A second concern on the same registry shares the counter. A nil reg gives
// a nil Counter.
func New(reg prometheus.Registerer, name, help string, kinds []presence.OpKind) (*Counter, error) {
	if reg == nil {
		return nil, nil
	}
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind", "result"})
	if err := reg.Register(ops); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		ops = existing
	}
	for _, k := range kinds {
		for _, r := range []presence.Result{presence.ResultApplied, presence.ResultUnchanged, presence.ResultFailed} {
			ops.WithLabelValues(string(k), string(r))
		}
	}
	return &Counter{ops: ops, kinds: kinds}, nil
}

// Count counts one outcome. Kinds the concern does not apply (a misrouted operation) count as
// "other", which keeps the label set bounded.
func (c *Counter) Count(k presence.OpKind, r presence.Result) {
	if c == nil {
		return
	}
	kind := "other"
	if slices.Contains(c.kinds, k) {
		kind = string(k)
	}
	c.ops.WithLabelValues(kind, string(r)).Inc()
}
