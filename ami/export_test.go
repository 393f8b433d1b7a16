package ami

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

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

// Raw is an action given by name and headers, for the tests: they send what no typed
// action sends.
type Raw struct {
	Name    string
	Headers []Header
}

// ActionName implements [Action].
func (r Raw) ActionName() string { return r.Name }

// ActionHeaders implements [Action].
func (r Raw) ActionHeaders() ([]Header, error) {
	for _, h := range r.Headers {
		if err := validateHeader(h.Key, h.Value); err != nil {
			return nil, err
		}
	}
	return r.Headers, nil
}

// ParseDeviceStatus parses a state name such as "NOT_INUSE" (any case), the inverse of
// DeviceStatus.String.
func ParseDeviceStatus(name string) (DeviceStatus, bool) {
	for i, n := range deviceStatusNames() {
		if strings.EqualFold(n, name) {
			return DeviceStatus(i), true
		}
	}
	return DeviceUnknown, false
}

// QueuedForTest is how many actions wait for the socket on c's connection.
func QueuedForTest(c *Client) int {
	cn := c.current()
	if cn == nil {
		return 0
	}
	cn.qmu.Lock()
	defer cn.qmu.Unlock()
	return len(cn.queue)
}
