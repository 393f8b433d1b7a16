package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
)

// request is a GET of path from the client address peer (host:port), with an Authorization
// header (none when auth is empty) and X-Forwarded-For values.
func (a *testAPI) from(t testing.TB, peer, path, auth string, xff ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = peer
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, x := range xff {
		req.Header.Add("X-Forwarded-For", x)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	checkAnswer(t, req, rec)
	return rec
}

func bearerAuth(token string) string { return "Bearer " + token }

func basicAuth(user, token string) string {
	req := httptest.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, token)
	return req.Header.Get("Authorization")
}

// TestWrongTokensAreThrottledPerAddress: of 50 wrong tokens from one address the first 10 get
// 401 and the rest 429 with Retry-After, and then so does the right token from that address
// (nothing is verified), while another address is still served. Each failure is logged
// without the token and counted; the counter is in Redis.
func TestWrongTokensAreThrottledPerAddress(t *testing.T) {
	a := newTestAPI(t)
	const attacker, colleague = "192.0.2.10:40000", "198.51.100.20:40000"
	codes := map[int]int{}
	var wrong []string
	for i := range 50 {
		tok := fmt.Sprintf("guess-%02d-%s", i, aliceToken[6:])
		wrong = append(wrong, tok)
		rec := a.from(t, attacker, "/api/v1/users/alice", bearerAuth(tok))
		codes[rec.Code]++
		if rec.Code == http.StatusTooManyRequests {
			ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
			if err != nil || ra < 890 || ra > 900 {
				t.Fatalf("request %d: Retry-After %q, want about 900 s", i, rec.Header().Get("Retry-After"))
			}
			if !strings.Contains(rec.Body.String(), "too many failed authentications") {
				t.Fatalf("429 body %s", rec.Body)
			}
		}
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 40 {
		t.Fatalf("answers %v, want 10×401 then 40×429", codes)
	}
	if rec := a.from(t, attacker, "/api/v1/users/alice", bearerAuth(aliceToken)); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the right token from the blocked address: %d, want 429 (nothing verified)", rec.Code)
	}
	if rec := a.from(t, attacker, "/api/v1/openapi.json", ""); rec.Code != http.StatusOK {
		t.Fatalf("public endpoint from the blocked address: %d", rec.Code)
	}
	if rec := a.from(t, colleague, "/api/v1/users/alice", bearerAuth(aliceToken)); rec.Code != http.StatusOK {
		t.Fatalf("another address: %d %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(a.h.metrics.authFailures.WithLabelValues(reasonInvalidToken)); got != 10 {
		t.Errorf("presenced_api_auth_failures_total{reason=invalid_token} = %v, want 10", got)
	}
	if got := testutil.ToFloat64(a.h.metrics.throttled); got != 41 {
		t.Errorf("presenced_api_throttled_total = %v, want 41", got)
	}
	logs := a.logs.String()
	if n := strings.Count(logs, `msg="authentication failed" component=api client=192.0.2.10 route="GET /api/v1/users/{user}" reason=invalid_token`); n != 10 {
		t.Errorf("%d failure log lines naming client, route and reason, want 10:\n%s", n, logs)
	}
	if !strings.Contains(logs, `msg="client blocked: too many failed authentications" component=api client=192.0.2.10 failures=10 retry_after=15m0s`) {
		t.Errorf("no log line for the block:\n%s", logs)
	}
	for _, tok := range append(wrong, aliceToken) {
		if strings.Contains(logs, tok) {
			t.Fatalf("the log shows a token: %s", tok)
		}
	}
	ttl := a.rdb.PTTL(t.Context(), a.prefix+"authfail:192.0.2.10").Val()
	if ttl <= 14*time.Minute || ttl > 15*time.Minute {
		t.Errorf("Redis counter TTL %v, want the 15m block", ttl)
	}
}

// TestMissingTokenIsNotAFailure: requests without credentials (a browser's first try) get
// 401 but do not count towards a block.
func TestMissingTokenIsNotAFailure(t *testing.T) {
	a := newTestAPI(t)
	for range 20 {
		if rec := a.from(t, "192.0.2.11:1", "/api/v1/presence", ""); rec.Code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", rec.Code)
		}
	}
	if rec := a.from(t, "192.0.2.11:1", "/api/v1/presence", bearerAuth(bobToken)); rec.Code != http.StatusOK {
		t.Fatalf("after 20 requests without a token: %d", rec.Code)
	}
}

