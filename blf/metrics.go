package blf

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/internal/opcount"
	"github.com/presenced/presenced/presence"
)

// kinds are the operation kinds the concern applies, the values of the "kind" label.
func kinds() []presence.OpKind {
	return []presence.OpKind{presence.OpDeviceState, presence.OpPresence}
}

// newMetrics counts the concern's operations (presenced_blf_ops_total); nil reg counts nothing.
func newMetrics(reg prometheus.Registerer) (*opcount.Counter, error) {
	return opcount.New(reg, "presenced_blf_ops_total",
		"Lamp and presence operations applied, by kind (device_state, presence) and result (applied, unchanged, failed).", kinds())
}
