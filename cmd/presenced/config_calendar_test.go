package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// withCalendar is testdata/config/issue.yaml with alice's calendar source (the YAML of
// users[0].calendar) and extra top-level YAML.
func withCalendar(t testing.TB, source, extra string) string {
	t.Helper()
	keys := userKeys{}
	if source != "" {
		keys["alice"] = []string{"calendar: " + source}
	}
	return fixture(t, "config/issue.yaml", keys) + extra + "\n"
}

func TestCalendarConfigLoads(t *testing.T) {
	pw := writeFile(t, "caldav-password", "s3cret\n")
	yaml := withCalendar(t, `{type: caldav, url: "https://dav.example.com/alice/work/", username: alice, password_file: `+pw+
		`, poll_interval: 2m, rules: [{title_prefix: "L:", profile: lunch}, {show_as: busy, all_day: false, profile: lunch, priority: 9}]}`,
		`calendar: {poll_interval: 10m, horizon: 72h, rules: [{title_contains: "out of office", profile: lunch}]}`)
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", yaml)}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Calendar.PollInterval != 10*time.Minute || cfg.Calendar.Horizon != 72*time.Hour || len(cfg.Calendar.Rules) != 1 {
		t.Fatalf("calendar: %+v", cfg.Calendar)
	}
	u, _ := cfg.catalog.User("alice")
	c := u.Calendar
	if c == nil || c.Type != "caldav" || c.PasswordFile != pw || c.PollInterval != 2*time.Minute || len(c.Rules) != 2 ||
		c.Rules[1].AllDay == nil || *c.Rules[1].AllDay || c.Rules[1].Priority != 9 {
		t.Fatalf("alice's calendar: %+v", c)
	}
	// Without a calendar section the defaults hold.
	cfg, _, err = loadConfig([]string{"-config", writeFile(t, "presenced.yaml", fixture(t, "config/issue.yaml", nil))}, nil, &bytes.Buffer{})
	if err != nil || cfg.Calendar.PollInterval != 5*time.Minute || cfg.Calendar.Horizon != 7*24*time.Hour {
		t.Fatalf("defaults: %+v %v", cfg.Calendar, err)
	}
}

func TestBadCalendarConfigNamesTheKey(t *testing.T) {
	pw := writeFile(t, "pw", "x")
	for _, tc := range []struct{ name, source, extra, want string }{
		{"inline password", `{type: ics, url: "https://x.example/a.ics", password: hunter2}`, "", "unknown key users[0].calendar.password"},
		{"missing type", `{url: "https://x.example/a.ics", rules: [{title_prefix: "L:", profile: lunch}]}`, "", "users[0].calendar.type: missing"},
		{"bad type", `{type: exchange, url: "https://x.example/a.ics"}`, "", `users[0].calendar.type: "exchange" is not caldav or ics`},
		{"no url", `{type: ics}`, "", "users[0].calendar.url: missing"},
		{"not http", `{type: ics, url: "ftp://x.example/a.ics"}`, "", "users[0].calendar.url: not an http(s) URL"},
		{"credentials in url", `{type: caldav, url: "https://alice:pw@x.example/cal/"}`, "", "users[0].calendar.url: holds credentials"},
		{"missing password file", `{type: caldav, url: "https://x.example/cal/", username: alice, password_file: /nonexistent/pw}`, "", "users[0].calendar.password_file:"},
		{"password without user", `{type: caldav, url: "https://x.example/cal/", password_file: ` + pw + `}`, "", "users[0].calendar.username: missing"},
		{"token and password", `{type: ics, url: "https://x.example/a.ics", username: a, password_file: ` + pw + `, token_file: ` + pw + `}`, "", "users[0].calendar.token_file"},
		{"fast poll", `{type: ics, url: "https://x.example/a.ics", poll_interval: 1s}`, "", "users[0].calendar.poll_interval: 1s: at least 10s"},
		{"rule without condition", `{type: ics, url: "https://x.example/a.ics", rules: [{profile: lunch}]}`, "", "users[0].calendar.rules[0]: no condition"},
		{"rule unknown profile", `{type: ics, url: "https://x.example/a.ics", rules: [{title_prefix: "m:", profile: nap}]}`, "", `users[0].calendar.rules[0].profile: "nap" is not a system-wide profile`},
		{"bad show_as", "", `calendar: {rules: [{show_as: away, profile: lunch}]}`, `calendar.rules[0].show_as: "away"`},
		{"unknown rule key", "", `calendar: {rules: [{title: "m:", profile: lunch}]}`, "unknown key calendar.rules[0].title"},
		{"fast default poll", "", `calendar: {poll_interval: 5s}`, "calendar.poll_interval: 5s is out of range (allowed 10s to 24h"},
		{"horizon", "", `calendar: {horizon: 90m0s}`, ""},
		{"long horizon", "", `calendar: {horizon: 2000h}`, "calendar.horizon: 2000h is out of range (allowed 1h to 1488h)"},
		// The default rules need a meeting or holiday profile; issue.yaml has neither.
		{"no rules at all", `{type: ics, url: "https://x.example/a.ics"}`, "", "users[0].calendar.rules: none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", withCalendar(t, tc.source, tc.extra))}, nil, &bytes.Buffer{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
		})
	}
}
