package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// Tokens of the security tests: long and random enough for any check of their strength.
const (
	secAdminToken = "sec-Adm1n-9vQx2LmT7pKw4ZrB"
	secAliceToken = "sec-Alice-3hGf8TqW1nZx6PcV"
	secBobToken   = "sec-Bob-5yJd2RkS8mLq4XtN"
)

// securityYAML is the security tests' configuration (testdata/config/security.yaml) with their
// tokens.
func securityYAML(t testing.TB) string {
	t.Helper()
	return fixture(t, "config/security.yaml", map[string]string{"Admin": secAdminToken, "Alice": secAliceToken, "Bob": secBobToken})
}

// startSecurityDaemon runs presenced with securityYAML against the lab, with alice, bob and
// carol never switched and the keys the attacks aim at absent from the PBX.
func startSecurityDaemon(t *testing.T) (*daemonUnderTest, *pbx) {
	t.Helper()
	cfg := profileConfig(t, securityYAML(t))
	forgetUsers(t, "bob")
	p := &pbx{t: t, c: newProbe(t).c}
	clean := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, k := range [][2]string{{"CF", "1002"}, {"DND", "1003"}, {"DND", "1001"}, {"CFB", "1001"}} {
			_ = p.c.DBDel(ctx, k[0], k[1])
		}
		_ = p.c.DBDelTree(ctx, "PROFILE", "1001")
		_ = p.c.Setvar(ctx, "", "DEVICE_STATE(Custom:DND1002)", "NOT_INUSE")
	}
	clean()
	d := startDaemon(t, cfg)
	t.Cleanup(func() { d.stop(t); clean() })
	d.waitReady(t, 15*time.Second)
	// Leading comes before the engine's first pass has put PRESENCED_APP back: the tests
	// compare against it, so wait for this daemon's (as fcLab.start does).
	app := cfg.Asterisk.ARI.App + "-" + cfg.InstanceID
	eventually(t, 10*time.Second, "PRESENCED_APP = "+app, func() bool { return p.getvar("PRESENCED_APP") == app })
	return d, p
}

// nothingLanded checks on the PBX that none of the attacks' targets changed.
func nothingLanded(t *testing.T, p *pbx, app string) {
	t.Helper()
	for _, k := range [][2]string{{"CF", "1002"}, {"DND", "1003"}, {"PROFILE", "1001/location"}, {"PROFILE", "1001/callerid"}, {"CFB", "1001"}} {
		if v, ok := p.db(k[0], k[1]); ok {
			t.Errorf("astdb %s/%s = %q: an attack landed on the PBX", k[0], k[1], v)
		}
	}
	if got := p.getvar("PRESENCED_APP"); got != app {
		t.Errorf("PRESENCED_APP = %q, want %q", got, app)
	}
	if got := p.getvar("DEVICE_STATE(Custom:DND1002)"); got == "BUSY" {
		t.Errorf("Bob's DND lamp is BUSY")
	}
}

