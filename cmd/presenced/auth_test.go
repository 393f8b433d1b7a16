package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
)

// weakConfigCase edits testdata/config/issue.yaml (from → to) and expects one line naming the key; the
// secrets it introduces must not show in the error.
type weakConfigCase struct {
	name, from, to, want string
	env                  []string
	// daemon runs presenced itself rather than -check-config (a missing secret file is
	// refused where it is needed).
	daemon bool
}

// TestWeakOrConflictingSecretsAreRefused: tokens too short or too guessable, two of
// token/token_hash/token_file (pin likewise, the admin token likewise), hashes presenced cannot
// verify, unreadable secret files and bad throttle settings exit 2 with one line naming the
// key, and never quote a secret.
func TestWeakOrConflictingSecretsAreRefused(t *testing.T) {
	hash, err := secret.NewHash(testToken("alice"))
	if err != nil {
		t.Fatal(err)
	}
	weakFile := writeFile(t, "weak", "short-one\n")
	strongFile := writeFile(t, "strong", testToken("alice-file")+"\n")
	emptyFile := writeFile(t, "empty", "\n")
	pinFile := writeFile(t, "pin", "12ab\n")
	issue := fixture(t, "config/issue.yaml", nil)
	admin := "api: {admin_token: " + testToken("admin") + "}"
	alice := "    token: " + testToken("alice") + "\n"
	for _, tc := range []weakConfigCase{
		{name: "short admin token", from: admin, to: "api: {admin_token: adm1n}", want: "api.admin_token: too short: at least 16 characters"},
		{name: "guessable admin token", from: admin, to: "api: {admin_token: aaaaaaaaaaaaaaaaaaaaaaaa}", want: "api.admin_token: too guessable (about 0 bits; at least 64)"},
		{name: "weak admin token from the environment", from: admin, to: "", env: []string{"PRESENCED_API_ADMIN_TOKEN=1234567890123456"}, want: "api.admin_token: too guessable"},
		{name: "weak admin token file", from: admin, to: "api: {admin_token_file: " + weakFile + "}", want: "api.admin_token_file: too short"},
		{name: "admin token and hash", from: admin, to: "api: {admin_token: " + testToken("admin") + ", admin_token_hash: '" + hash + "'}", want: "api.admin_token_hash: set only one of api.admin_token, api.admin_token_hash and api.admin_token_file"},
		{name: "admin token file and hash", from: admin, to: "api: {admin_token_file: " + strongFile + ", admin_token_hash: '" + hash + "'}", want: "api.admin_token_file: set only one of"},
		{name: "admin hash as token", from: admin, to: "api: {admin_token: '" + hash + "'}", want: "api.admin_token: is a hash: give it as api.admin_token_hash"},
		{name: "bad admin hash", from: admin, to: "api: {admin_token_hash: '$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'}", want: "api.admin_token_hash: an argon2i or argon2d hash: use argon2id"},
		{name: "short user token", from: alice, to: "    token: alice-token\n", want: "users[0] (alice).token: too short: at least 16 characters"},
		{name: "guessable user token", from: alice, to: "    token: alicealicealicealice\n", want: "users[0] (alice).token: too guessable (about"},
		{name: "weak token file", from: alice, to: "    token_file: " + weakFile + "\n", want: "users[0] (alice).token_file: too short"},
		{name: "token and token_hash", from: alice, to: alice + "    token_hash: '" + hash + "'\n", want: "users[0] (alice).token_hash: set only one of token, token_hash and token_file"},
		{name: "token and token_file", from: alice, to: alice + "    token_file: " + strongFile + "\n", want: "users[0] (alice).token_file: set only one of token, token_hash and token_file"},
		{name: "token_hash and token_file", from: alice, to: "    token_hash: '" + hash + "'\n    token_file: " + strongFile + "\n", want: "users[0] (alice).token_file: set only one of"},
		{name: "bad token hash", from: alice, to: "    token_hash: '" + testToken("alice") + "'\n", want: "users[0] (alice).token_hash: not an argon2id hash"},
		{name: "bcrypt hash too slow", from: alice, to: "    token_hash: '$2b$15$abcdefghijklmnopqrstuu.7.EfS4z318m6X5VHuwOuuYyTENzxQa'\n", want: "users[0] (alice).token_hash: bcrypt hash: cost 15"},
		{name: "missing token file", from: alice, to: "    token_file: /nonexistent/alice-token\n", want: "users[0] (alice).token_file: open /nonexistent/alice-token",
			daemon: true}, // -check-config only warns: it needs no secrets (TestOfflineCommandsNeedNoSecrets)
		{name: "empty token file", from: alice, to: "    token_file: " + emptyFile + "\n", want: "users[0] (alice).token_file: file " + emptyFile + " is empty"},
		{name: "pin and pin_hash", from: alice, to: alice + "    pin: \"4711\"\n    pin_hash: '" + hash + "'\n", want: "users[0] (alice).pin_hash: set only one of pin, pin_hash and pin_file"},
		{name: "pin and pin_file", from: alice, to: alice + "    pin: \"4711\"\n    pin_file: " + pinFile + "\n", want: "users[0] (alice).pin_file: set only one of pin, pin_hash and pin_file"},
		{name: "pin file not digits", from: alice, to: alice + "    pin_file: " + pinFile + "\n", want: "users[0] (alice).pin_file: must be 1-8 digits"},
		{name: "bad pin hash", from: alice, to: alice + "    pin_hash: '4711'\n", want: "users[0] (alice).pin_hash: not an argon2id hash"},
		{name: "throttle failures", from: admin, to: admin + "\n", env: []string{"PRESENCED_API_THROTTLE_FAILURES=0"}, want: "api.throttle.failures: 0 must be between 1 and 1000"},
		{name: "throttle window", from: admin, to: "api: {admin_token: " + testToken("admin") + ", throttle: {window: 10ms}}", want: "api.throttle.window: 10ms must be between 1s and 24h"},
		{name: "throttle block", from: admin, to: "api: {admin_token: " + testToken("admin") + ", throttle: {block: 48h}}", want: "api.throttle.block: 48h0m0s must be between 1s and 24h"},
		{name: "throttle memory", from: admin, to: "api: {admin_token: " + testToken("admin") + ", throttle: {max_addresses: 5}}", want: "api.throttle.max_addresses: 5 must be between 100"},
		{name: "unknown throttle key", from: admin, to: "api: {admin_token: " + testToken("admin") + ", throttle: {limit: 5}}", want: "unknown key api.throttle.limit"},
		{name: "bad trusted proxy", from: admin, to: "api: {admin_token: " + testToken("admin") + ", trusted_proxies: [10.0.0.0/8, 10.0.0/8]}", want: `api.trusted_proxies[1]: "10.0.0/8" is not an address or a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(issue, tc.from) {
				t.Fatalf("test edit %q does not apply", tc.from)
			}
			yaml := strings.Replace(issue, tc.from, tc.to, 1)
			var stderr bytes.Buffer
			args := []string{"-config", writeFile(t, "presenced.yaml", yaml)}
			if !tc.daemon {
				args = append(args, "-check-config")
			}
			code := realMain(args, tc.env, &bytes.Buffer{}, &stderr)
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, stderr %q; want one line with %q", code, out, tc.want)
			}
			for _, s := range []string{"adm1n", "alicealicealice", "short-one", "1234567890123456", "aaaaaaaaaaaaaaaa", testToken("alice-file"), "4711"} {
				if strings.Contains(yaml+strings.Join(tc.env, " "), s) && strings.Contains(out, s) {
					t.Fatalf("the error quotes the secret %q: %s", s, out)
				}
			}
		})
	}
}

// TestSecretFilesHashesAndThrottleLoad: token_file and pin_file are read (newline trimmed),
// hashes are kept, the throttle and the trusted proxies come from the file or the environment.
func TestSecretFilesHashesAndThrottleLoad(t *testing.T) {
	carolHash, err := secret.NewHash(testToken("carol"))
	if err != nil {
		t.Fatal(err)
	}
	pinHash, err := secret.NewHash("2468")
	if err != nil {
		t.Fatal(err)
	}
	adminHash, err := secret.NewHash(testToken("admin"))
	if err != nil {
		t.Fatal(err)
	}
	issue := fixture(t, "config/issue.yaml", nil)
	yaml := strings.Replace(issue, "api: {admin_token: "+testToken("admin")+"}",
		"api:\n  admin_token_hash: '"+adminHash+"'\n  throttle: {failures: 5, window: 1m, block: 2m, max_addresses: 500}\n", 1)
	yaml = strings.Replace(yaml, "    token: "+testToken("alice")+"\n",
		"    token_file: "+writeFile(t, "alice-token", testToken("alice")+"\r\n")+"\n    pin_file: "+writeFile(t, "alice-pin", "4711\n")+"\n", 1)
	yaml = strings.Replace(yaml, "profiles:\n", `  - id: carol
    extension: "1003"
    token_hash: '`+carolHash+`'
    pin_hash: '`+pinHash+`'
    devices: [{dial: PJSIP/1003, family: desk}]
profiles:
`, 1)
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", yaml)},
		[]string{"PRESENCED_API_TRUSTED_PROXIES=10.0.0.0/8, 192.168.1.1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := cfg.catalog.User("alice")
	carol, _ := cfg.catalog.User("carol")
	if alice.Token != testToken("alice") || alice.PIN != "4711" {
		t.Errorf("alice's token and PIN from files: %q %q", alice.Token, alice.PIN)
	}
	if carol.TokenHash != carolHash || carol.PINHash != pinHash || carol.Token != "" || carol.PIN != "" {
		t.Errorf("carol's hashes: %+v", carol)
	}
	if cfg.API.AdminTokenHash != adminHash || cfg.API.AdminToken != "" {
		t.Errorf("admin token hash %q, token %q", cfg.API.AdminTokenHash, cfg.API.AdminToken)
	}
	if got := cfg.API.Throttle; got != (ThrottleConfig{Failures: 5, Window: time.Minute, Block: 2 * time.Minute, MaxAddresses: 500}) {
		t.Errorf("throttle %+v", got)
	}
	if got := fmt.Sprint(cfg.trustedProxies()); got != "[10.0.0.0/8 192.168.1.1/32]" {
		t.Errorf("trusted proxies %s", got)
	}
	// The defaults.
	cfg, _, err = loadConfig([]string{"-config", writeFile(t, "presenced.yaml", issue)}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.API.Throttle; got != (ThrottleConfig{Failures: 10, Window: 5 * time.Minute, Block: 15 * time.Minute, MaxAddresses: 10000}) {
		t.Errorf("default throttle %+v", got)
	}
	if len(cfg.trustedProxies()) != 0 {
		t.Errorf("default trusted proxies %v", cfg.trustedProxies())
	}
}

func TestHashSecret(t *testing.T) {
	for _, tc := range []struct {
		in       string
		code     int
		verifies string // the secret the printed hash verifies
		stderr   string
	}{
		{in: testToken("x") + "\n", code: 0, verifies: testToken("x")},
		{in: testToken("x") + "\r\nsecond line\n", code: 0, verifies: testToken("x")},
		{in: "4711", code: 0, verifies: "4711"},
		{in: "alice-token\n", code: 2, stderr: "not a PIN (1-8 digits), and as a token too short: at least 16 characters"},
		{in: "123456789012345678\n", code: 2, stderr: "too guessable"},
		{in: "\n", code: 2, stderr: "no secret"},
		{in: "", code: 2, stderr: "no secret"},
	} {
		var stdout, stderr bytes.Buffer
		code := hashSecret(strings.NewReader(tc.in), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("hashSecret(%q) = %d, stderr %q; want %d, %q", tc.in, code, stderr.String(), tc.code, tc.stderr)
			continue
		}
		if tc.code != 0 {
			if stdout.Len() != 0 || (len(tc.in) > 2 && strings.Contains(stderr.String(), strings.TrimSpace(tc.in))) {
				t.Errorf("hashSecret(%q): stdout %q, stderr %q (must not quote the secret)", tc.in, stdout.String(), stderr.String())
			}
			continue
		}
		h, err := secret.ParseHash(strings.TrimSpace(stdout.String()))
		if err != nil || !h.Verify(tc.verifies) || strings.Count(stdout.String(), "\n") != 1 {
			t.Errorf("hashSecret(%q) printed %q (%v)", tc.in, stdout.String(), err)
		}
	}
}

// TestHashSecretProcess runs the real program: presenced -hash-secret < token.
func TestHashSecretProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-hash-secret")
	cmd.Env = []string{"PRESENCED_TEST_RUN_MAIN=1"}
	cmd.Stdin = strings.NewReader(testToken("process") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr %q", err, stderr.String())
	}
	h, err := secret.ParseHash(strings.TrimSpace(stdout.String()))
	if err != nil || !h.Verify(testToken("process")) {
		t.Fatalf("printed %q: %v", stdout.String(), err)
	}
	cmd = exec.Command(os.Args[0], "-hash-secret")
	cmd.Env = []string{"PRESENCED_TEST_RUN_MAIN=1"}
	cmd.Stdin = strings.NewReader("weak\n")
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("a weak token: %v, want exit code 2", err)
	}
}

// TestAPIThrottleAndHashedTokensOnTheDaemon runs presenced against the lab: a user whose token
// the configuration holds as an argon2id hash signs in with Basic auth; 50 wrong tokens from
// one address get 10×401 then 429 with Retry-After, also for the right token; another address
// is served; the block lives in the lab Redis (shared by every instance).
func TestAPIThrottleAndHashedTokensOnTheDaemon(t *testing.T) {
	const blockKey = authFailureKeyPrefix + "127.0.0.1"
	rdb := labRedisClient(t)
	rdb.Del(context.Background(), blockKey)
	t.Cleanup(func() { rdb.Del(context.Background(), blockKey) }) // later tests call from 127.0.0.1 too
	carolHash, err := secret.NewHash(testToken("carol"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(fixture(t, "config/end-to-end.yaml", nil), "    token: "+testToken("carol")+"\n", "    token_hash: '"+carolHash+"'\n", 1)
	d := startDaemon(t, profileConfig(t, yaml))
	d.waitReady(t, 15*time.Second)

	do := func(from, path, auth string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, d.base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s from %s: %v", path, from, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkAnswer(t, req, resp, body) // 200, 401 and 429 (with Retry-After) as documented
		return resp
	}
	basic := func(user, token string) string {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, token)
		return req.Header.Get("Authorization")
	}
	if resp := do("127.0.0.1", "/api/v1/users/carol", basic("carol", testToken("carol"))); resp.StatusCode != http.StatusOK {
		t.Fatalf("carol (token_hash) with Basic auth: %d", resp.StatusCode)
	}
	if resp := do("127.0.0.1", "/api/v1/users/carol", basic("1003", testToken("carol"))); resp.StatusCode != http.StatusOK {
		t.Fatalf("carol by extension: %d", resp.StatusCode)
	}
	codes := map[int]int{}
	for i := range 50 {
		resp := do("127.0.0.1", "/api/v1/users/alice", "Bearer wrong-"+strconv.Itoa(i)+"-"+testToken("alice"))
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 890 || ra > 900 {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 40 {
		t.Fatalf("answers to 50 wrong tokens: %v, want 10×401, 40×429", codes)
	}
	if resp := do("127.0.0.1", "/api/v1/users/alice", "Bearer "+testToken("alice")); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right token from the blocked address: %d, want 429", resp.StatusCode)
	}
	if resp := do("127.0.0.2", "/api/v1/users/alice", "Bearer "+testToken("alice")); resp.StatusCode != http.StatusOK {
		t.Fatalf("the right token from another address: %d", resp.StatusCode)
	}
	for name, want := range map[string]float64{
		`presenced_api_auth_failures_total{reason="invalid_token"}`: 10,
		`presenced_api_throttled_total`:                             41,
		`presenced_api_hash_verifications_total`:                    1, // carol's token, once
		`presenced_throttle_redis_errors_total{limiter="api"}`:      0,
	} {
		if got := d.metric(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if ttl := rdb.PTTL(context.Background(), blockKey).Val(); ttl <= 14*time.Minute || ttl > 15*time.Minute {
		t.Errorf("%s TTL %v, want about 15m", blockKey, ttl)
	}
	rdb.Del(context.Background(), blockKey) // the block ends
	if resp := do("127.0.0.1", "/api/v1/users/alice", "Bearer "+testToken("alice")); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the block ended in Redis: %d", resp.StatusCode)
	}
}

func labRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestFeatureCodePINFromHashAndFile: a PIN given as pin_hash (argon2id) or in a pin_file works
// like a plain one for feature codes from another user's phone, and a wrong one is refused.
func TestFeatureCodePINFromHashAndFile(t *testing.T) {
	pinHash, err := secret.NewHash("4321")
	if err != nil {
		t.Fatal(err)
	}
	f := startFeatureCodeDaemon(t, fixture(t, "config/feature-codes.yaml", userKeys{
		"carol": {"pin_hash: '" + pinHash + "'"},
		"alice": {"pin_file: " + writeFile(t, "alice-pin", "2468\n")},
	}))
	f.d.switchTo(t, "alice", "available", "")
	f.d.switchTo(t, "carol", "available", "")
	const alicePhone, carolPhone = "1001", "1003" // their desk phones

	id, name := f.dial("*559*1003", alicePhone)
	f.keys(name, "4321#")
	f.expect(f.outcome(id, 20*time.Second), featurecode.ResultSwitched, "carol", "1003", "gone")

	id, name = f.dial("*553*1001", carolPhone)
	f.keys(name, "2468#")
	f.expect(f.outcome(id, 20*time.Second), featurecode.ResultSwitched, "alice", "1001", "lunch")

	failures := f.d.metric(t, "presenced_featurecode_pin_failures_total")
	id, name = f.dial("*551*1003", alicePhone)
	for range 3 {
		f.keys(name, "4322#")
		time.Sleep(300 * time.Millisecond)
	}
	f.expect(f.outcome(id, 30*time.Second), featurecode.ResultBadPIN, "carol", "1003", "gone")
	if got := f.d.metric(t, "presenced_featurecode_pin_failures_total") - failures; got != 3 {
		t.Errorf("PIN failures counted %v, want 3", got)
	}
	f.rdb.Del(f.ctx(), featurecode.PINFailureKey("", "carol"))
}

// TestLabConfigAndREADMETokens: deploy/presenced.lab.yaml (make up) passes the token checks,
// and every token the README's curl examples send is one the lab accepts for that user.
func TestLabConfigAndREADMETokens(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", filepath.Join("..", "..", "deploy", "presenced.lab.yaml")}, minimalEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bearers := regexp.MustCompile(`Bearer (lab-[A-Za-z0-9_-]+)`).FindAllStringSubmatch(string(readme), -1)
	basics := regexp.MustCompile(`curl -u ([a-z0-9]+):(lab-[A-Za-z0-9_-]+)`).FindAllStringSubmatch(string(readme), -1)
	if len(bearers) < 5 || len(basics) < 2 {
		t.Fatalf("README examples: %d Bearer, %d Basic; the test looks for more", len(bearers), len(basics))
	}
	for _, m := range bearers {
		ok := m[1] == string(cfg.API.AdminToken)
		for _, u := range cfg.catalog.Users {
			ok = ok || m[1] == u.Token
		}
		if !ok {
			t.Errorf("README sends Bearer %s, which the lab does not know", m[1])
		}
	}
	for _, m := range basics {
		u, ok := cfg.catalog.User(presence.UserID(m[1]))
		if !ok {
			u, ok = cfg.catalog.UserByExtension(m[1])
		}
		if !ok {
			t.Errorf("README signs in as %s, no lab user", m[1])
			continue
		}
		h, err := secret.ParseHash(u.TokenHash)
		if u.Token != m[2] && (err != nil || !h.Verify(m[2])) {
			t.Errorf("README signs in as %s with a token that is not %s's", m[1], u.ID)
		}
	}
}
