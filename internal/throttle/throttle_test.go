package throttle

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Redis: true}, func(e *lab.Env) { env = e }))
}

// newClock is the clock of the memory counters.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

func memLimiter(t *testing.T, c *fakeclock.Clock, maxKeys int) *Limiter {
	t.Helper()
	l, err := New(Options{Failures: 3, Window: time.Minute, Block: 10 * time.Minute, MaxKeys: maxKeys,
		Timeout: time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestMemoryLimitsBlockAndExpire(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := memLimiter(t, c, 100)
	for i, want := range []time.Duration{0, 0, 10 * time.Minute} {
		n, blocked := l.Fail(ctx, "192.0.2.1")
		if n != i+1 || blocked != want {
			t.Fatalf("failure %d: %d, blocked %v; want %v", i+1, n, blocked, want)
		}
		c.Advance(time.Second)
	}
	if got := l.Blocked(ctx, "192.0.2.1"); got != 10*time.Minute-time.Second {
		t.Fatalf("Blocked = %v, want the rest of the block (9m59s)", got)
	}
	if got := l.Blocked(ctx, "192.0.2.2"); got != 0 {
		t.Fatalf("another key is blocked for %v", got)
	}
	c.Advance(10 * time.Minute)
	if got := l.Blocked(ctx, "192.0.2.1"); got != 0 {
		t.Fatalf("still blocked %v after the block", got)
	}
	// A new window starts with a new count.
	if n, blocked := l.Fail(ctx, "192.0.2.1"); n != 1 || blocked != 0 {
		t.Fatalf("after the block: %d, %v", n, blocked)
	}
}

func TestMemoryWindowExpires(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := memLimiter(t, c, 100)
	l.Fail(ctx, "k")
	l.Fail(ctx, "k")
	c.Advance(time.Minute) // the window of the first failure ends
	if n, blocked := l.Fail(ctx, "k"); n != 1 || blocked != 0 {
		t.Fatalf("a failure after the window: %d, blocked %v; want a fresh count", n, blocked)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	l := memLimiter(t, c, 50)
	for range 3 { // blocked: kept over unblocked ones
		l.Fail(ctx, "attacker")
	}
	for i := range 1000 {
		l.Fail(ctx, fmt.Sprintf("198.51.100.%d/%d", i%256, i))
		c.Advance(time.Millisecond)
		if n := l.Len(); n > 50 {
			t.Fatalf("%d keys in memory, MaxKeys 50", n)
		}
	}
	if l.Blocked(ctx, "attacker") == 0 {
		t.Fatal("a blocked key was evicted while unblocked ones could go")
	}
	// Expired entries go first.
	c.Advance(time.Hour)
	l.Fail(ctx, "fresh")
	if n := l.Len(); n != 1 {
		t.Fatalf("%d keys after everything expired and one new failure, want 1", n)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Failures = 0 }, "Options.Failures"},
		{func(o *Options) { o.Window = 0 }, "Options.Window"},
		{func(o *Options) { o.Block = 0 }, "Options.Block"},
		{func(o *Options) { o.MaxKeys = 0 }, "Options.MaxKeys"},
		{func(o *Options) { o.Timeout = 0 }, "Options.Timeout"},
		{func(o *Options) { o.Redis = redis.NewClient(&redis.Options{}) }, "Options.KeyPrefix"},
	} {
		o := DefaultOptions()
		tc.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New = %v, want %q", err, tc.want)
		}
	}
}

func labRedis(t *testing.T) *redis.Client { t.Helper(); return env.RedisClient(t, nil) }

func redisLimiter(t *testing.T, rdb redis.Cmdable, prefix string, window, block time.Duration) *Limiter {
	t.Helper()
	o := DefaultOptions()
	o.Redis, o.KeyPrefix, o.Failures, o.Window, o.Block = rdb, prefix, 3, window, block
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRedisCountsAcrossInstances: two limiters on one Redis (two presenced instances) share the
// count, and the block shows in Redis with its expiry.
func TestRedisCountsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	rdb := labRedis(t)
	prefix := fmt.Sprintf("throttletest:%d:", time.Now().UnixNano())
	a := redisLimiter(t, rdb, prefix, time.Minute, 10*time.Minute)
	b := redisLimiter(t, rdb, prefix, time.Minute, 10*time.Minute)
	if n, blocked := a.Fail(ctx, "203.0.113.9"); n != 1 || blocked != 0 {
		t.Fatalf("first failure: %d, %v", n, blocked)
	}
	if ttl := rdb.PTTL(ctx, prefix+"203.0.113.9").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %v after the first failure, want the window", ttl)
	}
	b.Fail(ctx, "203.0.113.9")
	if a.Blocked(ctx, "203.0.113.9") != 0 {
		t.Fatal("blocked after 2 of 3 failures")
	}
	n, blocked := a.Fail(ctx, "203.0.113.9")
	if n != 3 || blocked != 10*time.Minute {
		t.Fatalf("third failure (second instance's count included): %d, blocked %v", n, blocked)
	}
	for _, l := range []*Limiter{a, b} {
		if got := l.Blocked(ctx, "203.0.113.9"); got <= 9*time.Minute || got > 10*time.Minute {
			t.Fatalf("Blocked = %v, want about 10m on both instances", got)
		}
	}
	if got := b.Blocked(ctx, "203.0.113.10"); got != 0 {
		t.Fatalf("another address blocked for %v", got)
	}
	if a.Len() != 0 || b.Len() != 0 {
		t.Fatal("counted in memory while Redis answers")
	}
}

