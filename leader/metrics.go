package leader

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	leader        prometheus.Gauge
	changes       prometheus.Counter
	renewFailures prometheus.Counter
	epoch         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg) // a nil Registerer makes unregistered metrics
	return &metrics{
		leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_leader",
			Help: "1 while this instance leads (applies changes to its Asterisk), 0 while it is a standby.",
		}),
		changes: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_leader_changes_total",
			Help: "Terms this instance started leading; summed over the instances, the changes of leader.",
		}),
		renewFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_leader_lease_renew_failures_total",
			Help: "Renewals of the leader lease that failed: Redis did not answer in time, too few replicas confirmed them (Options.Confirm), or the lease was found lost.",
		}),
		epoch: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_leader_epoch",
			Help: "Epoch (fencing token) of the current term as this instance last saw it: its own while it leads; 0 before it saw one.",
		}),
	}
}
