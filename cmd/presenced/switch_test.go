package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/openapicheck"
)

// profileConfig is the configuration of a presenced with the given YAML (users, profiles, ...)
// against the lab Asterisk and Redis. The users alice and carol start with no state.
func profileConfig(t testing.TB, yaml string) Config {
	t.Helper()
	cfg, _ := profileConfigFile(t, yaml)
	return cfg
}

// profileConfigFile is profileConfig, with the path of the configuration file it wrote (which
// a reload reads again).
func profileConfigFile(t testing.TB, yaml string) (Config, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "presenced.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	base := labConfig(t, env.AMIAddr, env.ARIURL)
	environ := []string{
		"PRESENCED_ASTERISK_AMI_ADDRESS=" + base.Asterisk.AMI.Address,
		"PRESENCED_ASTERISK_AMI_USERNAME=" + env.AMIUser,
		"PRESENCED_ASTERISK_AMI_SECRET=" + env.AMISecret,
		"PRESENCED_ASTERISK_ARI_URL=" + env.ARIURL,
		"PRESENCED_ASTERISK_ARI_PASSWORD=" + env.ARIPassword,
		"PRESENCED_INSTANCE_ID=" + base.InstanceID,
		"PRESENCED_HTTP_LISTEN=127.0.0.1:0",
		"PRESENCED_REDIS_URL=" + env.RedisURL,
	}
	cfg, _, err := loadConfig([]string{"-config", path}, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	forgetUsers(t, "alice", "carol")
	return cfg, path
}

// startProfileDaemon runs presenced with the end-to-end configuration
// (testdata/config/end-to-end.yaml) against the lab.
func startProfileDaemon(t *testing.T) (*daemonUnderTest, Config) {
	t.Helper()
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	return d, cfg
}

// forgetUsers deletes what earlier tests left of the users in the lab Redis (state, journal,
// personal profiles, PIN failures), so that each test starts from users never switched.
func forgetUsers(t testing.TB, ids ...string) {
	t.Helper()
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range ids {
		keys, err := rdb.Keys(ctx, "presenced:user:"+id+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, "presenced:pinfail:"+id)
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// openAPIValidator checks the daemon's API answers against api/openapi.json (kin-openapi), the
// document the daemon embeds and serves.
var openAPIValidator = sync.OnceValues(func() (*openapicheck.Validator, error) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "api", "openapi.json"))
	if err != nil {
		return nil, err
	}
	return openapicheck.New(doc)
})

// checkAnswer fails the test when an API answer is not as the OpenAPI document says.
func checkAnswer(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	v, err := openAPIValidator()
	if err != nil {
		t.Fatal(err)
	}
	switch err := v.Check(req, resp.StatusCode, resp.Header, body); {
	case errors.Is(err, openapicheck.ErrNoRoute):
		// Nothing to check an answer to an undocumented request against: fine for a refusal
		// (an unknown path, a wrong method), not for a route that serves.
		if resp.StatusCode < 300 {
			t.Errorf("%s %s answered %d, and the OpenAPI document has no such operation", req.Method, req.URL.Path, resp.StatusCode)
		}
	case err != nil:
		t.Error(err)
	}
}

func (d *daemonUnderTest) call(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAnswer(t, req, resp, raw)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out
}

func (d *daemonUnderTest) switchTo(t testing.TB, user, profile, info string) map[string]any {
	t.Helper()
	code, res := d.call(t, http.MethodPut, "/api/v1/users/"+user+"/profile", testToken("admin"), map[string]string{"profile": profile, "info": info})
	if code != http.StatusOK {
		t.Fatalf("switch %s to %s: %d %v", user, profile, code, res)
	}
	if res["in_sync"] != true {
		t.Fatalf("switch %s to %s not in sync: %v", user, profile, res)
	}
	return res
}

// pbx reads the lab Asterisk as an admin's tool would.
type pbx struct {
	t *testing.T
	c *ami.Client
}

func (p *pbx) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	p.t.Cleanup(cancel)
	return ctx
}

func (p *pbx) member(queue, iface string) *ami.QueueMember {
	p.t.Helper()
	st, err := p.c.QueueStatus(p.ctx(), queue, "")
	if err != nil {
		p.t.Fatal(err)
	}
	for i, m := range st.Members {
		if strings.EqualFold(m.Location, iface) {
			return &st.Members[i]
		}
	}
	return nil
}

func (p *pbx) db(family, key string) (string, bool) {
	p.t.Helper()
	v, err := p.c.DBGet(p.ctx(), family, key)
	if msg, ok := ami.ResponseMessage(err); ok && strings.Contains(msg, "not found") {
		return "", false
	}
	if err != nil {
		p.t.Fatal(err)
	}
	return v, true
}