// TestRedisWindowAndBlockExpire with real expiries of a few hundred milliseconds.
func TestRedisWindowAndBlockExpire(t *testing.T) {
	ctx := context.Background()
	rdb := labRedis(t)
	prefix := fmt.Sprintf("throttletest:%d:", time.Now().UnixNano())
	l := redisLimiter(t, rdb, prefix, 300*time.Millisecond, 600*time.Millisecond)
	l.Fail(ctx, "k")
	l.Fail(ctx, "k")
	time.Sleep(400 * time.Millisecond)
	if n, blocked := l.Fail(ctx, "k"); n != 1 || blocked != 0 {
		t.Fatalf("after the window: %d, blocked %v; want a fresh count", n, blocked)
	}
	l.Fail(ctx, "k")
	if _, blocked := l.Fail(ctx, "k"); blocked != 600*time.Millisecond {
		t.Fatalf("blocked %v, want 600ms", blocked)
	}
	time.Sleep(700 * time.Millisecond)
	if got := l.Blocked(ctx, "k"); got != 0 {
		t.Fatalf("blocked %v after the block ended", got)
	}
}

// TestRedisDownCountsInMemory: with Redis unreachable the limiter still blocks, from memory,
// says so once in the log and counts the errors.
func TestRedisDownCountsInMemory(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	o := DefaultOptions()
	o.Redis, o.KeyPrefix, o.Failures = rdb, "throttletest:", 3
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	o.Registerer = reg
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l.Fail(ctx, "192.0.2.7")
	}
	if got := l.Blocked(ctx, "192.0.2.7"); got <= 14*time.Minute {
		t.Fatalf("Blocked = %v with Redis down, want the 15m block from memory", got)
	}
	if n := strings.Count(logs.String(), "redis failed"); n != 1 {
		t.Fatalf("%d log lines about the Redis failure, want 1:\n%s", n, logs.String())
	}
	if got := testutil.ToFloat64(l.redisErrs); got < 1 {
		t.Fatalf("presenced_throttle_redis_errors_total = %v", got)
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"peer", "192.0.2.1:5000", nil, proxies, "192.0.2.1"},
		{"peer ipv6", "[2001:db8::1]:5000", nil, proxies, "2001:db8::1"},
		{"mapped ipv4", "[::ffff:192.0.2.1]:5000", nil, proxies, "192.0.2.1"},
		{"forwarded header from an untrusted peer is ignored", "192.0.2.1:5000", []string{"198.51.100.7"}, proxies, "192.0.2.1"},
		{"no trusted proxies: header ignored", "10.0.0.5:5000", []string{"198.51.100.7"}, nil, "10.0.0.5"},
		{"trusted proxy", "10.0.0.5:5000", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"client-supplied left part ignored", "10.0.0.5:5000", []string{"6.6.6.6, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"chain of trusted proxies", "10.0.0.5:5000", []string{"198.51.100.7, 10.1.1.1", "10.2.2.2"}, proxies, "198.51.100.7"},
		{"all trusted: leftmost", "10.0.0.5:5000", []string{"10.9.9.9, 10.1.1.1"}, proxies, "10.9.9.9"},
		{"garbage stops at the proxy that wrote it", "10.0.0.5:5000", []string{"198.51.100.7, junk"}, proxies, "10.0.0.5"},
		{"hop with a port", "10.0.0.5:5000", []string{"[2001:db8::7]:443"}, proxies, "2001:db8::7"},
		{"trusted proxy without header", "10.0.0.5:5000", nil, proxies, "10.0.0.5"},
		{"unknown peer", "@", nil, proxies, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := ClientAddr(r, tc.trusted).String(); got != tc.want {
				t.Errorf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := Key(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Key(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := Key(netip.Addr{}); got != "unknown" {
		t.Errorf("Key(zero) = %s", got)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.1.2.3/8", "10.0.0.0/8", ""},
		{"10.0.0.1", "10.0.0.1/32", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"::1", "::1/128", ""},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", ""},
		{"10.0.0/8", "", "not an address or a CIDR"},
		{"proxy.example", "", "not an address or a CIDR"},
	} {
		p, err := ParsePrefix(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePrefix(%q) = %v, %v; want error %q", tc.in, p, err, tc.err)
		case tc.err == "" && (err != nil || p.String() != tc.want):
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}
