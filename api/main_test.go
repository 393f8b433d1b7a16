package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/internal/openapicheck"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// theLab is the lab Redis, started by the first test that needs it: the fuzz targets need it
// too, and lab.Main starts no lab for a fuzz run.
var theLab = &lab.Lazy{Options: lab.Options{Redis: true}}

func TestMain(m *testing.M) {
	os.Exit(lab.MainLazy(m, theLab))
}

// Tokens of the test fixtures.
var (
	adminToken = testToken("admin")
	aliceToken = testToken("alice")
	bobToken   = testToken("bob")
)

const alicePIN = "9137"

// testToken is the token of name in the tests: random-looking and long enough for
// secret.CheckToken, the same in every run.
func testToken(name string) string {
	sum := sha256.Sum256([]byte("presenced api test token " + name))
	return name + "-" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// testAPI is a Handler over a real engine on the lab Redis, with a fresh key prefix.
type testAPI struct {
	h      *Handler
	pbx    *presencetest.PBX
	states *presence.StateStore
	rdb    *redis.Client
	prefix string
	reg    *prometheus.Registry
	logs   *syncBuffer
}

func fixtureUsers() []presence.User {
	return []presence.User{
		{ID: "alice", Name: "Alice", Extension: "1001", PIN: alicePIN, Token: aliceToken,
			Devices: []presence.Device{{Dial: "PJSIP/1001", Family: presence.FamilyDesk}, {Dial: "PJSIP/1001-mobile", Family: presence.FamilyMobile}},
			Queues:  []presence.QueueMembership{{Name: "support"}, {Name: "sales", Penalty: 1}}},
		{ID: "bob", Name: "Bob", Extension: "1002", Token: bobToken,
			Devices: []presence.Device{{Dial: "PJSIP/1002", Family: presence.FamilyDesk}},
			Queues:  []presence.QueueMembership{{Name: "support"}}},
	}
}

func fixtureProfiles() []presence.Profile {
	return []presence.Profile{{ID: "lunch", Name: "Lunch", Activation: "3", Presence: "away",
		OnEnter: []presence.Action{{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Lunch"}},
		OnExit:  []presence.Action{{Kind: presence.ActionQueueUnpause, Queues: presence.QueueSelector{"all"}}}}}
}

func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	return newTestAPIWith(t, fixtureUsers(), nil)
}

// newTestAPIWith is newTestAPI with other users, and options edited by edit (when not nil).
// The throttle counts failed authentications in the lab Redis, under the test's prefix.
func newTestAPIWith(t testing.TB, users []presence.User, edit func(*Options)) *testAPI {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	r := newRig(t, users, presence.StateStoreOptions{Logger: logger, Registerer: reg}, nil)
	rdb, prefix := r.Redis, r.Prefix
	topts := throttle.DefaultOptions()
	topts.Redis, topts.KeyPrefix = rdb, prefix+"authfail:"
	limiter, err := throttle.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Engine: r.Engine, AdminToken: adminToken, MaxBodyBytes: 4 << 10, Registerer: reg, Throttle: limiter, Logger: logger}
	if edit != nil {
		edit(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{h: h, pbx: r.PBX, states: r.States, rdb: rdb, prefix: prefix, reg: reg, logs: logs}
}

// newRig is an engine over the lab Redis with a fresh key prefix and a PBX, with the fixture
// profiles, users, the state store's options and the engine's clock (nil: the real one).
func newRig(t testing.TB, users []presence.User, states presence.StateStoreOptions, now func() time.Time) *presencetest.Rig {
	t.Helper()
	return presencetest.NewRig(t, presencetest.RigOptions{Redis: theLab.Env(t).RedisClient(t, nil),
		Prefix: fmt.Sprintf("apitest:%s:%d:", t.Name(), time.Now().UnixNano()),
		Users:  users, Profiles: fixtureProfiles(), States: states, Engine: presence.EngineOptions{Now: now}})
}

// do sends one request; an empty token sends no Authorization header.
func (a *testAPI) do(t testing.TB, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	checkAnswer(t, req, rec)
	return rec
}

// openAPIValidator checks answers against openapi.json (kin-openapi).
var openAPIValidator = sync.OnceValues(func() (*openapicheck.Validator, error) {
	return openapicheck.New([]byte(openAPIDocument))
})

// checkAnswer fails the test when an answer is not as openapi.json describes it: a status the
// operation does not list, a JSON body its schema does not match. Every request of the API's
// tests goes through it (testAPI.do).
func checkAnswer(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	v, err := openAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	err = v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes())
	switch {
	case errors.Is(err, openapicheck.ErrNoRoute):
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s answered %d but openapi.json has no such operation", req.Method, req.URL.Path, rec.Code)
		}
	case err != nil:
		t.Error(err)
	}
}

// must sends a request and decodes its answer into v, failing unless the status is want.
func (a *testAPI) must(t testing.TB, method, path, token, body string, want int, v any) *httptest.ResponseRecorder {
	t.Helper()
	rec := a.do(t, method, path, token, body)
	if rec.Code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, rec.Code, want, rec.Body)
	}
	if v != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("%s %s: answer not JSON: %v: %s", method, path, err, rec.Body)
		}
	}
	return rec
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
