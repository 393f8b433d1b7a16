package presence

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// storeMetrics is a go-redis hook that times every command and pipeline.
type storeMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	f := promauto.With(reg)
	return &storeMetrics{
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_redis_command_duration_seconds",
			Help:    "Round-trip time of state-store commands (a pipeline counts as one, command \"pipeline\").",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"command"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_redis_errors_total",
			Help: "State-store commands that failed (not counting a missing key).",
		}, []string{"command"}),
	}
}

func (m *storeMetrics) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (m *storeMetrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		m.observe(strings.ToLower(cmd.Name()), start, err)
		return err
	}
}

func (m *storeMetrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		m.observe("pipeline", start, err)
		return err
	}
}

func (m *storeMetrics) observe(command string, start time.Time, err error) {
	m.duration.WithLabelValues(command).Observe(time.Since(start).Seconds())
	if err != nil && err != redis.Nil {
		m.errors.WithLabelValues(command).Inc()
	}
}
