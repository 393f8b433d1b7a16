package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/ari/featurecode"
)

// reloadAnswer posts /-/reload with token and returns the status and the answer.
func (d *daemonUnderTest) reload(t *testing.T, token string) (int, map[string]any) {
	t.Helper()
	return d.call(t, http.MethodPost, "/-/reload", token, nil)
}

// TestReload changes the configuration file of a running daemon against the lab and reloads
// it: a user added switches at once by the API and by *55 from his phone; a user removed has
// her queue membership, astdb keys, lamps and presence taken off the PBX and her state archived
// in Redis; bad files (an unknown key, a duplicate extension) change nothing, on the PBX or in
// the daemon, and set the metric to 0; a changed system-wide profile reaches the user in it,
// journaled as a reload, and what it no longer sets is taken off.
func TestReload(t *testing.T) {
	// The feature-code configuration and Carol's entry in it, which a reload replaces with Bob's.
	fc := fixture(t, "config/feature-codes.yaml", nil)
	carolYAML, bobYAML := fixture(t, "users/carol.yaml", nil), fixture(t, "users/bob.yaml", nil)
	if !strings.Contains(fc, carolYAML) {
		t.Fatal("users/carol.yaml is not Carol's entry of config/feature-codes.yaml")
	}
	cfg, path := profileConfigFile(t, fc)
	forgetUsers(t, "bob")
	f := startFeatureCodeDaemonWith(t, cfg, slog.LevelDebug)
	d := f.d
	p := &pbx{t: t, c: f.ami}
	admin := testToken("admin")
	write := func(yaml string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Carol in a meeting: a queue member, DND, forwarding, caller ID, a variable, lamps, presence.
	d.switchTo(t, "carol", "available", "")
	d.switchTo(t, "carol", "meeting", "")
	if m := p.member("support", "Local/1003@presenced-queue-member/n"); m == nil {
		t.Fatal("Carol is no support member before the reload")
	}
	if v, ok := p.db("DND", "1003"); !ok || v != "YES" {
		t.Fatalf("DND/1003 = %q %v before the reload", v, ok)
	}
	if d.metric(t, "presenced_config_last_reload_successful") != 1 {
		t.Fatal("presenced_config_last_reload_successful is not 1 at the start")
	}
	started := d.metric(t, "presenced_config_last_reload_success_timestamp_seconds")

	t.Run("only the admin reloads", func(t *testing.T) {
		if code, _ := d.reload(t, testToken("alice")); code != http.StatusForbidden {
			t.Fatalf("reload with a user's token: %d, want 403", code)
		}
		if code, _ := d.reload(t, ""); code != http.StatusUnauthorized {
			t.Fatalf("reload without a token: %d, want 401", code)
		}
	})

	t.Run("add bob, remove carol", func(t *testing.T) {
		write(strings.Replace(fc, carolYAML, bobYAML, 1))
		time.Sleep(1100 * time.Millisecond) // the success timestamp has whole seconds
		code, res := d.reload(t, admin)
		if code != http.StatusOK || res["status"] != "ok" {
			t.Fatalf("reload: %d %v", code, res)
		}
		if !slices.Equal(list(res["users_added"]), []string{"bob"}) || !slices.Equal(list(res["users_removed"]), []string{"carol"}) {
			t.Fatalf("reload answer %v, want bob added and carol removed", res)
		}
		if v := d.metric(t, "presenced_config_last_reload_success_timestamp_seconds"); v <= started {
			t.Errorf("success timestamp %v, not after the start's %v", v, started)
		}
		// Bob switches at once: by the API with his own token, then by *553 from his phone.
		code, sw := d.call(t, http.MethodPut, "/api/v1/users/bob/profile", testToken("bob"), map[string]string{"profile": "available"})
		if code != http.StatusOK || sw["in_sync"] != true {
			t.Fatalf("bob's switch after the reload: %d %v", code, sw)
		}
		if m := p.member("support", "Local/1002@presenced-queue-member/n"); m == nil || m.Paused || m.Name != "Bob" {
			t.Fatalf("bob's support member %+v", m)
		}
		id, _ := f.dial("*553", "1002")
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "bob", "1002", "lunch")

		// Carol's PBX state is taken off by the leader's pass, her state archived.
		eventually(t, 10*time.Second, "carol's support membership removed", func() bool {
			return p.member("support", "Local/1003@presenced-queue-member/n") == nil
		})
		eventually(t, 10*time.Second, "carol's state archived", func() bool {
			n, err := f.rdb.Exists(f.ctx(), "presenced:user:carol").Result()
			return err == nil && n == 0
		})
		for _, k := range [][2]string{{"DND", "1003"}, {"CFB", "1003"}, {"PROFILE", "1003/active"}, {"PROFILE", "1003/callerid"},
			{"PROFILE", "1003/dialstring"}, {"E2E", "1001/meeting"}} {
			if v, ok := p.db(k[0], k[1]); ok {
				t.Errorf("%s/%s = %q after carol was removed", k[0], k[1], v)
			}
		}
		for _, lamp := range []string{"Custom:DND1003", "Custom:PROFILE1003-4", "Custom:PROFILE1003-1"} {
			if s := p.getvar("DEVICE_STATE(" + lamp + ")"); s != "INVALID" {
				t.Errorf("%s = %q after carol was removed, want INVALID", lamp, s)
			}
		}
		if ps, err := p.c.PresenceState(p.ctx(), "CustomPresence:1003"); err != nil || ps.State != "not_set" {
			t.Errorf("carol's presence %+v %v, want not_set", ps, err)
		}
		archived, err := f.rdb.Keys(f.ctx(), "presenced:archive:*:user:carol*").Result()
		if err != nil || len(archived) < 2 {
			t.Fatalf("carol's archive keys %v %v, want her state and journal", archived, err)
		}
		if code, _ := d.call(t, http.MethodGet, "/api/v1/users/carol", testToken("carol"), nil); code != http.StatusUnauthorized {
			t.Errorf("carol's token after her removal: %d, want 401", code)
		}
	})

	// The PBX and the daemon as they are now, which a bad reload must not change.
	bobMember := p.member("support", "Local/1002@presenced-queue-member/n")
	good := strings.Replace(fc, carolYAML, bobYAML, 1)
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", good + "profile_colours: {lunch: red}\n", "profile_colours"},
		{"duplicate extension", strings.Replace(good, `extension: "1002"`, `extension: "1001"`, 1), `"1001" is already the extension`},
		{"carol back but broken", strings.Replace(good, "profiles:\n", carolYAML+"  - id: x\nprofiles:\n", 1), "users"},
	} {
		t.Run("bad: "+tc.name, func(t *testing.T) {
			write(tc.yaml)
			code, res := d.reload(t, admin)
			if msg, _ := res["error"].(string); code != http.StatusBadRequest || res["status"] != "error" || !strings.Contains(msg, tc.want) {
				t.Fatalf("bad reload: %d %v, want 400 naming %q", code, res, tc.want)
			}
			if v := d.metric(t, "presenced_config_last_reload_successful"); v != 0 {
				t.Fatalf("presenced_config_last_reload_successful = %v after a bad reload", v)
			}
			if code, _ := d.call(t, http.MethodGet, "/api/v1/users/bob", testToken("bob"), nil); code != http.StatusOK {
				t.Fatalf("bob after a bad reload: %d", code)
			}
			if code, _ := d.call(t, http.MethodGet, "/api/v1/users/carol", admin, nil); code != http.StatusNotFound {
				t.Fatalf("carol after a bad reload: %d, want 404", code)
			}
			if m := p.member("support", "Local/1002@presenced-queue-member/n"); m == nil || m.Paused != bobMember.Paused ||
				m.PausedReason != bobMember.PausedReason || m.Penalty != bobMember.Penalty {
				t.Fatalf("bob's member after a bad reload %+v, was %+v", m, bobMember)
			}
		})
	}

	t.Run("a changed profile reaches its users", func(t *testing.T) {
		changed := strings.Replace(good, "      - {action: queue_pause, queues: all, reason: Lunch}\n",
			"      - {action: queue_pause, queues: all, reason: Mittag}\n      - {action: variable, name: E2E/1002/lunch, value: \"yes\"}\n", 1)
		if changed == good {
			t.Fatal("the lunch profile was not found in the YAML")
		}
		write(changed)
		code, res := d.reload(t, admin)
		if code != http.StatusOK || !slices.Contains(list(res["profiles_changed"]), "lunch") {
			t.Fatalf("reload: %d %v, want lunch changed", code, res)
		}
		if v := d.metric(t, "presenced_config_last_reload_successful"); v != 1 {
			t.Fatalf("presenced_config_last_reload_successful = %v after a good reload", v)
		}
		eventually(t, 10*time.Second, "bob paused for Mittag", func() bool {
			m := p.member("support", "Local/1002@presenced-queue-member/n")
			return m != nil && m.Paused && m.PausedReason == "Mittag"
		})
		eventually(t, 10*time.Second, "E2E/1002/lunch set", func() bool { v, _ := p.db("E2E", "1002/lunch"); return v == "yes" })
		code, j := d.call(t, http.MethodGet, "/api/v1/users/bob/journal?limit=1", admin, nil)
		entries, _ := j["entries"].([]any)
		if code != http.StatusOK || len(entries) != 1 {
			t.Fatalf("bob's journal: %d %v", code, j)
		}
		if e, _ := entries[0].(map[string]any); e["kind"] != "reload" || e["actor"] != "configuration reload" {
			t.Errorf("bob's last journal entry %v, want a reload", e)
		}

		// The variable taken out of the profile again: the key goes.
		write(good)
		if code, res := d.reload(t, admin); code != http.StatusOK {
			t.Fatalf("reload: %d %v", code, res)
		}
		eventually(t, 10*time.Second, "E2E/1002/lunch deleted", func() bool { _, ok := p.db("E2E", "1002/lunch"); return !ok })
		eventually(t, 10*time.Second, "bob paused for Lunch again", func() bool {
			m := p.member("support", "Local/1002@presenced-queue-member/n")
			return m != nil && m.Paused && m.PausedReason == "Lunch"
		})
	})

	t.Run("restart needed", func(t *testing.T) {
		// Calendars and unanswered calls are put in force by the reload; the interval is not.
		write(good + "reconcile: {interval: 7m}\ncalendar: {poll_interval: 10m}\nunanswered_calls: {calls: 3, profile: lunch}\n")
		code, res := d.reload(t, admin)
		if code != http.StatusOK || !slices.Equal(list(res["restart_needed"]), []string{"reconcile.interval"}) {
			t.Fatalf("reload: %d %v, want reconcile.interval to need a restart", code, res)
		}
		write(good + "unanswered_calls: {calls: 3, profile: nowhere}\n")
		if code, res := d.reload(t, admin); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(res["error"]), `unanswered_calls.profile: "nowhere"`) {
			t.Fatalf("reload with an unknown unanswered_calls.profile: %d %v", code, res)
		}
	})
	forgetUsers(t, "bob")
}

