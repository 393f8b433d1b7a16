package ami

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results used as the "result" label of presenced_ami_actions_total.
const (
	resultSuccess      = "success"
	resultError        = "error"
	resultTimeout      = "timeout"
	resultDisconnected = "disconnected"
	resultGated        = "gated" // kept off the wire by Config.Gate
)

// metrics holds the client's collectors. They always exist; with a nil
// Registerer they are simply not registered anywhere.
type metrics struct {
	connected      prometheus.Gauge
	fullyBooted    prometheus.Gauge
	reconnects     prometheus.Counter
	actionDuration *prometheus.HistogramVec
	actions        *prometheus.CounterVec
	events         *prometheus.CounterVec
	eventsDropped  prometheus.Counter
	lateReplies    prometheus.Counter
	protocolErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_ami_connected",
			Help: "1 while the AMI connection is up and logged in, else 0.",
		}),
		fullyBooted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_ami_fully_booted",
			Help: "1 once Asterisk reported FullyBooted on the current connection, else 0.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ami_reconnects_total",
			Help: "AMI connections re-established (logged in again) after the first one.",
		}),
		actionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_ami_action_duration_seconds",
			Help:    "Round-trip time of AMI actions that got a reply (lists: until the Complete event).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"action"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_ami_actions_total",
			Help: "AMI actions by result: success, error (Response: Error or not encodable), timeout (caller's ctx ended), disconnected, gated (kept off the wire: this instance does not lead).",
		}, []string{"action", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_ami_events_total",
			Help: "AMI events received from Asterisk (not list items), by event name.",
		}, []string{"event"}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ami_events_dropped_total",
			Help: "Events not delivered to a subscriber whose buffer was full (the subscriber gets a Resync).",
		}),
		lateReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ami_late_replies_total",
			Help: "Replies dropped because their caller had given up (ctx done) or the ActionID is unknown.",
		}),
		protocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_ami_protocol_errors_total",
			Help: "Bad input from the server that was skipped, by kind.",
		}, []string{"kind"}),
	}
	for _, k := range []string{ProblemGarbage, ProblemMalformed, ProblemLineTooLong, ProblemTooLarge} {
		m.protocolErrors.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.connected, m.fullyBooted, m.reconnects, m.actionDuration,
		m.actions, m.events, m.eventsDropped, m.lateReplies, m.protocolErrors}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			// A second Client on the same registry shares the series.
			cs[i] = are.ExistingCollector
		}
	}
	m.connected = asType(cs[0], m.connected)
	m.fullyBooted = asType(cs[1], m.fullyBooted)
	m.reconnects = asType(cs[2], m.reconnects)
	m.actionDuration = asType(cs[3], m.actionDuration)
	m.actions = asType(cs[4], m.actions)
	m.events = asType(cs[5], m.events)
	m.eventsDropped = asType(cs[6], m.eventsDropped)
	m.lateReplies = asType(cs[7], m.lateReplies)
	m.protocolErrors = asType(cs[8], m.protocolErrors)
	return m, nil
}

func asType[T any](c prometheus.Collector, def T) T {
	if t, ok := c.(T); ok {
		return t
	}
	return def
}

// precreate makes the series of the typed actions exist at 0.
func (m *metrics) precreate(actions []string) {
	for _, a := range actions {
		for _, r := range []string{resultSuccess, resultError, resultTimeout, resultDisconnected} {
			m.actions.WithLabelValues(a, r)
		}
	}
}