func (p *pbx) getvar(name string) string {
	p.t.Helper()
	v, err := p.c.Getvar(p.ctx(), "", name)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// TestSwitchThroughAPILandsOnPBX switches Alice through every profile over the REST API and
// checks each one on the PBX itself.
func TestSwitchThroughAPILandsOnPBX(t *testing.T) {
	d, _ := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"

	d.switchTo(t, "alice", "available", "")
	for _, q := range []string{"support", "sales"} {
		m := p.member(q, iface)
		if m == nil || m.Paused || m.Name != "Alice" || m.StateInterface != "hint:1001@hints" {
			t.Fatalf("available: %s member %+v", q, m)
		}
	}
	if m := p.member("sales", iface); m.Penalty != 1 {
		t.Errorf("sales penalty %d, want 1", m.Penalty)
	}
	if v, _ := p.db("PROFILE", "1001/active"); v != "available" {
		t.Errorf("PROFILE/1001/active = %q", v)
	}
	if s := p.getvar("DEVICE_STATE(Custom:PROFILE1001-1)"); s != "BUSY" {
		t.Errorf("available lamp %q", s)
	}

	d.switchTo(t, "alice", "lunch", "back at 1")
	for _, q := range []string{"support", "sales"} {
		if m := p.member(q, iface); m == nil || !m.Paused || m.PausedReason != "Lunch" {
			t.Fatalf("lunch: %s member %+v", q, m)
		}
	}
	ps, err := p.c.PresenceState(p.ctx(), "CustomPresence:1001")
	if err != nil || ps.State != "away" || ps.Message != "Lunch (back at 1)" {
		t.Fatalf("lunch presence %+v %v", ps, err)
	}
	if s := p.getvar("DEVICE_STATE(Custom:PROFILE1001-3)"); s != "BUSY" {
		t.Errorf("lunch lamp %q", s)
	}
	if s := p.getvar("DEVICE_STATE(Custom:PROFILE1001-1)"); s != "INVALID" {
		t.Errorf("available lamp after leaving it %q", s)
	}

	d.switchTo(t, "alice", "meeting", "")
	for _, q := range []string{"support", "sales"} {
		if m := p.member(q, iface); m == nil || m.Paused {
			t.Fatalf("meeting: lunch's exit unpauses %s: %+v", q, m)
		}
	}
	for _, c := range []struct{ family, key, want string }{
		{"DND", "1001", "YES"},
		{"CFB", "1001", "1002"},
		{"PROFILE", "1001/dialstring", "PJSIP/1001-mobile|"}, // sequential: a step per family
		{"PROFILE", "1001/ringmode", "sequential"},
		{"PROFILE", "1001/ringtime", "15"},
		{"PROFILE", "1001/callerid", "Support <7001>"},
		{"PROFILE", "1001/dndtext", "In a meeting"},
		{"E2E", "1001/meeting", "50%: yes, really"},
	} {
		if v, ok := p.db(c.family, c.key); !ok || v != c.want {
			t.Errorf("%s/%s = %q (%v), want %q", c.family, c.key, v, ok, c.want)
		}
	}
	es, err := p.c.ExtensionState(p.ctx(), "*761001", "hints")
	if err != nil || es.StatusText != "Busy" {
		t.Errorf("DND BLF *761001@hints = %+v %v, want Busy", es, err)
	}

	d.switchTo(t, "alice", "gone", "")
	for _, q := range []string{"support", "sales"} {
		if m := p.member(q, iface); m != nil {
			t.Fatalf("gone: still in %s: %+v", q, m)
		}
	}
	if _, ok := p.db("DND", "1001"); ok {
		t.Error("DND/1001 still set after meeting's exit")
	}
	if _, ok := p.db("CFB", "1001"); ok {
		t.Error("CFB/1001 still set after meeting's exit")
	}
	if v, _ := p.db("PROFILE", "1001/dialstring"); v != "PJSIP/1001&PJSIP/1001-mobile" {
		t.Errorf("dialstring after meeting's exit %q", v)
	}

	code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("alice"), nil)
	if code != http.StatusOK {
		t.Fatalf("GET alice: %d %v", code, st)
	}
	if drift, _ := st["drift"].([]any); len(drift) != 0 {
		t.Errorf("drift after switches: %v", drift)
	}
}

