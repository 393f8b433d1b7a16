package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
	"github.com/presenced/presenced/trigger"
)

// TestPresenceLeavesOutUnreadableUsers: a user key of another type and a state that is not
// JSON leave those users out of GET /presence, which answers everyone else; the key is logged
// once and counted; the user's own status answers an error naming the key.
func TestPresenceLeavesOutUnreadableUsers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(ctx context.Context, rdb *redis.Client, key string) error
		want   string
	}{
		{"wrong type", func(ctx context.Context, rdb *redis.Client, key string) error {
			return rdb.Set(ctx, key, "oops", 0).Err()
		}, "the key holds another type of value"},
		{"bad json", func(ctx context.Context, rdb *redis.Client, key string) error {
			return rdb.HSet(ctx, key, "state", "{not json", "version", "1").Err()
		}, "field state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAPI(t)
			ctx := context.Background()
			a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
			a.must(t, "PUT", "/api/v1/users/bob/profile", bobToken, `{"profile":"dnd"}`, 200, nil)
			key := a.prefix + "user:bob"
			if err := tc.tamper(ctx, a.rdb, key); err != nil {
				t.Fatal(err)
			}
			for _, token := range []string{aliceToken, bobToken, adminToken} {
				var out presenceList
				rec := a.must(t, "GET", "/api/v1/presence", token, "", 200, &out)
				if len(out.Users) != 1 || out.Users[0].User != "alice" || out.Users[0].Label != "Lunch" {
					t.Fatalf("presence with bob unreadable: %s", rec.Body)
				}
			}
			if v := a.counterValue(t, "presenced_store_unreadable_records_total", "state"); v != 3 {
				t.Errorf("presenced_store_unreadable_records_total{kind=state} = %v after 3 reads, want 3", v)
			}
			if n := strings.Count(a.logs.String(), "unreadable record in the state store"); n != 1 ||
				!strings.Contains(a.logs.String(), "key="+key) {
				t.Errorf("log lines about the unreadable record: %d, want 1 naming %s:\n%s", n, key, a.logs)
			}
			var e errorBody
			a.must(t, "GET", "/api/v1/users/bob", bobToken, "", 500, &e)
			if !strings.Contains(e.Error, "redis key "+key) || !strings.Contains(e.Error, tc.want) {
				t.Errorf("bob's status: %q, want it to name %s and say %q", e.Error, key, tc.want)
			}
		})
	}
}

// counterValue returns the value of name{<its one label>=label} in the test API's registry.
func (a *testAPI) counterValue(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s}", name, label)
	return 0
}

