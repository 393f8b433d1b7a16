package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// focusForm is the editor's form of a personal profile "focus" that joins the queues paused
// with reason.
func focusForm(csrf, op, reason, icon string) url.Values {
	return url.Values{
		"csrf": {csrf}, "op": {op}, "id": {"focus"}, "name": {"Focus"}, "icon": {icon}, "visibility": {"public"},
		"on_enter.n":         {"2"},
		"on_enter.0.action":  {"queue_login"},
		"on_enter.0.enabled": {"on"},
		"on_enter.0.queues":  {"all"},
		"on_enter.1.action":  {"queue_pause"},
		"on_enter.1.enabled": {"on"},
		"on_enter.1.queues":  {"all"},
		"on_enter.1.reason":  {reason},
		"on_exit.n":          {"0"},
	}
}

// TestEditorPreviewsUnsavedEdits: the editor's Preview shows what switching to the profile as
// edited would do, with the same checks as Save and the problems at the fields, and saves
// nothing; for a new profile too.
func TestEditorPreviewsUnsavedEdits(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, _, tok := c.get("/profiles/new")
	if code, body, _ := c.post("/profiles/new", focusForm(tok, "save", "Stored", "focus")); code != http.StatusSeeOther {
		t.Fatalf("save: %d %s", code, body)
	}
	stored := func() string {
		t.Helper()
		ps, err := a.engine.Profiles(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.ID == "focus" {
				return p.OnEnter[1].Reason
			}
		}
		return ""
	}
	for _, tc := range []struct {
		name, path, reason, icon string
		code                     int
		want, field              string // on the page; the field with a problem
	}{
		{"an edit of a saved profile", "/profiles/focus", "Edited", "focus", http.StatusOK, "join queue support, paused (Edited)", ""},
		{"a new profile", "/profiles/new", "Brand new", "", http.StatusOK, "join queue support, paused (Brand new)", ""},
		{"an unknown icon", "/profiles/focus", "Edited", "rocket", http.StatusUnprocessableEntity, `is not one of the icons: available`, "icon-err"},
		{"no reason: the profile's name", "/profiles/focus", "", "focus", http.StatusOK, "join queue support, paused (Focus)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := focusForm(tok, "preview", tc.reason, tc.icon)
			if tc.name == "a new profile" {
				f.Set("id", "draft")
			}
			code, body, _ := c.post(tc.path, f)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d, want %d with %q: %s", code, tc.code, tc.want, body)
			}
			if tc.field != "" && !strings.Contains(body, `id="`+tc.field+`"`) {
				t.Errorf("no problem at %s", tc.field)
			}
			if tc.code == http.StatusOK && !strings.Contains(body, `id="preview-result"`) {
				t.Errorf("no preview")
			}
		})
	}
	if got := stored(); got != "Stored" {
		t.Fatalf("a preview changed the stored profile: reason %q", got)
	}
	if _, err := a.engine.Profiles(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := c.get("/profiles/draft"); code != http.StatusNotFound {
		t.Errorf("the previewed new profile was stored: %d", code)
	}
	// Saving with an unknown icon is refused at the field, with the other problems.
	f := focusForm(tok, "save", "x", "rocket")
	f.Set("activation", "x")
	code, body, _ := c.post("/profiles/focus", f)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="icon-err"`) || !strings.Contains(body, `id="activation-err"`) {
		t.Fatalf("save with icon rocket: %d %s", code, body)
	}
	// The active profile is locked: its preview is of what is stored, whatever the form says,
	// and it cannot be saved.
	if _, err := a.engine.Switch(context.Background(), presence.SwitchRequest{User: "alice", Profile: "focus", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	code, body, _ = c.post("/profiles/focus", focusForm(tok, "preview", "Edited", "focus"))
	if code != http.StatusOK || !strings.Contains(body, `id="locked"`) || !strings.Contains(body, `id="preview-result"`) || strings.Contains(body, "(Edited)") {
		t.Errorf("preview of the active profile: %d %s", code, body)
	}
	if code, _, _ = c.post("/profiles/focus", focusForm(tok, "save", "Edited", "focus")); code != http.StatusConflict {
		t.Errorf("save of the active profile: %d", code)
	}
	if got := stored(); got != "Stored" {
		t.Fatalf("the active profile changed: reason %q", got)
	}
	// Bob cannot preview (nor see) alice's profile: his own "focus" is a new one to him.
	b := a.client(t)
	b.signIn("bob", testPassword)
	_, _, btok := b.get("/profiles/new")
	code, body, _ = b.post("/profiles/focus", focusForm(btok, "preview", "Bob's", ""))
	if code != http.StatusOK || !strings.Contains(body, "paused (Bob&#39;s)") || !strings.Contains(body, "queue support") {
		t.Fatalf("bob's preview: %d %s", code, body)
	}
	if got := stored(); got != "Stored" {
		t.Fatalf("bob's preview changed alice's profile: reason %q", got)
	}
}

// TestIconFallback: every profile shows an icon: its own, or for an unknown or empty name the
// profile name's initial in a circle, or a dot.
func TestIconFallback(t *testing.T) {
	for _, tc := range []struct{ name, label, want, not string }{
		{"lunch", "Lunch", `<path d="M7 3v8`, "fallback"},
		{"rocket", "Rocket launch", `>R</text>`, "<path"},
		{"", "élan", `>É</text>`, "<path"},
		{"", "  42 days", `>4</text>`, "<path"},
		{"", "<script>", `>S</text>`, "<script"},
		{"nope", "—", `r="4" fill="currentColor"`, "<text"},
	} {
		got := string(iconSVG(tc.name, tc.label))
		if !strings.HasPrefix(got, `<svg class="icon" aria-hidden="true"`) || !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("iconSVG(%q, %q) = %s", tc.name, tc.label, got)
		}
	}
	// On the pages: a system-wide profile with an icon the web app does not have.
	a := newAppWith(t, nil, nil)
	c := a.client(t)
	c.signIn("alice", testPassword)
	if _, err := a.engine.Switch(context.Background(), presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	_, body, _ := c.get("/")
	// "available" and "secret" have no icon: their initials.
	for _, want := range []string{`>A</text>`, `>S</text>`, `>L</text>`} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %s", want)
		}
	}
}
