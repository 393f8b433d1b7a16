package ctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ctl"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/internal/openapicheck"
)

// The lab's tokens (deploy/presenced.lab.yaml).
const (
	adminToken = "lab-admin-PqLswBcbRso7LVK9"
	aliceToken = "lab-alice-Jdl4lhFGlQ59DuFW"
	bobToken   = "lab-bob-Noiifhue7PKNIC0y" // held as a hash: Basic auth only
)

var (
	env    *lab.Env
	binDir string

	daemonOnce sync.Once
	daemon     *lab.Presenced
	validator  *openapicheck.Validator // of the document the daemon serves
	daemonErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "presencectl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := lab.Main(m, lab.Options{Asterisk: true, Redis: true}, func(e *lab.Env) { env = e })
	if daemon != nil {
		daemon.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// presenced is the presenced binary the tests drive, running the lab's configuration (as
// `make up` does) with queue_pause drift reported instead of repaired, so that drift stays
// for presencectl to show.
func presenced(t *testing.T) *lab.Presenced {
	t.Helper()
	daemonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, err := lab.BuildPresenced(ctx, binDir)
		if err != nil {
			daemonErr = err
			return
		}
		daemon, daemonErr = env.StartPresenced(ctx, bin, lab.LabConfig(), "presencectl-test",
			"PRESENCED_RECONCILE_POLICY_QUEUE_PAUSE=report", "PRESENCED_LOG_LEVEL=debug")
		if daemonErr != nil {
			return
		}
		resp, err := http.Get(daemon.URL + "/api/v1/openapi.json")
		if err != nil {
			daemonErr = err
			return
		}
		defer resp.Body.Close()
		doc, err := io.ReadAll(resp.Body)
		if err != nil {
			daemonErr = err
			return
		}
		validator, daemonErr = openapicheck.New(doc)
	})
	if daemonErr != nil {
		t.Fatal(daemonErr)
	}
	return daemon
}

// result is one run of presencectl.
type result struct {
	code           int
	stdout, stderr string
}

// ctlRun runs presencectl in-process with args and the given environment variables. Every
// answer of presenced it gets is validated against the OpenAPI document presenced serves.
func ctlRun(t *testing.T, environ map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second}
	if validator != nil {
		hc.Transport = validator.Transport(nil, func(err error) { t.Errorf("presenced's answer: %v", err) })
	}
	code := ctl.Main(ctx, args, ctl.Env{Stdout: &out, Stderr: &errb, HTTP: hc, Getenv: func(k string) string {
		if k == "HOME" || k == "XDG_CONFIG_HOME" {
			if v, ok := environ[k]; ok {
				return v
			}
			return "/nonexistent" // never the tester's own configuration
		}
		return environ[k]
	}})
	r := result{code, out.String(), errb.String()}
	t.Logf("presencectl %s → %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// admin runs presencectl with the admin token against the daemon.
func admin(t *testing.T, args ...string) result {
	t.Helper()
	d := presenced(t)
	return ctlRun(t, map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": adminToken}, args...)
}

func (r result) want(t *testing.T, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	for _, c := range contains {
		if !strings.Contains(all, c) {
			t.Fatalf("output lacks %q:\n%s", c, all)
		}
	}
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("--json printed no JSON (%v):\n%s", err, r.stdout)
	}
}

// TestSwitchStatusJournal: a switch prints its operations, status shows the profile, info and
// that the PBX matches, the journal has the switch, preview changes nothing.
func TestSwitchStatusJournal(t *testing.T) {
	admin(t, "switch", "alice", "available").want(t, 0, "alice: switched")
	r := admin(t, "switch", "alice", "lunch", "--info", "back at 1")
	r.want(t, 0, "alice: switched available → lunch", "applied", "queue_pause support Local/1001@presenced-queue-member/n paused (Lunch)")

	admin(t, "status", "alice").want(t, 0, "alice (Alice 1001)", "profile:   lunch", "info:      back at 1",
		"(api, by admin)", "previous:  available", "PBX:       in sync")
	var st struct {
		Profile, Info string
		InSync        bool `json:"in_sync"`
	}
	r = admin(t, "status", "alice", "--json")
	r.want(t, 0)
	r.json(t, &st)
	if st.Profile != "lunch" || st.Info != "back at 1" || !st.InSync {
		t.Fatalf("status --json: %+v", st)
	}

	admin(t, "preview", "alice", "dnd").want(t, 0, "alice: would switch lunch → dnd", "planned")
	admin(t, "status", "alice").want(t, 0, "profile:   lunch")

	r = admin(t, "journal", "alice", "--limit", "2")
	r.want(t, 0, "switch", "available → lunch (api by admin)", `"back at 1"`)
	if n := strings.Count(r.stdout, "switch "); n != 2 {
		t.Fatalf("journal --limit 2 shows %d switches", n)
	}
	// The user named by --user, with the user's token.
	ctlRun(t, map[string]string{"PRESENCECTL_URL": presenced(t).URL}, "--token", aliceToken, "--user", "alice", "status").
		want(t, 0, "profile:   lunch")
}

// TestWhoAndProfiles: who lists everyone as a table; profiles lists a user's profiles.
func TestWhoAndProfiles(t *testing.T) {
	admin(t, "switch", "carol", "home", "--info", "all day").want(t, 0)
	r := admin(t, "who")
	r.want(t, 0, "USER", "PROFILE", "alice", "bob", "carol")
	var carol string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "carol ") {
			carol = l
		}
	}
	for _, want := range []string{"1003", "Carol", "Home office", "available", "all day"} {
		if !strings.Contains(carol, want) {
			t.Fatalf("carol's row %q lacks %q", carol, want)
		}
	}
	r = admin(t, "profiles", "alice")
	r.want(t, 0, "ID", "DIAL", "available", "Do not disturb", "lunch", "gone", "system")
}

