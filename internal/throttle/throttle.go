// Package throttle slows down guessing: it counts failed attempts (wrong tokens, later wrong
// passwords) per key, usually the client's address (Key, ClientAddr), and blocks a key that
// failed too often. The REST API asks Blocked before it verifies any credential, so a blocked
// client learns nothing, not even from a right guess, and calls Fail after a wrong one.
//
// The counters live in Redis, so every instance serving the API sees the failures of all and
// a block holds across restarts. When Redis fails, they are counted in this process's memory,
// bounded by Options.MaxKeys, until Redis answers again.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// redisRetry is how long the limiter counts in memory after a Redis error before it tries
// Redis again, so that an outage costs one timeout every few seconds, not one per request.
const redisRetry = 5 * time.Second

// Options configures a Limiter.
type Options struct {
	// Redis holds the counters, shared by every instance; nil keeps them in memory only.
	Redis redis.Cmdable
	// KeyPrefix starts the Redis keys: <KeyPrefix><key>. Required with Redis.
	KeyPrefix string
	// Failures within Window block a key for Block, counted from the failure that reached the
	// limit. The window starts at the first failure.
	Failures int
	Window   time.Duration
	Block    time.Duration
	// MaxKeys bounds the keys counted in memory. When it is reached, expired entries are
	// dropped first, then the unblocked entry that expires soonest, then the blocked one that
	// does.
	MaxKeys int
	// Timeout bounds each Redis call.
	Timeout time.Duration
	// Logger hears when Redis fails and comes back; nil discards.
	Logger *slog.Logger
	// Registerer receives presenced_throttle_redis_errors_total; nil leaves it unregistered.
	// Wrap it with a label when several limiters share a registry.
	Registerer prometheus.Registerer
	// Now is the clock of the memory counters; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions are 10 failures within 5 minutes block for 15 minutes, 10,000 keys in memory,
// and Redis calls of at most 500 ms.
func DefaultOptions() Options {
	return Options{Failures: 10, Window: 5 * time.Minute, Block: 15 * time.Minute, MaxKeys: 10000,
		Timeout: 500 * time.Millisecond}
}

func (o Options) validate() error {
	switch {
	case o.Failures < 1:
		return fmt.Errorf("throttle: Options.Failures must be at least 1, got %d", o.Failures)
	case o.Window < time.Millisecond:
		return fmt.Errorf("throttle: Options.Window must be at least 1ms, got %v", o.Window)
	case o.Block < time.Millisecond:
		return fmt.Errorf("throttle: Options.Block must be at least 1ms, got %v", o.Block)
	case o.MaxKeys < 1:
		return fmt.Errorf("throttle: Options.MaxKeys must be at least 1, got %d", o.MaxKeys)
	case o.Timeout <= 0:
		return fmt.Errorf("throttle: Options.Timeout must be positive, got %v", o.Timeout)
	case o.Redis != nil && o.KeyPrefix == "":
		return errors.New("throttle: Options.KeyPrefix is required with Options.Redis")
	}
	return nil
}

// Limiter counts failures per key. It is safe for concurrent use.
type Limiter struct {
	opts      Options
	log       *slog.Logger
	redisErrs prometheus.Counter
	// redisDownUntil is when Redis is tried again after an error (UnixNano; 0: Redis is up).
	redisDownUntil atomic.Int64

	mu  sync.Mutex
	mem map[string]*entry
}

// entry is a key's failures in memory: n failures in the window or block that ends at expires.
type entry struct {
	n       int
	expires time.Time
}

// New checks opts and returns a Limiter.
func New(opts Options) (*Limiter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Limiter{
		opts: opts,
		log:  opts.Logger,
		redisErrs: promauto.With(opts.Registerer).NewCounter(prometheus.CounterOpts{
			Name: "presenced_throttle_redis_errors_total",
			Help: "Redis errors of the failure counters; the failures were counted in memory instead.",
		}),
		mem: map[string]*entry{},
	}, nil
}

// failScript counts one failure of KEYS[1]: the first starts the window (ARGV[2] ms), the one
// that reaches the limit (ARGV[1]) starts the block (ARGV[3] ms). It returns the count and the
// key's remaining time in ms.
var failScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == tonumber(ARGV[1]) then
  ttl = tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
elseif ttl < 0 then
  ttl = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {n, ttl}
`)

// Blocked reports how much longer key is blocked; zero when it is not.
func (l *Limiter) Blocked(ctx context.Context, key string) time.Duration {
	if l.useRedis() {
		ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
		defer cancel()
		var get *redis.StringCmd
		var ttl *redis.DurationCmd
		_, err := l.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, l.opts.KeyPrefix+key)
			ttl = p.PTTL(ctx, l.opts.KeyPrefix+key)
			return nil
		})
		if err == nil || errors.Is(err, redis.Nil) {
			l.redisUp()
			n, err := get.Int()
			if err != nil || n < l.opts.Failures || ttl.Val() <= 0 {
				return 0
			}
			return ttl.Val()
		}
		l.redisFailed(ctx, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.mem[key]
	now := l.opts.Now()
	if e == nil || !now.Before(e.expires) || e.n < l.opts.Failures {
		return 0
	}
	return e.expires.Sub(now)
}

// Fail counts a failure of key. It returns the failures counted in the current window and how
// long key is now blocked (zero when it is not).
func (l *Limiter) Fail(ctx context.Context, key string) (failures int, blocked time.Duration) {
	if l.useRedis() {
		ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
		defer cancel()
		res, err := failScript.Run(ctx, l.opts.Redis, []string{l.opts.KeyPrefix + key},
			l.opts.Failures, l.opts.Window.Milliseconds(), l.opts.Block.Milliseconds()).Int64Slice()
		if err == nil && len(res) == 2 {
			l.redisUp()
			if res[0] < int64(l.opts.Failures) {
				return int(res[0]), 0
			}
			return int(res[0]), time.Duration(res[1]) * time.Millisecond
		}
		if err == nil {
			err = fmt.Errorf("unexpected answer %v", res)
		}
		l.redisFailed(ctx, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	e := l.mem[key]
	if e != nil && !now.Before(e.expires) {
		e = nil
	}
	if e == nil {
		l.makeRoom(now)
		e = &entry{expires: now.Add(l.opts.Window)}
		l.mem[key] = e
	}
	e.n++
	if e.n == l.opts.Failures {
		e.expires = now.Add(l.opts.Block)
	}
	if e.n < l.opts.Failures {
		return e.n, 0
	}
	return e.n, e.expires.Sub(now)
}

// makeRoom keeps the memory counters below MaxKeys before one is added. l.mu is held.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.mem) < l.opts.MaxKeys {
		return
	}
	for k, e := range l.mem {
		if !now.Before(e.expires) {
			delete(l.mem, k)
		}
	}
	for len(l.mem) >= l.opts.MaxKeys {
		var victim string
		var ve *entry
		for k, e := range l.mem {
			if ve == nil || less(e, ve, l.opts.Failures) {
				victim, ve = k, e
			}
		}
		delete(l.mem, victim)
	}
}

// less reports whether a is to go before b: unblocked before blocked, then the sooner expiry.
func less(a, b *entry, limit int) bool {
	if ab, bb := a.n >= limit, b.n >= limit; ab != bb {
		return !ab
	}
	return a.expires.Before(b.expires)
}

// Len is the number of keys counted in memory.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mem)
}

func (l *Limiter) useRedis() bool {
	if l.opts.Redis == nil {
		return false
	}
	until := l.redisDownUntil.Load()
	return until == 0 || l.opts.Now().UnixNano() >= until
}

func (l *Limiter) redisFailed(ctx context.Context, err error) {
	l.redisErrs.Inc()
	if l.redisDownUntil.Swap(l.opts.Now().Add(redisRetry).UnixNano()) == 0 {
		l.log.WarnContext(ctx, "throttle: redis failed; counting failures in memory until it answers", "err", err)
	}
}

func (l *Limiter) redisUp() {
	if l.redisDownUntil.Swap(0) != 0 {
		l.log.Info("throttle: redis answers again; failures are counted there")
	}
}
