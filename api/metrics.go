package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the API's Prometheus metrics. Routes are ServeMux patterns, never raw paths,
// so the label sets stay bounded.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, routes []string) *metrics {
	f := promauto.With(reg) // a nil Registerer makes unregistered metrics
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_api_requests_total",
			Help: "REST API requests by route (the ServeMux pattern) and status code.",
		}, []string{"route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_api_request_duration_seconds",
			Help:    "Time to answer a REST API request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	for _, r := range routes {
		m.duration.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