// TestPersonalProfileAttacksAreRefused: every way the security review found for a user to reach
// a colleague's phone, the dialplan or the whole PBX through a personal profile is refused with a
// 422 naming the field, and nothing of it lands on the PBX.
func TestPersonalProfileAttacksAreRefused(t *testing.T) {
	d, p := startSecurityDaemon(t)
	app := p.getvar("PRESENCED_APP")
	if app == "" {
		t.Fatal("PRESENCED_APP is not set")
	}
	action := func(a map[string]any) map[string]any { return map[string]any{"on_enter": []any{a}} }
	manyLamps := make([]any, 900)
	for i := range manyLamps {
		manyLamps[i] = map[string]any{"action": "lamp", "device": fmt.Sprintf("Custom:USER1001-%d", i), "state": "BUSY"}
	}
	for _, tc := range []struct {
		name      string
		body      map[string]any
		wantField string
		wantError string
	}{
		{"forward Bob's calls", action(map[string]any{"action": "variable", "name": "CF/1002", "value": "8666"}), "on_enter[0].name", "not a key of yours"},
		{"Carol in DND", action(map[string]any{"action": "variable", "name": "DND/1003", "value": "YES"}), "on_enter[0].name", "not a key of yours"},
		{"break every feature code", action(map[string]any{"action": "variable", "scope": "global", "name": "PRESENCED_APP", "value": "x"}), "on_enter[0].scope", "global variables are for system-wide profiles only"},
		{"own caller ID key", action(map[string]any{"action": "variable", "name": "PROFILE/1001/callerid", "value": "1003"}), "on_enter[0].name", "not a key of yours"},
		{"ring any dialplan target", action(map[string]any{"action": "location", "device": "Local/8999@lab-sink/n"}), "on_enter[0].device", "neither one of your devices nor a hot desk"},
		{"call as Carol", action(map[string]any{"action": "caller_id", "value": `"Carol" <1003>`}), "on_enter[0].value", "not a caller ID assigned to you"},
		{"forward to a feature code", action(map[string]any{"action": "forward", "type": "busy", "to": "*552"}), "on_enter[0].to", "no * or #"},
		{"Bob's DND lamp", action(map[string]any{"action": "lamp", "device": "Custom:DND1002", "state": "BUSY"}), "on_enter[0].device", "not a lamp of yours"},
		{"a value Asterisk cannot take", action(map[string]any{"action": "variable", "name": "PROFILE/1001/var/x", "value": strings.Repeat("x", 3000)}), "on_enter[0].value", "at most 1017 bytes"},
		{"900 lamps", map[string]any{"on_enter": manyLamps}, "on_enter", "900 actions in on_enter and on_exit, the limit is 20"},
		{"a control character", map[string]any{"name": "Away\u000b"}, "name", "control characters"},
		{"a colour that is CSS", map[string]any{"colour": "red;background:url(//x)"}, "colour", "colour name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res := d.call(t, http.MethodPut, "/api/v1/users/alice/profiles/evil", secAliceToken, tc.body)
			if code != http.StatusUnprocessableEntity || res["field"] != tc.wantField || !strings.Contains(fmt.Sprint(res["error"]), tc.wantError) {
				t.Fatalf("%d %v, want 422 naming %s: %q", code, res, tc.wantField, tc.wantError)
			}
		})
	}
	// One user's store is bounded: 20 profiles, then a 422 naming the limit.
	for i := range 20 {
		if code, res := d.call(t, http.MethodPut, fmt.Sprintf("/api/v1/users/alice/profiles/p%d", i), secAliceToken,
			map[string]any{"on_enter": []any{map[string]any{"action": "dnd"}}}); code != http.StatusCreated {
			t.Fatalf("profile %d: %d %v", i, code, res)
		}
	}
	if code, res := d.call(t, http.MethodPut, "/api/v1/users/alice/profiles/p20", secAliceToken, map[string]any{}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(res["error"]), "limits.personal_profiles") {
		t.Fatalf("the 21st profile: %d %v", code, res)
	}
	// Switching through what was accepted changes nothing of anybody else's.
	d.switchToWith(t, secAdminToken, "alice", "p3", "")
	d.switchToWith(t, secAdminToken, "alice", "available", "")
	nothingLanded(t, p, app)
}

// TestStoredProfilesAreCheckedAgain: a personal profile that is already in Redis (written by an
// older presenced or by hand) is checked against the rules whenever it is compiled: its
// refused actions never reach the PBX, its allowed ones do.
func TestStoredProfilesAreCheckedAgain(t *testing.T) {
	d, p := startSecurityDaemon(t)
	app := p.getvar("PRESENCED_APP")
	evil := presence.Profile{ID: "evil", Name: "Evil", OnEnter: []presence.Action{
		{Kind: presence.ActionVariable, Name: "CF/1002", Value: "8666"},
		{Kind: presence.ActionVariable, Scope: "global", Name: "PRESENCED_APP", Value: "x"},
		{Kind: presence.ActionLocation, Device: "Local/8999@lab-sink/n"},
		{Kind: presence.ActionCallerID, Value: `"Carol" <1003>`},
		{Kind: presence.ActionLamp, Device: "Custom:DND1002", State: "BUSY"},
		{Kind: presence.ActionDND},
	}}
	raw, _ := json.Marshal(evil)
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.HSet(context.Background(), "presenced:user:alice:profiles", "evil", string(raw)).Err(); err != nil {
		t.Fatal(err)
	}
	d.switchToWith(t, secAliceToken, "alice", "evil", "")
	if v, ok := p.db("DND", "1001"); !ok || v != "YES" {
		t.Errorf("the allowed DND action: DND/1001 = %q %v", v, ok)
	}
	// The periodic and the one-call reconcile do not put them there either.
	if code, res := d.call(t, http.MethodPost, "/api/v1/users/alice/reconcile", secAliceToken, nil); code != http.StatusOK {
		t.Fatalf("reconcile: %d %v", code, res)
	}
	nothingLanded(t, p, app)
	if n := d.metric(t, "presenced_personal_actions_refused_total"); n < 5 {
		t.Errorf("presenced_personal_actions_refused_total = %v, want the five refused actions counted", n)
	}
}