// TestTrustedProxies: behind a trusted proxy the client is what X-Forwarded-For says, so one
// client is blocked and another behind the same proxy is served; from an untrusted peer the
// header is ignored, so changing it does not escape a block.
func TestTrustedProxies(t *testing.T) {
	a := newTestAPIWith(t, fixtureUsers(), func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	const proxy = "10.0.0.1:443"
	for range 10 {
		a.from(t, proxy, "/api/v1/presence", bearerAuth("wrong-token-0123456789abcdef"), "192.0.2.30")
	}
	if rec := a.from(t, proxy, "/api/v1/presence", bearerAuth(bobToken), "192.0.2.30"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("blocked client behind the proxy: %d", rec.Code)
	}
	if rec := a.from(t, proxy, "/api/v1/presence", bearerAuth(bobToken), "192.0.2.31"); rec.Code != http.StatusOK {
		t.Fatalf("other client behind the proxy: %d", rec.Code)
	}
	if rec := a.from(t, proxy, "/api/v1/presence", bearerAuth(bobToken), "192.0.2.30", "6.6.6.6"); rec.Code != http.StatusOK {
		t.Fatalf("a forged hop appended after the real client is the client: %d", rec.Code)
	}
	// An untrusted peer cannot pick its address.
	for i := range 10 {
		a.from(t, "203.0.113.5:1", "/api/v1/presence", bearerAuth("wrong-token-0123456789abcdef"), fmt.Sprintf("192.0.2.%d", 100+i))
	}
	if rec := a.from(t, "203.0.113.5:1", "/api/v1/presence", bearerAuth(bobToken), "192.0.2.200"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("untrusted peer with a new X-Forwarded-For: %d, want 429", rec.Code)
	}
}

// TestHashedTokens: users whose tokens the configuration holds as argon2id or bcrypt hashes
// authenticate with Basic auth (id or extension); wrong tokens fail; Bearer cannot find them.
// A verified token is cached: the slow hash is paid once.
func TestHashedTokens(t *testing.T) {
	carolToken, daveToken := testToken("carol"), testToken("dave")
	argon, err := secret.NewHash(carolToken)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(daveToken), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	adminHash, err := secret.NewHash(adminToken)
	if err != nil {
		t.Fatal(err)
	}
	users := append(fixtureUsers(),
		presence.User{ID: "carol", Extension: "1003", TokenHash: argon, Devices: []presence.Device{{Dial: "PJSIP/1003", Family: presence.FamilyDesk}}},
		presence.User{ID: "dave", Extension: "1004", TokenHash: string(bc), Devices: []presence.Device{{Dial: "PJSIP/1004", Family: presence.FamilyDesk}}})
	a := newTestAPIWith(t, users, func(o *Options) { o.AdminToken, o.AdminTokenHash = "", adminHash })
	const peer = "192.0.2.40:1"
	for _, tc := range []struct {
		name, path, auth string
		want             int
		challenge        string
	}{
		{"argon2id by id", "/api/v1/users/carol", basicAuth("carol", carolToken), 200, ""},
		{"argon2id by extension", "/api/v1/users/carol", basicAuth("1003", carolToken), 200, ""},
		{"bcrypt", "/api/v1/users/dave", basicAuth("dave", daveToken), 200, ""},
		{"plain token with Basic", "/api/v1/users/alice", basicAuth("alice", aliceToken), 200, ""},
		{"admin hash", "/api/v1/users/alice", basicAuth("admin", adminToken), 200, ""},
		{"argon2id wrong", "/api/v1/users/carol", basicAuth("carol", daveToken), 401, `Basic realm="presenced", charset="UTF-8"`},
		{"bcrypt wrong", "/api/v1/users/dave", basicAuth("dave", carolToken), 401, "Basic"},
		{"another user's token", "/api/v1/users/alice", basicAuth("alice", bobToken), 401, "Basic"},
		{"admin hash wrong", "/api/v1/users/alice", basicAuth("admin", aliceToken), 401, "Basic"},
		{"hashed token as Bearer", "/api/v1/users/carol", bearerAuth(carolToken), 401, "Bearer"},
		{"admin hashed token as Bearer", "/api/v1/users/alice", bearerAuth(adminToken), 401, "Bearer"},
		{"a user acting on another", "/api/v1/users/alice", basicAuth("carol", carolToken), 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := a.from(t, peer, tc.path, tc.auth)
			if rec.Code != tc.want || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("%d (WWW-Authenticate %q) %s; want %d (%q)", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body, tc.want, tc.challenge)
			}
		})
	}
	// carol, dave, admin and carol's and dave's and admin's wrong tokens: one verification
	// each (the extension shares carol's cache entry).
	if got := testutil.ToFloat64(a.h.metrics.hashVerifications); got != 6 {
		t.Errorf("hash verifications %v, want 6", got)
	}
	for range 5 {
		if rec := a.from(t, peer, "/api/v1/users/carol", basicAuth("carol", carolToken)); rec.Code != 200 {
			t.Fatalf("again: %d", rec.Code)
		}
	}
	if got := testutil.ToFloat64(a.h.metrics.hashVerifications); got != 6 {
		t.Errorf("hash verifications %v after 5 more requests with a verified token, want still 6", got)
	}
	if got := testutil.ToFloat64(a.h.metrics.authFailures.WithLabelValues(reasonWrongToken)); got != 4 {
		t.Errorf("wrong_token failures %v, want 4", got)
	}
}