// list is a JSON array of strings.
func list(v any) []string {
	var out []string
	for _, x := range anySlice(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func anySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestSIGHUPReloads runs presenced as a process (this test binary re-executed as main) and
// sends it SIGHUP: it reloads instead of dying, a user added works at once, a bad file is
// logged and changes nothing, and SIGTERM still stops it cleanly. Asterisk is unreachable
// here (port 1): reloading needs no PBX.
func TestSIGHUPReloads(t *testing.T) {
	users := fixture(t, "config/alice-alone.yaml", nil)
	path := writeFile(t, "presenced.yaml", users)
	cmd := exec.Command(os.Args[0], "-config", path, "-log-format", "json")
	cmd.Env = append([]string{"PRESENCED_TEST_RUN_MAIN=1", "PRESENCED_HTTP_LISTEN=127.0.0.1:0",
		"PRESENCED_ASTERISK_AMI_ADDRESS=127.0.0.1:1", "PRESENCED_ASTERISK_ARI_URL=http://127.0.0.1:1/ari",
		"PRESENCED_STORE_SNAPSHOT_PATH=" + filepath.Join(t.TempDir(), "store.json")}, minimalEnv...)
	await, exited := startLogging(t, cmd)
	base := "http://" + await("presenced starting")["http"].(string)
	d := &daemonUnderTest{base: base}
	status := func(user string) int {
		code, _ := d.call(t, http.MethodGet, "/api/v1/users/"+user, testToken(user), nil)
		return code
	}
	if code := status("bob"); code != http.StatusUnauthorized {
		t.Fatalf("bob before the reload: %d, want 401", code)
	}

	if err := os.WriteFile(path, []byte(users+
		"  - {id: bob, extension: \"1002\", token: "+testToken("bob")+", devices: [{dial: PJSIP/1002, family: desk}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := await("configuration reloaded"); !slices.Equal(list(m["users_added"]), []string{"bob"}) {
		t.Fatalf("reload logged %v, want bob added", m)
	}
	if code := status("bob"); code != http.StatusOK {
		t.Fatalf("bob after the reload: %d, want 200", code)
	}

	if err := os.WriteFile(path, []byte(users+"  - {id: bob, extension: \"1001\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	if m := await("configuration reload failed; the configuration in force is kept"); !strings.Contains(fmt.Sprint(m["err"]), "already the extension") {
		t.Fatalf("failed reload logged %v", m)
	}
	if code := status("bob"); code != http.StatusOK {
		t.Fatalf("bob after a bad reload: %d, want 200", code)
	}
	if v := d.metric(t, "presenced_config_last_reload_successful"); v != 0 {
		t.Fatalf("presenced_config_last_reload_successful = %v after a bad reload", v)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("presenced exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("presenced did not stop within 15s of SIGTERM")
	}
}

// startLogging starts cmd, a presenced process logging JSON to its standard error, and returns
// await, which returns the next log line with the message msg (failing the test when presenced
// exits first or 15 s pass), and the channel that receives cmd's exit. The process is killed at
// cleanup.
func startLogging(t *testing.T, cmd *exec.Cmd) (await func(msg string) map[string]any, exited <-chan error) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan map[string]any, 4096)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("presenced exited before logging %q", msg)
				}
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("presenced did not log %q within 15s", msg)
			}
		}
	}, done
}
