package ctl

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 10, "-"},
		{"lunch", 10, "lunch"},
		{"back\tat\n1", 20, "back at 1"},
		{"\x1b[31mred", 20, " [31mred"},
		{"Mittagspause über Mittag", 10, "Mittagspa…"},
		{"exactly10!", 10, "exactly10!"},
	} {
		if got := cell(tc.in, tc.max); got != tc.want {
			t.Errorf("cell(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now.Add(-45 * time.Second), "45s"},
		{now.Add(time.Minute), "0s"}, // a clock ahead of ours
		{now.Add(-12 * time.Minute), "12m"},
		{now.Add(-(3*time.Hour + 5*time.Minute)), "3h05m"},
		{now.Add(-(52 * time.Hour)), "2d4h"},
	} {
		if got := ago(tc.t, now); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestCounts(t *testing.T) {
	o := func(r presence.Result) presence.Outcome { return presence.Outcome{Result: r} }
	for _, tc := range []struct {
		in   []presence.Outcome
		want string
	}{
		{nil, "nothing to do"},
		{[]presence.Outcome{}, "nothing to do"},
		{[]presence.Outcome{o("failed"), o("applied"), o("unchanged"), o("applied")}, "2 applied, 1 unchanged, 1 failed"},
		{[]presence.Outcome{o("exploded")}, "1 exploded"},
	} {
		if got := counts(tc.in); got != tc.want {
			t.Errorf("counts = %q, want %q", got, tc.want)
		}
	}
}

func TestWriteWho(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	err := writeWho(&b, []presence.PresenceEntry{
		{User: "alice", Name: "Alice", Extension: "1001", Profile: "lunch", Label: "Lunch", Presence: "away",
			Info: "back\tat 1", Since: now.Add(-5 * time.Minute), OnCall: true},
		{User: "bob", Name: "Bob", Extension: "1002", Label: "Away", Presence: "away", Private: true},
		{User: "carol", Name: "Carol", Extension: "1003"}, // never switched
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"USER", "EXT", "NAME", "PROFILE", "PRESENCE", "INFO", "SINCE", "CALL"},
		{"alice", "1001", "Alice", "Lunch", "away", "back at 1", "5m", "on call"},
		{"bob", "1002", "Bob", "Away (private)", "away", "-", "-", "-"},
		{"carol", "1003", "Carol", "-", "-", "-", "-", "-"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// The columns line up: every row's PROFILE starts where the header's does.
	col := strings.Index(lines[0], "PROFILE")
	for _, l := range lines[1:3] {
		if l[col-2:col] != "  " || l[col] == ' ' {
			t.Errorf("row %q not aligned at column %d", l, col)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	until := time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   userStatus
		want []string
		not  []string
	}{
		{"never switched", userStatus{}, []string{"?", "profile:   none yet", "PBX:       NOT in sync"}, []string{"since:"}},
		{"timed, in sync", userStatus{Switched: true, Profile: "lunch", Source: "api", Actor: "admin", InSync: true,
			Until: &until, ReturnsTo: "available"}, []string{"profile:   lunch", "(api, by admin)", "until:     " + when(until),
			"returns to: available", "PBX:       in sync"}, []string{"NOT"}},
		{"unreadable PBX", userStatus{Switched: true, Profile: "dnd", ObserveError: "ami: not connected"},
			[]string{"PBX:       cannot be read: ami: not connected"}, []string{"in sync"}},
		{"drift and pending", userStatus{Switched: true, Profile: "lunch", Sticky: true, OnCall: "PJSIP/1001",
			Differences: []presence.Difference{{What: "queue support", Observed: "not paused", Desired: "paused (Lunch)", Policy: "report"}},
			Pending:     []presence.Op{{Kind: presence.OpQueueRemove, Queue: "sales", Member: &presence.QueueMember{Interface: "Local/1001@q/n"}}},
			Warnings:    []presence.Warning{{Code: "status_mismatch", Message: "Your device status does not match your profile: …"}}},
			[]string{"lunch (sticky)", "on call:   PJSIP/1001", "NOT in sync", "queue support: not paused, the profile says paused (Lunch) [report]",
				"waiting for the call to end: queue_remove sales Local/1001@q/n", "warning:   Your device status"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeStatus(&b, &tc.st); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("has %q:\n%s", n, b.String())
				}
			}
		})
	}
}

func TestWriteSwitch(t *testing.T) {
	op := presence.Op{Kind: presence.OpDBPut, Key: "DND/1001", Value: "YES"}
	for _, tc := range []struct {
		name string
		r    presence.SwitchResult
		want string
	}{
		{"first switch", presence.SwitchResult{SwitchEvent: presence.SwitchEvent{User: "alice", To: "lunch"}, InSync: true},
			"alice: switched (none) → lunch: nothing to do\n"},
		{"reconcile", presence.SwitchResult{SwitchEvent: presence.SwitchEvent{User: "alice", From: "dnd", To: "dnd"}, InSync: true,
			Outcomes: []presence.Outcome{{Op: op, Result: presence.ResultApplied}}},
			"alice: kept dnd: 1 applied\n    applied   " + op.String() + "\n"},
		{"failed", presence.SwitchResult{SwitchEvent: presence.SwitchEvent{User: "alice", From: "available", To: "dnd"},
			Outcomes: []presence.Outcome{{Op: op, Result: presence.ResultFailed, Error: "ami: not connected"}}},
			"alice: switched available → dnd: 1 failed\n    failed    " + op.String() + ": ami: not connected\n  NOT in sync: presenced retries what failed\n"},
		{"preview", presence.SwitchResult{SwitchEvent: presence.SwitchEvent{User: "alice", From: "dnd", To: "dnd"}, Preview: true},
			"alice: would switch dnd → dnd: nothing to do\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeSwitch(&b, &tc.r); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{usageError("x"), ExitUsage},
		{&ConnError{URL: "u", Err: errors.New("refused")}, ExitUnreachable},
		{&APIError{Status: 401}, ExitDenied},
		{&APIError{Status: 403}, ExitDenied},
		{&APIError{Status: 429}, ExitDenied},
		{&APIError{Status: 404}, ExitNotFound},
		{&APIError{Status: 400}, ExitRefused},
		{&APIError{Status: 409}, ExitRefused},
		{&APIError{Status: 413}, ExitRefused},
		{&APIError{Status: 422}, ExitRefused},
		{&APIError{Status: 503}, ExitUnavailable},
		{&APIError{Status: 500}, ExitError},
		{&APIError{Status: 418}, ExitError},
		{outOfSync("x"), ExitOutOfSync},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestLinkURL(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"http://127.0.0.1:8080", "/set-password?token=abc", "http://127.0.0.1:8080/set-password?token=abc"},
		{"https://pbx.example.net/presenced/", "/set-password?token=a%2Bb", "https://pbx.example.net/presenced/set-password?token=a%2Bb"},
	} {
		b, _ := url.Parse(tc.base)
		got, err := linkURL(b, tc.path)
		if err != nil || got != tc.want {
			t.Errorf("linkURL(%s, %s) = %q, %v; want %q", tc.base, tc.path, got, err, tc.want)
		}
	}
	b, _ := url.Parse("http://127.0.0.1:8080")
	for _, bad := range []string{"https://evil.example/set-password", "set-password", "%zz"} {
		if got, err := linkURL(b, bad); err == nil {
			t.Errorf("linkURL(%q) = %q, want an error", bad, got)
		}
	}
}

// run runs presencectl in-process against srv.
func runAgainst(t *testing.T, srv *httptest.Server, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		switch k {
		case "PRESENCECTL_URL":
			return srv.URL
		case "PRESENCECTL_TOKEN":
			return "a-token-for-the-fake-0000"
		}
		return ""
	}})
	return code, out.String(), errb.String()
}

// TestReloadAnswers: what presencectl makes of the reload endpoint's answers, including a
// presenced that has none (a fake server: the real one's answers are TestReload's).
func TestReloadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   int
		want   string
	}{
		{"no endpoint", 404, `{"error":"no such endpoint: /-/reload"}`, ExitNotFound, "this presenced has no reload endpoint"},
		{"plain 404 page", 404, "404 page not found\n", ExitNotFound, "this presenced has no reload endpoint"},
		{"reloaded, empty", 204, "", ExitOK, "presenced reloaded its configuration"},
		{"reloaded, message", 200, `{"message":"configuration reloaded: 3 users","warnings":["profile x: unknown icon"]}`, ExitOK,
			"configuration reloaded: 3 users\nwarning: profile x: unknown icon"},
		{"refused", 422, `{"error":"users[0].extension: required"}`, ExitRefused, "users[0].extension: required (HTTP 422)"},
		{"denied", 401, `{"error":"missing or invalid token"}`, ExitDenied, "HTTP 401"},
		{"failed", 500, `{"error":"internal error"}`, ExitError, "HTTP 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/-/reload" || r.Header.Get("Authorization") != "Bearer a-token-for-the-fake-0000" {
					t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			code, out, errs := runAgainst(t, srv, "reload")
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Errorf("exit %d, want %d; output %q, want %q in it", code, tc.code, out+errs, tc.want)
			}
		})
	}
}