func TestMalformedAndUnknownCredentials(t *testing.T) {
	a := newTestAPI(t)
	for _, tc := range []struct{ name, auth, reason, msg string }{
		{"unknown scheme", "Digest username=alice", reasonMalformed, "malformed Authorization header"},
		{"bad base64", "Basic !!!", reasonMalformed, "malformed Authorization header"},
		{"unknown user", basicAuth("mallory", aliceToken), reasonUnknownUser, "invalid user or token"},
		{"admin without admin token", basicAuth("nobody", adminToken), reasonUnknownUser, "invalid user or token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(a.h.metrics.authFailures.WithLabelValues(tc.reason))
			rec := a.from(t, "192.0.2.50:1", "/api/v1/presence", tc.auth)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("%d %s; want 401 %q", rec.Code, rec.Body, tc.msg)
			}
			if got := testutil.ToFloat64(a.h.metrics.authFailures.WithLabelValues(tc.reason)); got != before+1 {
				t.Fatalf("%s failures %v, want %v", tc.reason, got, before+1)
			}
		})
	}
}

// BenchmarkAuthorize is the cost of authenticating one request: the throttle's check in the
// lab Redis, then the credential. A token verified against a hash is cached, so the slow hash
// is paid once per token and instance (the "uncached" cases pay it every time).
func BenchmarkAuthorize(b *testing.B) {
	carolToken, daveToken := testToken("carol"), testToken("dave")
	argon, err := secret.NewHash(carolToken)
	if err != nil {
		b.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(daveToken), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	users := append(fixtureUsers(),
		presence.User{ID: "carol", Extension: "1003", TokenHash: argon, Devices: []presence.Device{{Dial: "PJSIP/1003", Family: presence.FamilyDesk}}},
		presence.User{ID: "dave", Extension: "1004", TokenHash: string(bc), Devices: []presence.Device{{Dial: "PJSIP/1004", Family: presence.FamilyDesk}}})
	a := newTestAPIWith(b, users, nil)
	rt := *a.h.route(http.MethodGet, Prefix+"/users/{user}")
	for _, bc := range []struct {
		name, user, auth string
		uncached         bool
	}{
		{"bearer", "alice", bearerAuth(aliceToken), false},
		{"bearer-memory-throttle", "alice", bearerAuth(aliceToken), false},
		{"basic-plain", "alice", basicAuth("alice", aliceToken), false},
		{"basic-argon2id-cached", "carol", basicAuth("carol", carolToken), false},
		{"basic-bcrypt10-cached", "dave", basicAuth("dave", daveToken), false},
		{"basic-argon2id-uncached", "carol", basicAuth("carol", carolToken), true},
		{"basic-bcrypt10-uncached", "dave", basicAuth("dave", daveToken), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.name == "bearer-memory-throttle" { // without the Redis round trip
				saved := a.h.throttle
				mem, err := throttle.New(throttle.DefaultOptions())
				if err != nil {
					b.Fatal(err)
				}
				a.h.throttle = mem
				b.Cleanup(func() { a.h.throttle = saved })
			}
			if bc.uncached {
				saved := a.h.creds.Load().cache
				a.h.creds.Load().cache = newVerifiedCache(credentialCacheTTL, 0, time.Now) // remembers nothing
				b.Cleanup(func() { a.h.creds.Load().cache = saved })
			}
			req := httptest.NewRequest("GET", "/api/v1/users/"+bc.user, nil)
			req.RemoteAddr = "192.0.2.60:1"
			req.Header.Set("Authorization", bc.auth)
			req.SetPathValue("user", bc.user)
			for b.Loop() {
				if _, err := a.h.authorize(req, rt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
