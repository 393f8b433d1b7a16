package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestColleaguesSearchWithoutJavaScript: the colleagues page's search form (GET
// /colleagues?q=) filters the list on the server, as a browser without JavaScript gets it: by
// name, extension, what the colleague shows and their info, case-insensitive; a private
// profile is found by what colleagues see, never by its hidden name or info; no match says so.
func TestColleaguesSearchWithoutJavaScript(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	for _, s := range []presence.SwitchRequest{
		{User: "bob", Profile: "lunch", Info: "back at 2"},
		{User: "carol", Profile: "secret", Info: "the dentist"},
	} {
		s.Source = presence.SourceAPI
		if _, err := a.engine.Switch(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	c := a.client(t)
	c.signIn("alice", testPassword)
	rowRE := regexp.MustCompile(`<li class="person[^"]*" id="u-([a-z]+)"`)
	for _, tc := range []struct {
		q    string
		want string // the rows, in order
	}{
		{"", "alice bob carol"},
		{"BOB", "bob"},
		{"1003", "carol"},
		{"lunch", "bob"},
		{"back at", "bob"},
		{"do not disturb", "carol"}, // what colleagues see of a private profile
		{"secret", ""},
		{"dentist", ""},
		{"  alice ", "alice"},
		{"nobody-at-all", ""},
	} {
		code, body, _ := c.get("/colleagues?q=" + url.QueryEscape(tc.q))
		if code != http.StatusOK {
			t.Fatalf("q=%q: %d", tc.q, code)
		}
		var got []string
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("q=%q: rows %v, want %q", tc.q, got, tc.want)
		}
		if !strings.Contains(body, `id="q" name="q" type="search" value="`+strings.TrimSpace(tc.q)+`"`) {
			t.Errorf("q=%q: the search field does not keep it", tc.q)
		}
		if none := strings.Contains(body, `<li class="hint">Nobody matches.</li>`); none != (tc.want == "") {
			t.Errorf("q=%q: \"Nobody matches\" shown %v", tc.q, none)
		}
	}
}
