package ami

import "github.com/prometheus/client_golang/prometheus"

// TestMetrics exposes a Client's collectors to the external tests, for
// testutil.ToFloat64.
type TestMetrics struct {
	Connected, FullyBooted, Reconnects, EventsDropped, LateReplies prometheus.Collector
	Actions, Events, ProtocolErrors                                *prometheus.CounterVec
	ActionDuration                                                 *prometheus.HistogramVec
}

// MetricsForTest returns c's collectors.
func MetricsForTest(c *Client) TestMetrics {
	m := c.met
	return TestMetrics{
		Connected: m.connected, FullyBooted: m.fullyBooted, Reconnects: m.reconnects,
		EventsDropped: m.eventsDropped, LateReplies: m.lateReplies,
		Actions: m.actions, Events: m.events, ProtocolErrors: m.protocolErrors,
		ActionDuration: m.actionDuration,
	}
}

// EscapeAppArgForTest exposes escapeAppArg.
var EscapeAppArgForTest = escapeAppArg

// SplitDBKeyForTest exposes splitDBKey.
var SplitDBKeyForTest = splitDBKey