// TestHandUnpauseIsRepaired: an admin unpauses Carol by hand from another AMI connection;
// the QueueMemberPause event makes presenced put the pause back within 2 s, journaled as a
// repair.
func TestHandUnpauseIsRepaired(t *testing.T) {
	d, _ := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1003@presenced-queue-member/n"
	d.switchTo(t, "carol", "available", "")
	d.switchTo(t, "carol", "lunch", "")
	if err := p.c.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if m := p.member("support", iface); m != nil && m.Paused && m.PausedReason == "Lunch" {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("not repaired within 2s: %+v", p.member("support", iface))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("repaired %v after the hand unpause", time.Since(start).Round(time.Millisecond))
	code, j := d.call(t, http.MethodGet, "/api/v1/users/carol/journal?limit=1", testToken("carol"), nil)
	entries, _ := j["entries"].([]any)
	if code != http.StatusOK || len(entries) != 1 || entries[0].(map[string]any)["kind"] != "repair" {
		t.Fatalf("journal: %d %v", code, j)
	}
}

// TestHandChangesRightAfterOwnChangesAreRepaired: an event is a reason to look, never a
// verdict, so a change by hand 100 ms after presenced's own change (which an echo window used to
// swallow) is found and put back within 2 s: an unpause right after a switch, a QueueRemove
// right after a repair.
func TestHandChangesRightAfterOwnChangesAreRepaired(t *testing.T) {
	d, _ := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1003@presenced-queue-member/n"
	d.switchTo(t, "carol", "available", "")
	d.switchTo(t, "carol", "lunch", "")
	time.Sleep(100 * time.Millisecond)
	if err := p.c.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 2*time.Second, "the unpause 100 ms after the switch repaired", func() bool {
		m := p.member("support", iface)
		return m != nil && m.Paused && m.PausedReason == "Lunch"
	})
	t.Logf("unpause 100 ms after the switch: repaired in %v", took.Round(time.Millisecond))
	time.Sleep(100 * time.Millisecond) // 100 ms after that repair
	if err := p.c.QueueRemove(p.ctx(), iface, "support"); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, 2*time.Second, "the QueueRemove 100 ms after the repair repaired", func() bool {
		m := p.member("support", iface)
		return m != nil && m.Paused && m.PausedReason == "Lunch"
	})
	t.Logf("QueueRemove 100 ms after the repair: repaired in %v", took.Round(time.Millisecond))
}

