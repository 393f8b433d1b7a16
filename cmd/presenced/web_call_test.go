package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presenced/presenced/ami"
)

// TestWebColleaguesOnACall: with the colleagues page open, bob's device is called for real (a
// lab device that answers): his row gets the "on a call" tag without a reload, as the API's
// presence says; the admin page's "on a call" filter lists him; when the call ends the tag
// goes, again without a reload.
func TestWebColleaguesOnACall(t *testing.T) {
	sinkID := strings.TrimSuffix(strings.TrimPrefix(webBobSink, "Local/"), "@lab-sink")
	d, p := startWebDaemon(t)
	if err := p.c.DBPut(p.ctx(), "LABSINK", sinkID, "answer"); err != nil {
		t.Fatal(err)
	}
	hangUp := func() error { return p.c.Hangup(p.ctx(), "/^Local/"+sinkID+"@lab-sink-/", 16) }
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.c.Hangup(ctx, "/^Local/"+sinkID+"@lab-sink-/", 16)
		_ = p.c.DBDel(ctx, "LABSINK", sinkID)
	})
	d.switchTo(t, webBob.id, "available", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.id, "#status-card")
	act(t, ctx, "open colleagues",
		chromedp.Navigate(d.base+"/colleagues"),
		chromedp.WaitVisible(chromedp.CSS("#u-web-bob")),
		chromedp.WaitVisible(chromedp.CSS(`html[data-live="open"]`)))
	eval[bool](t, ctx, "mark the page", `window.notReloaded = true`)
	onCall := func() string { return text(t, ctx, "#u-web-bob .tag.call") }
	if got := onCall(); got != "" {
		t.Fatalf("bob is on a call before any: %q", got)
	}
	apiOnCall := func() bool {
		_, pl := d.call(t, http.MethodGet, "/api/v1/presence", webAlice.token(), nil)
		users, _ := pl["users"].([]any)
		for _, u := range users {
			if m := u.(map[string]any); m["user"] == webBob.id {
				return m["on_call"] == true
			}
		}
		t.Fatalf("bob is not in the presence list: %v", pl)
		return false
	}

	if err := p.c.Originate(p.ctx(), ami.OriginateSpec{Channel: webBobSink, Application: "Wait", Data: "120", Async: true}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 10*time.Second, "bob's row says he is on a call", func() bool { return onCall() == "on a call" })
	t.Logf("the call showed in the open page %v after the call was placed", took.Round(time.Millisecond))
	if !apiOnCall() {
		t.Error("the API's presence does not say bob is on a call")
	}
	if !eval[bool](t, ctx, "no reload", `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
	screenshot(t, ctx, "colleagues-on-a-call")

	admin := newWebClient(t, d.base)
	if code, _ := admin.signIn(webAdmin.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("admin sign in: %d", code)
	}
	_, body, _ := admin.get("/admin?filter=on_call")
	if !strings.Contains(body, `id="a-`+webBob.id+`"`) || strings.Contains(body, `id="a-`+webAlice.id+`"`) ||
		!strings.Contains(between(body, `id="a-`+webBob.id+`"`, "</td>"), `<span class="tag call">on a call</span>`) {
		t.Errorf("the admin page's on-a-call filter: %s", between(body, "<tbody>", "</tbody>"))
	}

	if err := hangUp(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the tag goes when the call ends", func() bool { return onCall() == "" })
	if apiOnCall() {
		t.Error("the API's presence still says bob is on a call")
	}
	if !eval[bool](t, ctx, "no reload", `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
}