// storeOutageAPI is a Handler with the trigger scheduler whose state store is reached through
// a proxy in front of the lab Redis, so that the store can be cut off or hung.
func storeOutageAPI(t *testing.T) (*testAPI, *lab.Proxy) {
	t.Helper()
	ctx := context.Background()
	proxy, err := lab.NewProxy(strings.TrimSuffix(strings.TrimPrefix(theLab.Env(t).RedisURL, "redis://"), "/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	store, err := presence.OpenRedis(ctx, presence.RedisOptions{URL: "redis://" + proxy.Addr() + "/0",
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	prefix := lab.Unique("apitest") + ":"
	states := store.StateStore(presence.StateStoreOptions{Prefix: prefix})
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: fixtureUsers(), Profiles: fixtureProfiles()})
	if err != nil {
		t.Fatal(err)
	}
	pbx := presencetest.NewPBX()
	e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: states,
		Concerns: []presence.Concern{pbx}})
	if err != nil {
		t.Fatal(err)
	}
	presencetest.Run(t, e)
	s, err := trigger.New(trigger.Options{Engine: e, States: states, Redis: store.Client(), Prefix: prefix, DefaultLocation: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: e, AdminToken: adminToken, Triggers: s, Logger: lab.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{h: h, pbx: pbx, states: states, rdb: store.Client(), prefix: prefix}, proxy
}

// TestStoreOutageAnswers503: with the state store cut off or hung, every endpoint that needs
// it answers 503 {"error": "state store unavailable: <reason>"} with Retry-After, naming no
// address; once the store is back they answer as before.
func TestStoreOutageAnswers503(t *testing.T) {
	a, proxy := storeOutageAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
	requests := []struct{ method, path, body string }{
		{"PUT", "/api/v1/users/alice/profile", `{"profile":"lunch","info":"back at 2"}`},
		{"POST", "/api/v1/users/alice/profile/preview", `{"profile":"dnd"}`},
		{"GET", "/api/v1/users/alice", ""},
		{"GET", "/api/v1/users/alice/profiles", ""},
		{"GET", "/api/v1/users/alice/profiles/lunch", ""},
		{"PUT", "/api/v1/users/alice/profiles/home", `{"name":"Home office","presence":"available"}`},
		{"DELETE", "/api/v1/users/alice/profiles/nosuch", ""},
		{"GET", "/api/v1/users/alice/journal", ""},
		{"POST", "/api/v1/users/alice/reconcile", ""},
		{"POST", "/api/v1/users/alice/triggers/meeting", `{"state":"start","profile":"dnd"}`},
		{"GET", "/api/v1/presence", ""},
	}
	for _, outage := range []struct {
		name, reason string
		start, end   func()
	}{
		{"down", "", func() { proxy.SetUp(false) }, func() { proxy.SetUp(true) }},
		{"hung", "timed out", func() { proxy.SetHung(true) }, func() { proxy.SetHung(false) }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			outage.start()
			for _, rq := range requests {
				rec := a.do(t, rq.method, rq.path, adminToken, rq.body)
				var e errorBody
				json.Unmarshal(rec.Body.Bytes(), &e)
				if rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(e.Error, "state store unavailable: ") ||
					!strings.Contains(e.Error, outage.reason) || strings.Contains(rec.Body.String(), proxy.Addr()) ||
					rec.Header().Get("Retry-After") != "5" {
					t.Errorf("%s %s while the store is %s: %d %s (Retry-After %q)", rq.method, rq.path, outage.name,
						rec.Code, rec.Body, rec.Header().Get("Retry-After"))
				}
			}
			outage.end()
			deadline := time.Now().Add(10 * time.Second)
			for a.do(t, "GET", "/api/v1/presence", adminToken, "").Code != http.StatusOK {
				if time.Now().After(deadline) {
					t.Fatal("the store is back but /presence does not answer 200")
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, rq := range requests {
				if rec := a.do(t, rq.method, rq.path, adminToken, rq.body); rec.Code >= 500 {
					t.Errorf("%s %s once the store is back: %d %s", rq.method, rq.path, rec.Code, rec.Body)
				}
			}
		})
	}
}

// TestSchemaMismatchAnswers503: a store whose schema version is not this presenced's answers
// 503 naming the key and both versions, and nothing is written.
func TestSchemaMismatchAnswers503(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
	if err := a.rdb.Set(ctx, a.prefix+"schema", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.states.CheckSchema(ctx); err == nil { // what /readyz and the periodic check do
		t.Fatal("CheckSchema of a store of schema 2 succeeded")
	}
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/api/v1/presence", ""},
		{"PUT", "/api/v1/users/alice/profile", `{"profile":"dnd"}`},
	} {
		var e errorBody
		rec := a.must(t, rq.method, rq.path, aliceToken, rq.body, 503, &e)
		want := fmt.Sprintf(`state store unavailable: redis key %sschema is "2" but this presenced uses schema 1`, a.prefix)
		if !strings.HasPrefix(e.Error, want) || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %q, want %q", rq.method, rq.path, e.Error, want)
		}
	}
	if st, _ := a.rdb.HGet(ctx, a.prefix+"user:alice", "state").Result(); !strings.Contains(st, `"profile":"lunch"`) {
		t.Errorf("state after a refused switch: %s", st)
	}
}