// TestDeletedProfileIsNotPutBack: what a personal profile put on the PBX stays desired while no
// later profile changes it, and stops being desired when the profile is deleted: the reconciler
// no longer writes it back.
func TestDeletedProfileIsNotPutBack(t *testing.T) {
	d, p := startSecurityDaemon(t)
	body := map[string]any{"on_enter": []any{
		map[string]any{"action": "variable", "name": "PROFILE/1001/var/x", "value": "1"},
		map[string]any{"action": "forward", "type": "busy", "to": "1002"},
	}}
	if code, res := d.call(t, http.MethodPut, "/api/v1/users/alice/profiles/fwd", secAliceToken, body); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, res)
	}
	d.switchToWith(t, secAliceToken, "alice", "fwd", "")
	d.switchToWith(t, secAliceToken, "alice", "available", "")
	if v, _ := p.db("PROFILE", "1001/var/x"); v != "1" {
		t.Fatalf("PROFILE/1001/var/x = %q after the switch", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// While the profile exists, what it put there is repaired.
	if err := p.c.DBDel(ctx, "PROFILE", "1001/var/x"); err != nil {
		t.Fatal(err)
	}
	if code, _ := d.call(t, http.MethodPost, "/api/v1/users/alice/reconcile", secAliceToken, nil); code != http.StatusOK {
		t.Fatal(code)
	}
	if v, _ := p.db("PROFILE", "1001/var/x"); v != "1" {
		t.Fatalf("PROFILE/1001/var/x = %q: not repaired while its profile exists", v)
	}
	if code, res := d.call(t, http.MethodDelete, "/api/v1/users/alice/profiles/fwd", secAliceToken, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, res)
	}
	if err := p.c.DBDel(ctx, "PROFILE", "1001/var/x"); err != nil {
		t.Fatal(err)
	}
	if err := p.c.DBDel(ctx, "CFB", "1001"); err != nil {
		t.Fatal(err)
	}
	if code, _ := d.call(t, http.MethodPost, "/api/v1/users/alice/reconcile", secAliceToken, nil); code != http.StatusOK {
		t.Fatal(code)
	}
	for _, k := range [][2]string{{"PROFILE", "1001/var/x"}, {"CFB", "1001"}} {
		if v, ok := p.db(k[0], k[1]); ok {
			t.Errorf("%s/%s = %q put back after its profile was deleted", k[0], k[1], v)
		}
	}
	_, st := d.call(t, http.MethodGet, "/api/v1/users/alice", secAliceToken, nil)
	if astdb, _ := st["desired"].(map[string]any)["astdb"].(map[string]any); astdb != nil {
		for _, k := range []string{"PROFILE/1001/var/x", "CFB/1001"} {
			if _, has := astdb[k]; has {
				t.Errorf("%s is still in the desired state: %v", k, astdb)
			}
		}
	}
}

// TestPrivateProfileOnThePBX: the phones see a private profile's presence state with a neutral
// text, never its name or the info.
func TestPrivateProfileOnThePBX(t *testing.T) {
	d, p := startSecurityDaemon(t)
	body := map[string]any{"name": "Oncology", "visibility": "private", "presence": "away",
		"on_enter": []any{map[string]any{"action": "presence", "message": "at the hospital"}}}
	if code, res := d.call(t, http.MethodPut, "/api/v1/users/alice/profiles/doc", secAliceToken, body); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, res)
	}
	d.switchToWith(t, secAliceToken, "alice", "doc", "chemo at St. Mary, back Tuesday")
	ps, err := p.c.PresenceState(p.ctx(), "CustomPresence:1001")
	if err != nil {
		t.Fatal(err)
	}
	if ps.State != "away" || ps.Message != "Away" {
		t.Fatalf("PresenceState(CustomPresence:1001) = %s %q, want away with the neutral text", ps.State, ps.Message)
	}
	for _, h := range ps.Raw.Headers {
		for _, secret := range []string{"chemo", "Oncology", "hospital"} {
			if strings.Contains(h.Value, secret) {
				t.Errorf("the PBX's presence carries %q: %s: %s", secret, h.Key, h.Value)
			}
		}
	}
}

// TestPenaltyAppQueueCannotKeepIsRefused: a penalty app_queue would store as something else
// (permanent drift) is a configuration error naming the key, and presenced exits 2.
func TestPenaltyAppQueueCannotKeepIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presenced.yaml")
	yaml := strings.Replace(securityYAML(t), "queues: [{name: support, penalty: 0}]", "queues: [{name: support, penalty: 99999999999}]", 1)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	code := realMain([]string{"-config", path, "-check-config"}, []string{
		"PRESENCED_ASTERISK_AMI_SECRET=x", "PRESENCED_ASTERISK_ARI_PASSWORD=x"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "users[0] (alice).queues[0].penalty: 99999999999 is more than 2147483647") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// switchToWith switches user to profile with token and fails the test unless it is in sync.
func (d *daemonUnderTest) switchToWith(t *testing.T, token, user, profile, info string) map[string]any {
	t.Helper()
	code, res := d.call(t, http.MethodPut, "/api/v1/users/"+user+"/profile", token, map[string]string{"profile": profile, "info": info})
	if code != http.StatusOK {
		t.Fatalf("switch %s to %s: %d %v", user, profile, code, res)
	}
	if res["in_sync"] != true {
		t.Fatalf("switch %s to %s not in sync: %v", user, profile, res)
	}
	return res
}
