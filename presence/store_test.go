package presence

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
)

// theLab is the lab Redis (and Sentinel groups), started by the first test that needs it:
// the pure tests (Plan, Desire, Compile, ...) run without Docker.
var theLab = &lab.Lazy{Options: lab.Options{Redis: true}}

// labEnv is the lab, started at the first call; t fails when it cannot start.
func labEnv(t testing.TB) *lab.Env { t.Helper(); return theLab.Env(t) }

func TestMain(m *testing.M) {
	os.Exit(lab.MainLazy(m, theLab))
}

func TestEmbeddedStoreSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "store.json")
	s, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if s.embedded == nil {
		t.Fatal("no URL: want the embedded store")
	}
	r := s.Client()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Set(ctx, "str", "50%done: a,b", 0).Err())
	must(r.Set(ctx, "ttl", "x", time.Hour).Err())
	must(r.HSet(ctx, "user:alice", "profile", "lunch", "info", "until 4pm").Err())
	must(r.RPush(ctx, "list", "a", "b", "c").Err())
	must(r.SAdd(ctx, "set", "x", "y").Err())
	must(r.ZAdd(ctx, "zset", redis.Z{Score: 1.5, Member: "m1"}, redis.Z{Score: 3, Member: "m2"}).Err())
	id1, err := r.XAdd(ctx, &redis.XAddArgs{Stream: "journal", Values: map[string]any{"to": "lunch"}}).Result()
	must(err)
	_, err = r.XAdd(ctx, &redis.XAddArgs{Stream: "journal", Values: map[string]any{"to": "available"}}).Result()
	must(err)
	must(s.Close(ctx))

	s2, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	r = s2.Client()
	if v, _ := r.Get(ctx, "str").Result(); v != "50%done: a,b" {
		t.Errorf("str = %q", v)
	}
	if ttl, _ := r.PTTL(ctx, "ttl").Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("ttl kept = %v, want about 1h", ttl)
	}
	if h, _ := r.HGetAll(ctx, "user:alice").Result(); h["profile"] != "lunch" || h["info"] != "until 4pm" {
		t.Errorf("hash = %v", h)
	}
	if l, _ := r.LRange(ctx, "list", 0, -1).Result(); strings.Join(l, "") != "abc" {
		t.Errorf("list = %v", l)
	}
	if n, _ := r.SCard(ctx, "set").Result(); n != 2 {
		t.Errorf("set size = %d", n)
	}
	if z, _ := r.ZScore(ctx, "zset", "m1").Result(); z != 1.5 {
		t.Errorf("zset score = %v", z)
	}
	msgs, err := r.XRange(ctx, "journal", "-", "+").Result()
	must(err)
	if len(msgs) != 2 || msgs[0].ID != id1 || msgs[1].Values["to"] != "available" {
		t.Errorf("stream = %+v", msgs)
	}
}

func TestEmbeddedStoreSnapshotsPeriodically(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.json")
	s, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path, SnapshotInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), `"key":"k"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic snapshot with key k in %s: %q", path, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEmbeddedStoreSnapshotsManyKeys: a snapshot reads the store in batches; every key of
// several batches is kept.
func TestEmbeddedStoreSnapshotsManyKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.json")
	s, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*snapshotBatch + 500
	p := s.Client().Pipeline()
	for i := range n {
		p.HSet(ctx, fmt.Sprintf("presenced:user:u%d", i), "state", fmt.Sprint(i))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	if got := s2.Client().DBSize(ctx).Val(); got != n {
		t.Fatalf("%d keys after the restore, want %d", got, n)
	}
	if v := s2.Client().HGet(ctx, fmt.Sprintf("presenced:user:u%d", n-1), "state").Val(); v != fmt.Sprint(n-1) {
		t.Errorf("last key's state %q", v)
	}
}

// TestEmbeddedStoreExpiresKeysWithTheClock: keys with a time to live expire in the embedded
// store as on a real Redis (a tick late at most), and their TTL goes down meanwhile.
func TestEmbeddedStoreExpiresKeysWithTheClock(t *testing.T) {
	ctx := context.Background()
	s, err := OpenRedis(ctx, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	r := s.Client()
	if err := r.Set(ctx, "short", "v", 1500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for r.Exists(ctx, "short").Val() == 1 {
		if time.Since(start) > 1500*time.Millisecond+ttlTick+time.Second {
			t.Fatalf("key with a TTL of 1.5s still there after %v", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Errorf("key with a TTL of 1.5s expired after %v", took)
	}
	if ttl := r.PTTL(ctx, "long").Val(); ttl >= time.Hour || ttl < 59*time.Minute {
		t.Errorf("TTL of the hour key %v after %v, want it gone down by that much", ttl, time.Since(start))
	}
}

func TestEmbeddedStoreRefusesDamagedSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, content, want string }{
		{"garbage", "{not json", "decode"},
		{"future version", `{"version": 99, "keys": []}`, "version 99"},
		{"bad type", `{"version": 1, "keys": [{"key": "k", "type": "bitmap"}]}`, `key "k": unknown type "bitmap"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenRedis(ctx, RedisOptions{SnapshotPath: path})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, path, tc.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Fatalf("damaged snapshot was overwritten: %q", b)
			}
		})
	}
}

func TestRedisStoreAgainstLab(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := OpenRedis(ctx, RedisOptions{URL: labEnv(t).RedisURL, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if s.embedded != nil {
		t.Fatal("with a URL: want the real Redis")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Set(ctx, "TestRedisStoreAgainstLab", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "presenced_redis_command_duration_seconds"); n < 2 {
		t.Fatalf("command latency series = %d, want ping and set", n)
	}
}

func TestRedisStoreUnreachableFailsFast(t *testing.T) {
	ctx := context.Background()
	// A port nobody listens on: the listener is closed before use.
	p, err := lab.NewProxy("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Addr()
	p.Close()
	s, err := OpenRedis(ctx, RedisOptions{URL: "redis://" + addr + "/0", DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	start := time.Now()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ping took %v", d)
	}
}

func TestOpenRedisRejectsBadURL(t *testing.T) {
	_, err := OpenRedis(context.Background(), RedisOptions{URL: "http://example/0"})
	if err == nil || !strings.Contains(err.Error(), "parse redis url") {
		t.Fatalf("err = %v", err)
	}
}