// TestDriftAndReconcile: a hand unpause under the report policy shows in drift (exit 8) in
// words; reconcile puts it back; drift then says everyone is in sync (exit 0).
func TestDriftAndReconcile(t *testing.T) {
	admin(t, "switch", "bob", "available").want(t, 0)
	admin(t, "switch", "bob", "lunch").want(t, 0)
	pbx := env.AMI(t, true, nil)
	if err := pbx.QueuePause(context.Background(), "Local/1002@presenced-queue-member/n", "support", false, ""); err != nil {
		t.Fatal(err)
	}
	want := "queue support: not paused, the profile says paused (Lunch) [report]"
	var r result
	for deadline := time.Now().Add(10 * time.Second); ; {
		r = admin(t, "drift")
		if r.code == ctl.ExitOutOfSync && strings.Contains(r.stdout, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.want(t, ctl.ExitOutOfSync, "bob (1002), profile lunch: 1 reported", want, "out of sync")
	var entries []struct {
		Summary struct{ User string } `json:"summary"`
		Status  struct {
			Differences []struct{ Kind, Policy string }
		} `json:"status"`
	}
	r = admin(t, "drift", "--json")
	r.want(t, ctl.ExitOutOfSync)
	r.json(t, &entries)
	if len(entries) == 0 || entries[0].Summary.User != "bob" || len(entries[0].Status.Differences) != 1 ||
		entries[0].Status.Differences[0].Policy != "report" {
		t.Fatalf("drift --json: %+v", entries)
	}
	admin(t, "status", "bob").want(t, 0, "PBX:       NOT in sync", want, "warning:   Your device status does not match your profile")

	admin(t, "reconcile", "bob").want(t, 0, "bob: kept lunch", "applied", "queue_pause support Local/1002@presenced-queue-member/n paused (Lunch)")
	admin(t, "drift").want(t, 0, "everyone is in sync")

	r = admin(t, "reconcile", "--all")
	r.want(t, 0, "alice: in sync", "bob: in sync", "carol: in sync")
	var all []struct {
		User   string
		Result struct {
			Outcomes []any `json:"outcomes"`
		}
	}
	r = admin(t, "reconcile", "--all", "--json")
	r.want(t, 0)
	r.json(t, &all)
	if len(all) != 3 {
		t.Fatalf("reconcile --all --json: %+v", all)
	}
}

// TestTrigger: an external trigger's start switches, its end returns to the profile before.
func TestTrigger(t *testing.T) {
	admin(t, "switch", "carol", "available").want(t, 0)
	admin(t, "trigger", "carol", "zoom", "start", "--profile", "meeting").want(t, 0, "carol: trigger external:zoom start: switched to meeting")
	admin(t, "status", "carol").want(t, 0, "profile:   meeting", "trigger:   external:zoom", "returns to: available")
	admin(t, "trigger", "carol", "zoom", "end").want(t, 0, "carol: trigger external:zoom end: switched to available")
	admin(t, "trigger", "carol", "zoom", "end").want(t, 0, "no switch")
	admin(t, "trigger", "carol", "zoom", "start").want(t, ctl.ExitUsage, "start needs --profile")
}

// TestPasswd: the printed link sets bob's web app password.
func TestPasswd(t *testing.T) {
	d := presenced(t)
	r := admin(t, "passwd", "bob", "--ttl", "1h")
	r.want(t, 0, d.URL+"/set-password?token=", "(for bob, once, until ")
	link, err := url.Parse(strings.Fields(r.stdout)[0])
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"token":%q,"password":"a-new-password-for-bob"}`, link.Query().Get("token"))
	resp, err := http.Post(d.URL+"/api/v1/password", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the link's token: POST /api/v1/password answered %d", resp.StatusCode)
	}
	// A user's token may not make links.
	ctlRun(t, map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": aliceToken}, "passwd", "alice").
		want(t, ctl.ExitDenied, "HTTP 403")
}

// TestReload: a presenced with the reload endpoint reloads (exit 0); one without it is named
// as such (exit 5).
func TestReload(t *testing.T) {
	r := admin(t, "reload")
	r.want(t, 0, "presenced reloaded its configuration")
}

// TestInstance: instance shows the lab presenced's health: it leads, the leader is itself,
// it is ready; --json is the API's answer (validated against the OpenAPI document); a user's
// token may not see it.
func TestInstance(t *testing.T) {
	d := presenced(t)
	// Just started, it may wait for an earlier lease (of the last run) to run out first.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(admin(t, "instance").stdout, "role:      leader") {
		if time.Now().After(deadline) {
			t.Fatal("the lab presenced does not lead")
		}
		time.Sleep(time.Second)
	}
	admin(t, "instance").want(t, 0, "instance:  presencectl-test", "role:      leader",
		"leader:    presencectl-test (epoch ", ", this instance", "ready:     yes", "ami:     ok", "store:   ok")
	var in struct {
		ID, Role, Leader string
		Ready            bool
		Checks           map[string]string
	}
	admin(t, "instance", "--json").json(t, &in)
	if in.ID != "presencectl-test" || in.Role != "leader" || in.Leader != in.ID || !in.Ready || in.Checks["ari"] != "ok" {
		t.Errorf("--json: %+v", in)
	}
	ctlRun(t, map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": aliceToken}, "instance").
		want(t, ctl.ExitDenied, "HTTP 403")
}

// TestExitCodes: every documented exit code from a real presenced (but 1, 7 and 8, which
// the other tests and the unit tests cover).
func TestExitCodes(t *testing.T) {
	d := presenced(t)
	withToken := func(tok string) map[string]string {
		return map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": tok}
	}
	for _, tc := range []struct {
		name     string
		environ  map[string]string
		args     []string
		code     int
		contains string
	}{
		{"unknown profile", withToken(adminToken), []string{"switch", "alice", "focus"}, ctl.ExitNotFound, "HTTP 404"},
		{"unknown user", withToken(adminToken), []string{"status", "nobody"}, ctl.ExitNotFound, "HTTP 404"},
		{"wrong token", withToken("not-the-token-at-all-0000"), []string{"who"}, ctl.ExitDenied, "HTTP 401"},
		{"another user's token", withToken(aliceToken), []string{"status", "bob"}, ctl.ExitDenied, "HTTP 403"},
		{"until in the past", withToken(adminToken), []string{"switch", "alice", "lunch", "--until", "-5m"}, ctl.ExitRefused, "HTTP 422"},
		{"bad journal limit", withToken(adminToken), []string{"journal", "alice", "--limit", "0"}, ctl.ExitUsage, "--limit"},
		{"no user", withToken(adminToken), []string{"status"}, ctl.ExitUsage, "name a user"},
		{"missing argument", withToken(adminToken), []string{"switch", "alice"}, ctl.ExitUsage, "takes 2 argument(s)"},
		{"unknown flag", withToken(adminToken), []string{"who", "--colour"}, ctl.ExitUsage, "unknown flag"},
		{"unknown command", withToken(adminToken), []string{"frobnicate"}, ctl.ExitUsage, "unknown command"},
		{"nobody listening", map[string]string{"PRESENCECTL_URL": "http://127.0.0.1:1"}, []string{"who"}, ctl.ExitUnreachable, "cannot reach presenced"},
		{"bad URL", map[string]string{"PRESENCECTL_URL": "ftp://x"}, []string{"who"}, ctl.ExitUsage, "not an http"},
		{"help", nil, []string{"switch", "--help"}, ctl.ExitOK, "presencectl switch USER PROFILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctlRun(t, tc.environ, tc.args...).want(t, tc.code, tc.contains)
		})
	}
}

// TestBasicAuthAndConfigFile: bob's token is held as a hash, so --user sends it with Basic
// auth; the configuration file in XDG_CONFIG_HOME supplies what flags and variables do not,
// and they win over it.
func TestBasicAuthAndConfigFile(t *testing.T) {
	d := presenced(t)
	ctlRun(t, map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": bobToken, "PRESENCECTL_USER": "bob"}, "status").
		want(t, 0, "bob (Bob 1002)")
	ctlRun(t, map[string]string{"PRESENCECTL_URL": d.URL, "PRESENCECTL_TOKEN": bobToken}, "status", "bob").
		want(t, ctl.ExitDenied, "HTTP 401") // a hashed token as Bearer

	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "presencectl"), 0o700); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(xdg, "token")
	if err := os.WriteFile(tokenFile, []byte(aliceToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("url: %s\ntoken_file: %s\nuser: alice\n", d.URL, tokenFile)
	if err := os.WriteFile(filepath.Join(xdg, "presencectl", "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := map[string]string{"XDG_CONFIG_HOME": xdg}
	ctlRun(t, fromFile, "status").want(t, 0, "alice (Alice 1001)")
	// The environment's token beats the file's (and the file's user still names the default).
	fromFile["PRESENCECTL_TOKEN"] = "not-the-token-at-all-0000"
	ctlRun(t, fromFile, "status").want(t, ctl.ExitDenied, "HTTP 401")
	// A flag beats both.
	ctlRun(t, fromFile, "--token", aliceToken, "status").want(t, 0, "alice (Alice 1001)")
	ctlRun(t, fromFile, "--url", "http://127.0.0.1:1", "--token", aliceToken, "status").want(t, ctl.ExitUnreachable)

	if err := os.WriteFile(filepath.Join(xdg, "presencectl", "config.yaml"), []byte("url: x\ncolour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctlRun(t, map[string]string{"XDG_CONFIG_HOME": xdg}, "who").want(t, ctl.ExitUsage, "colour")
}

// TestJSONOnEveryCommand: --json prints JSON for every command.
func TestJSONOnEveryCommand(t *testing.T) {
	admin(t, "switch", "alice", "available").want(t, 0)
	for _, args := range [][]string{
		{"status", "alice"}, {"who"}, {"switch", "alice", "available"}, {"preview", "alice", "lunch"},
		{"journal", "alice"}, {"drift"}, {"reconcile", "alice"}, {"reconcile", "--all"}, {"profiles", "alice"},
		{"trigger", "alice", "json-test", "end"}, {"passwd", "alice"}, {"reload"}, {"instance"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := admin(t, append(args, "--json")...)
			if args[0] == "reload" && r.code == ctl.ExitNotFound {
				return // a presenced without the endpoint: TestReload
			}
			if r.code != 0 && r.code != ctl.ExitOutOfSync {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var v any
			r.json(t, &v)
		})
	}
}

// TestCompletion: the shell completion offers presenced's users, and a user's profiles.
func TestCompletion(t *testing.T) {
	admin(t, "completion", "bash").want(t, 0, "bash completion V2 for presencectl")
	admin(t, "__complete", "status", "").want(t, 0, "alice\tAlice", "bob\tBob", "carol\tCarol")
	admin(t, "__complete", "switch", "alice", "").want(t, 0, "lunch\tLunch", "gone\tGone for the day")
}
