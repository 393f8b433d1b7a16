package ari

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation labels of presenced_ari_request_duration_seconds, one per REST
// call the client makes. They are pre-created so that dashboards see zeros.
const (
	opPing           = "ping"
	opAnswer         = "answer"
	opHangup         = "hangup"
	opContinue       = "continue"
	opPlay           = "play"
	opStopPlayback   = "stop_playback"
	opGetChannelVar  = "get_channel_var"
	opSetChannelVar  = "set_channel_var"
	opGetGlobalVar   = "get_global_var"
	opSetGlobalVar   = "set_global_var"
	opGetApplication = "get_application"
	opSubscribe      = "subscribe"
	opUnsubscribe    = "unsubscribe"
	opSetDeviceState = "set_device_state"
	opUserEvent      = "user_event"
	opGetChannel     = "get_channel"
)

// metrics are the client's Prometheus collectors.
type metrics struct {
	connected       prometheus.Gauge
	reconnects      prometheus.Counter
	requestDuration *prometheus.HistogramVec
	events          *prometheus.CounterVec
	dropped         prometheus.Counter
	orphans         prometheus.Counter
}

// newMetrics builds the collectors and registers them with reg unless reg
// is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_ari_connected",
			Help: "1 while the ARI events websocket is connected and set up, else 0.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ari_reconnects_total",
			Help: "Successful ARI connects after the first one.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_ari_request_duration_seconds",
			Help:    "Duration of ARI REST requests, failed ones included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_ari_events_total",
			Help: "ARI events received from Asterisk, by event type.",
		}, []string{"type"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ari_events_dropped_total",
			Help: "ARI events dropped because the consumer's buffer was full.",
		}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_ari_orphans_hungup_total",
			Help: "Channels found in our Stasis application on connect and hung up.",
		}),
	}
	for _, op := range []string{
		opPing, opAnswer, opHangup, opContinue, opPlay, opStopPlayback,
		opGetChannelVar, opSetChannelVar, opGetGlobalVar, opSetGlobalVar,
		opGetApplication, opSubscribe, opUnsubscribe, opSetDeviceState,
		opUserEvent, opGetChannel,
	} {
		m.requestDuration.WithLabelValues(op)
	}
	if reg == nil {
		return m, nil
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{m.connected, m.reconnects, m.requestDuration, m.events, m.dropped, m.orphans} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("ari: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}
