package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// TestStoreOutageAndSchemaMismatch: presenced on the lab Redis through a proxy. Redis cut off
// or hung: the API answers 503 "state store unavailable: …" and /readyz fails on the store;
// back: 200 again. The schema version changed under the running daemon: /readyz fails at once
// naming the mismatch, switches are refused and write nothing; the key right again: ready.
func TestStoreOutageAndSchemaMismatch(t *testing.T) {
	proxy, err := lab.NewProxy(strings.TrimSuffix(strings.TrimPrefix(env.RedisURL, "redis://"), "/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.Redis.URL = Secret("redis://" + proxy.Addr() + "/0")
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	d.switchTo(t, "alice", "lunch", "")

	presenceOK := func(t *testing.T) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := d.call(t, http.MethodGet, "/api/v1/presence", testToken("carol"), nil)
			if code == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/api/v1/presence = %d %v, want 200", code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, outage := range []struct {
		name       string
		start, end func()
	}{
		{"down", func() { proxy.SetUp(false) }, func() { proxy.SetUp(true) }},
		{"hung", func() { proxy.SetHung(true) }, func() { proxy.SetHung(false) }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			outage.start()
			for _, rq := range []struct{ method, path string }{
				{http.MethodGet, "/api/v1/presence"},
				{http.MethodGet, "/api/v1/users/alice"},
				{http.MethodPut, "/api/v1/users/alice/profile"},
			} {
				code, body := d.call(t, rq.method, rq.path, testToken("alice"), map[string]string{"profile": "available"})
				msg, _ := body["error"].(string)
				if code != http.StatusServiceUnavailable || !strings.HasPrefix(msg, "state store unavailable: ") {
					t.Errorf("%s %s while Redis is %s: %d %v", rq.method, rq.path, outage.name, code, body)
				}
			}
			if code, rd := d.readiness(t); code != http.StatusServiceUnavailable || rd.Checks["store"] == "ok" {
				t.Errorf("/readyz while Redis is %s: %d %+v", outage.name, code, rd)
			}
			outage.end()
			presenceOK(t)
			d.waitReady(t, 15*time.Second)
		})
	}

	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	t.Cleanup(func() { rdb.Set(context.Background(), "presenced:schema", presence.SchemaVersion, 0) })
	if err := rdb.Set(ctx, "presenced:schema", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, rd := d.readiness(t)
	want := `redis key presenced:schema is "2" but this presenced uses schema 1`
	if code != http.StatusServiceUnavailable || rd.Ready || !strings.Contains(rd.Checks["store"], want) {
		t.Fatalf("/readyz with schema 2: %d %+v, want 503 saying %q", code, rd, want)
	}
	code, body := d.call(t, http.MethodPut, "/api/v1/users/alice/profile", testToken("alice"), map[string]string{"profile": "meeting"})
	if msg, _ := body["error"].(string); code != http.StatusServiceUnavailable || !strings.Contains(msg, want) {
		t.Errorf("switch into a store of schema 2: %d %v", code, body)
	}
	if st, _ := rdb.HGet(ctx, "presenced:user:alice", "state").Result(); !strings.Contains(st, `"profile":"lunch"`) {
		t.Errorf("alice's state after the refused switch: %s", st)
	}
	if err := rdb.Set(ctx, "presenced:schema", presence.SchemaVersion, 0).Err(); err != nil {
		t.Fatal(err)
	}
	d.waitReady(t, 5*time.Second)
	presenceOK(t)
	d.switchTo(t, "alice", "available", "")
}
