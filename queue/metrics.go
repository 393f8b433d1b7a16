package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
)

// Results used as the "result" label of presenced_queue_actions_total.
const (
	resultSuccess      = "success"      // Asterisk answered Success
	resultUnchanged    = "unchanged"    // an idempotent refusal: "Already there", "Not there"
	resultError        = "error"        // Asterisk refused, or the action could not be encoded
	resultTimeout      = "timeout"      // ctx ended before the reply
	resultDisconnected = "disconnected" // not connected, or the connection dropped
)

// The AMI actions the concern sends, as the "action" label.
var actionNames = []string{"QueueAdd", "QueueRemove", "QueuePause", "QueuePenalty", "QueueStatus"}

// metrics holds the concern's collectors. They always exist; with a nil Registerer they are
// not registered anywhere.
type metrics struct {
	actions         *prometheus.CounterVec
	observeDuration prometheus.Histogram
	membersObserved prometheus.Gauge
	coalesced       prometheus.Counter
	observedKnown   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_queue_actions_total",
			Help: "AMI actions sent by the queue concern, by action and result: success, unchanged (Already there, Not there), error, timeout, disconnected.",
		}, []string{"action", "result"}),
		observeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_queue_observe_duration_seconds",
			Help:    "Duration of a queue observation (one QueueStatus of every queue).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		membersObserved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_queue_members_observed",
			Help: "Queue members (of all queues, static ones included) seen in the last QueueStatus.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_queue_pause_coalesced_ops_total",
			Help: "queue_pause operations served by one QueuePause without Queue instead of one action each.",
		}),
		observedKnown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_queue_observed_known_total",
			Help: "Users whose queue members an observation took from what the queue concern knew (its last read, its own changes and its events) instead of reading them.",
		}),
	}
	for _, a := range actionNames {
		for _, r := range []string{resultSuccess, resultUnchanged, resultError, resultTimeout, resultDisconnected} {
			m.actions.WithLabelValues(a, r)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.actions, m.observeDuration, m.membersObserved, m.coalesced, m.observedKnown} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("queue: Options.Registerer: %w", err)
		}
	}
	return m, nil
}

// resultOf classifies the error of an AMI call for the actions metric. idempotent says whether
// the refusal is one the concern treats as success.
func resultOf(err error, idempotent bool) string {
	var re *ami.ResponseError
	switch {
	case err == nil:
		return resultSuccess
	case idempotent:
		return resultUnchanged
	case errors.As(err, &re):
		return resultError
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return resultTimeout
	case errors.Is(err, ami.ErrNotConnected), errors.Is(err, ami.ErrConnClosed):
		return resultDisconnected
	}
	return resultError
}