// TestAnswersNotUnderstood: an answer that is not what presencectl reads exits 1, naming it.
func TestAnswersNotUnderstood(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"users": "not a list"}`))
	}))
	defer srv.Close()
	code, _, errs := runAgainst(t, srv, "who")
	if code != ExitError || !strings.Contains(errs, "not what presencectl understands") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

// TestVersion: --version prints the version it was built with and exits 0.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), []string{"--version"}, Env{Stdout: &out, Version: "v1.2.3", Getenv: func(string) string { return "" }})
	if code != ExitOK || out.String() != "presencectl version v1.2.3\n" {
		t.Fatalf("exit %d, %q", code, out.String())
	}
}

// TestAnswerExitCodes: exit codes of answers a lab presenced does not give on demand (a fake
// server): a switch with a failed operation (8), a store unavailable (7), a server error (1).
func TestAnswerExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		body   string
		code   int
		want   string
	}{
		{"switch with a failed operation", []string{"switch", "alice", "dnd"}, 200,
			`{"user":"alice","extension":"1001","from":"available","to":"dnd","source":"api","at":"2026-06-01T12:00:00Z","in_sync":false,
			  "outcomes":[{"op":{"kind":"db_put","key":"DND/1001","value":"YES"},"result":"failed","error":"ami: not connected"}]}`,
			ExitOutOfSync, "failed    db_put DND/1001=\"YES\": ami: not connected"},
		{"reconcile with a failed operation", []string{"reconcile", "alice"}, 200,
			`{"user":"alice","extension":"1001","from":"dnd","to":"dnd","source":"api","at":"2026-06-01T12:00:00Z","in_sync":false,"outcomes":[]}`,
			ExitOutOfSync, "not every PBX operation succeeded"},
		{"store unavailable", []string{"status", "alice"}, 503, `{"error":"state store unavailable: redis: connection refused"}`,
			ExitUnavailable, "state store unavailable: redis: connection refused (HTTP 503)"},
		{"server error", []string{"who"}, 500, `{"error":"internal error"}`, ExitError, "internal error (HTTP 500)"},
		{"not JSON", []string{"status", "alice", "--json"}, 200, `<html>`, ExitError, "not what presencectl understands"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			code, out, errs := runAgainst(t, srv, tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Errorf("exit %d (want %d), output %q lacks %q", code, tc.code, out+errs, tc.want)
			}
		})
	}
}

func TestWriteReload(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"changes", `{"status":"ok","users_added":["bob"],"users_removed":["carol"],"profiles_changed":["lunch"],"restart_needed":["reconcile.interval"]}`,
			"presenced reloaded its configuration\nusers added: bob\nusers removed: carol\nprofiles changed: lunch\nwarning: takes effect only after a restart: reconcile.interval\n"},
		{"nothing changed", `{"status":"ok"}`, "presenced reloaded its configuration\n"},
		{"not JSON", `reloaded`, "presenced reloaded its configuration\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeReload(&b, []byte(tc.body)); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

// TestInstanceAnswers: instance prints the instance's health in words, --json as presenced
// answered it; it exits 0 when the instance is ready, 7 when not (with the output), and as
// every command on a refused token or an older presenced without the endpoint.
func TestInstanceAnswers(t *testing.T) {
	const ready = `{"id":"pd-a","version":"v1.2.3","role":"leader","leader":"pd-a","leader_epoch":4,"ready":true,"checks":{"store":"ok","ami":"ok","ari":"ok"}}`
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		body   string
		code   int
		want   string
	}{
		{"leader", nil, 200, ready, ExitOK,
			"instance:  pd-a (v1.2.3)\nrole:      leader\nleader:    pd-a (epoch 4), this instance\nready:     yes\n  ami:     ok\n  ari:     ok\n  store:   ok\n"},
		{"standby", nil, 200, `{"id":"pd-b","version":"dev","role":"standby","leader":"pd-a","leader_epoch":4,"ready":true,"checks":{}}`, ExitOK,
			"role:      standby\nleader:    pd-a (epoch 4)\nready:     yes\n"},
		{"not ready", nil, 200, `{"id":"pd-b","version":"dev","role":"standby","leader_note":"an election is under way","ready":false,"checks":{"ami":"not connected to 127.0.0.1:5038"}}`,
			ExitUnavailable, "leader:    none known: an election is under way\nready:     no\n  ami:     not connected to 127.0.0.1:5038\n"},
		{"json", []string{"--json"}, 200, ready, ExitOK, "\"leader_epoch\": 4,"},
		{"json, not ready", []string{"--json"}, 200, `{"id":"pd-b","version":"dev","role":"standby","ready":false,"checks":{}}`, ExitUnavailable, "\"ready\": false"},
		{"a user's token", nil, 403, `{"error":"only the admin sees the instance's health"}`, ExitDenied, "HTTP 403"},
		{"an older presenced", nil, 404, `{"error":"no such endpoint: /api/v1/instance"}`, ExitNotFound, "HTTP 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/api/v1/instance" {
					t.Errorf("request %s %s", r.Method, r.URL.Path)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			code, out, errs := runAgainst(t, srv, append([]string{"instance"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Errorf("exit %d (want %d), output %q lacks %q", code, tc.code, out+errs, tc.want)
			}
		})
	}
}
