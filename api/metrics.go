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
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	authFailures      *prometheus.CounterVec
	throttled         prometheus.Counter
	hashVerifications prometheus.Counter
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
		authFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_api_auth_failures_total",
			Help: "Requests refused because their credentials were wrong, by reason (invalid_token, unknown_user, wrong_token, malformed); missing credentials are not counted.",
		}, []string{"reason"}),
		throttled: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_api_throttled_total",
			Help: "Requests refused with 429 because their client address had too many failed authentications.",
		}),
		hashVerifications: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_api_hash_verifications_total",
			Help: "Presented tokens verified against an argon2id or bcrypt hash (not found in the cache of verified credentials).",
		}),
	}
	for _, r := range routes {
		m.duration.WithLabelValues(r)
	}
	for _, r := range authFailureReasons() {
		m.authFailures.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