// TestDriftShowsInStatus: astdb changes have no events, so a key deleted by hand shows as drift
// in the user's status (until the periodic check); Carol may not read Alice's status.
func TestDriftShowsInStatus(t *testing.T) {
	d, _ := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	d.switchTo(t, "carol", "lunch", "")
	if err := p.c.DBDel(p.ctx(), "PROFILE", "1003/active"); err != nil {
		t.Fatal(err)
	}
	code, st := d.call(t, http.MethodGet, "/api/v1/users/carol", testToken("carol"), nil)
	if code != http.StatusOK {
		t.Fatalf("GET carol: %d %v", code, st)
	}
	drift, _ := st["drift"].([]any)
	if len(drift) != 1 || !strings.Contains(toJSON(drift), `"PROFILE/1003/active"`) {
		t.Fatalf("drift = %s, want the deleted key", toJSON(drift))
	}
	if code, _ := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("carol"), nil); code != http.StatusForbidden {
		t.Errorf("carol reading alice: %d, want 403", code)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestConcurrentSwitchesOfOneUserOnPBX: many API switches of one user at once are serialised:
// every one is journaled, and the PBX ends in the state of the last one.
func TestConcurrentSwitchesOfOneUserOnPBX(t *testing.T) {
	d, _ := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"
	d.switchTo(t, "alice", "available", "")
	profiles := []string{"lunch", "available", "meeting", "lunch", "available", "meeting", "lunch", "available"}
	done := make(chan int, len(profiles))
	for _, pr := range profiles {
		go func() {
			code, _ := d.call(t, http.MethodPut, "/api/v1/users/alice/profile", testToken("alice"), map[string]string{"profile": pr})
			done <- code
		}()
	}
	for range profiles {
		if code := <-done; code != http.StatusOK {
			t.Fatalf("concurrent switch: %d", code)
		}
	}
	code, j := d.call(t, http.MethodGet, "/api/v1/users/alice/journal?limit=20", testToken("alice"), nil)
	if code != http.StatusOK {
		t.Fatalf("journal: %d", code)
	}
	entries, _ := j["entries"].([]any)
	if len(entries) != len(profiles)+1 {
		t.Fatalf("journal has %d entries, want %d", len(entries), len(profiles)+1)
	}
	for i := 0; i+1 < len(entries); i++ { // newest first; each switch starts where the previous ended
		cur, prev := entries[i].(map[string]any), entries[i+1].(map[string]any)
		if cur["from"] != prev["to"] {
			t.Fatalf("journal entry %d from %v, the one before went to %v", i, cur["from"], prev["to"])
		}
	}
	last := entries[0].(map[string]any)["to"].(string)
	if v, _ := p.db("PROFILE", "1001/active"); v != last {
		t.Fatalf("PBX says %q, the last switch went to %q", v, last)
	}
	wantPaused := last == "lunch"
	for _, q := range []string{"support", "sales"} {
		if m := p.member(q, iface); m == nil || m.Paused != wantPaused {
			t.Fatalf("after the last switch (%s): %s member %+v", last, q, m)
		}
	}
	_, dndSet := p.db("DND", "1001")
	if dndSet != (last == "meeting") {
		t.Fatalf("after the last switch (%s): DND set %v", last, dndSet)
	}
}

// TestTriggersAreWired: the daemon serves timed profiles, external triggers and the "why"
// (package trigger has the behaviour's tests, on a controlled clock).
func TestTriggersAreWired(t *testing.T) {
	d, _ := startProfileDaemon(t)
	d.switchTo(t, "carol", "available", "")
	code, res := d.call(t, http.MethodPost, "/api/v1/users/carol/triggers/calendar", testToken("carol"),
		map[string]string{"state": "start", "profile": "lunch"})
	if code != http.StatusOK || res["switched"] != true {
		t.Fatalf("external start: %d %v", code, res)
	}
	code, st := d.call(t, http.MethodGet, "/api/v1/users/carol", testToken("carol"), nil)
	if code != http.StatusOK || st["profile"] != "lunch" || st["source"] != "external" ||
		st["trigger"] != "external:calendar" || st["returns_to"] != "available" {
		t.Fatalf("GET carol during the trigger: %d %s", code, toJSON(st))
	}
	code, res = d.call(t, http.MethodPost, "/api/v1/users/carol/triggers/calendar", testToken("carol"), map[string]string{"state": "end"})
	if code != http.StatusOK || res["switched"] != true || res["profile"] != "available" {
		t.Fatalf("external end: %d %v", code, res)
	}
	code, res = d.call(t, http.MethodPut, "/api/v1/users/carol/profile", testToken("carol"),
		map[string]string{"profile": "lunch", "until": "1h"})
	if code != http.StatusOK {
		t.Fatalf("timed switch: %d %v", code, res)
	}
	_, st = d.call(t, http.MethodGet, "/api/v1/users/carol", testToken("carol"), nil)
	next, _ := st["next_change"].(map[string]any)
	if st["until"] == nil || next["kind"] != "expiry" || next["at"] != st["until"] {
		t.Fatalf("GET carol after a timed switch: %s", toJSON(st))
	}
	d.switchTo(t, "carol", "available", "") // cancels the return
	if v := d.metric(t, `presenced_trigger_events_total{kind="external_start",result="switched"}`); v < 1 {
		t.Errorf("external starts counted: %v", v)
	}
}

// TestStartupRepairsWhatChangedWhileDown: presenced stops, an admin removes Alice from her
// queues and unpauses her by hand; the next presenced puts her back, paused, by itself, once
// Asterisk is ready.
func TestStartupRepairsWhatChangedWhileDown(t *testing.T) {
	d, cfg := startProfileDaemon(t)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"
	d.switchTo(t, "alice", "available", "")
	d.switchTo(t, "alice", "lunch", "")
	d.stop(t)

	if err := p.c.QueueRemove(p.ctx(), iface, "support"); err != nil {
		t.Fatal(err)
	}
	if err := p.c.QueuePause(p.ctx(), iface, "sales", false, ""); err != nil {
		t.Fatal(err)
	}
	if err := p.c.DBDel(p.ctx(), "PROFILE", "1001/active"); err != nil {
		t.Fatal(err)
	}

	d2 := startDaemon(t, cfg) // same Redis: it knows Alice is at lunch
	d2.waitReady(t, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		sup, sal := p.member("support", iface), p.member("sales", iface)
		active, _ := p.db("PROFILE", "1001/active")
		if sup != nil && sup.Paused && sup.PausedReason == "Lunch" && sal != nil && sal.Paused && active == "lunch" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired after startup: support %+v, sales %+v, active %q", sup, sal, active)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, j := d2.call(t, http.MethodGet, "/api/v1/users/alice/journal?limit=1", testToken("alice"), nil)
	entries, _ := j["entries"].([]any)
	if code != http.StatusOK || len(entries) != 1 || entries[0].(map[string]any)["kind"] != "repair" {
		t.Fatalf("journal after startup repair: %d %v", code, j)
	}
}
