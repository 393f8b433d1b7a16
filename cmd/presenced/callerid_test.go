package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari/featurecode"
)

// The caller ID of the calling phone and the hot desk as the bound user's phone (issue 13,
// item 4), with real SIP calls from the lab's phones (testdata/asterisk/conf/pjsip.conf,
// lab-phone-<endpoint>) through the lab's outbound route (extensions.conf, internal: 0<n> runs
// the shipped presenced-outbound, then rings lab-sink device <n>, which reports the caller ID it
// sees).

// callerIDKeys are the astdb keys these tests make presenced write; they are taken off when
// a test ends.
var callerIDKeys = []string{"PJSIP:1001", "PJSIP:1001-mobile", "PJSIP:1003", "PJSIP:hotdesk-1", "1001/callerid",
	"1001/callerid/desk", "1001/callerid/mobile", "1001/location", "1003/callerid/desk", "1003/location"}

func forgetCallerIDKeys(t *testing.T, c *ami.Client) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, k := range callerIDKeys {
			_ = c.DBDel(ctx, "PROFILE", k)
		}
	})
}

// callOut places a real call from the lab phone of endpoint phone (1001, 1001-mobile,
// hotdesk-1) to lab-sink device dev through the lab's outbound route, and returns the caller ID
// number the device saw ringing. With answer the device answers and the call goes on until the
// test hangs it up; otherwise the device is busy and the call ends at once.
func callOut(t *testing.T, c *ami.Client, phone, dev string, answer bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	mode := "busy"
	if answer {
		mode = "answer"
	}
	if err := c.DBPut(ctx, "LABSINK", dev, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.DBDel(ctx, "LABSINK", dev)
	})
	sub := c.Subscribe(4096)
	defer sub.Close()
	if err := c.Originate(ctx, ami.OriginateSpec{Channel: "PJSIP/0" + dev + "@lab-phone-" + phone, Application: "Wait",
		Data: "60", Async: true, ChannelID: uniqID("cid-")}); err != nil {
		t.Fatalf("originate a call from %s: %v", phone, err)
	}
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatal("AMI events ended")
			}
			if ev.Event() == "UserEvent" && ev.Get("UserEvent") == "LabRang" && ev.Get("Device") == dev {
				return ev.Get("From")
			}
		case <-ctx.Done():
			t.Fatalf("the call from %s never rang device %s", phone, dev)
		}
	}
}

// TestCallerIDOfTheCallingPhone: a call from the user's mobile presents the mobile's caller
// ID, a call from the desk phone the caller ID for every phone: presenced-outbound finds the
// user by the phone the call comes from (the device map), not by the caller ID number. A
// personal profile may present only the user's own numbers, the field named.
func TestCallerIDOfTheCallingPhone(t *testing.T) {
	f := startFeatureCodeDaemon(t, fixture(t, "config/caller-id.yaml", nil))
	p := &pbx{t: t, c: f.ami}
	forgetCallerIDKeys(t, f.ami)

	profile := func(actions ...map[string]any) (int, map[string]any) {
		return f.d.call(t, http.MethodPut, "/api/v1/users/alice/profiles/out", testToken("alice"),
			map[string]any{"name": "Out and about", "on_enter": actions})
	}
	mobile := map[string]any{"action": "caller_id", "families": []string{"mobile"}, "value": "+4917099999999"}
	code, res := profile(mobile)
	if code != http.StatusUnprocessableEntity || !strings.Contains(toJSON(res), "on_enter[0].value") ||
		!strings.Contains(toJSON(res), "is not a caller ID assigned to you") {
		t.Fatalf("a number not assigned to alice: %d %v, want 422 naming on_enter[0].value", code, res)
	}
	code, res = profile(map[string]any{"action": "caller_id", "families": []string{"pager"}, "value": "1001"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(toJSON(res), "on_enter[0].families") {
		t.Fatalf("an unknown family: %d %v, want 422 naming on_enter[0].families", code, res)
	}
	mobile["value"] = "+4917012345678"
	if code, res = profile(map[string]any{"action": "caller_id", "value": `"Alice" <+493012345678>`}, mobile); code != http.StatusCreated {
		t.Fatalf("alice's own numbers: %d %v", code, res)
	}
	code, res = f.d.call(t, http.MethodPut, "/api/v1/users/alice/profile", testToken("alice"), map[string]string{"profile": "out"})
	if code != http.StatusOK || res["in_sync"] != true {
		t.Fatalf("switch to out: %d %v", code, res)
	}
	for k, want := range map[string]string{"PJSIP:1001-mobile": "1001:mobile", "PJSIP:1001": "1001:desk",
		"1001/callerid/mobile": "+4917012345678", "1001/callerid": `"Alice" <+493012345678>`} {
		if v, ok := p.db("PROFILE", k); !ok || v != want {
			t.Errorf("PROFILE/%s = %q (%v), want %q", k, v, ok, want)
		}
	}

	// The endpoints' own caller ID is "Alice" <1001> on both phones.
	if got := callOut(t, f.ami, "1001-mobile", "97011", false); got != "+4917012345678" {
		t.Errorf("a call from alice's mobile presents %q, want the mobile's +4917012345678", got)
	}
	if got := callOut(t, f.ami, "1001", "97012", false); got != "+493012345678" {
		t.Errorf("a call from alice's desk phone presents %q, want +493012345678 (her caller ID for every phone)", got)
	}
	// Carol with her caller ID switched off (an earlier test may have left her with the
	// meeting profile's, which stays until a profile switches it off): her calls present her
	// endpoint's.
	if code, res := f.d.call(t, http.MethodPut, "/api/v1/users/carol/profiles/plain", testToken("carol"),
		map[string]any{"name": "Plain", "on_enter": []map[string]any{{"action": "caller_id", "on": false}}}); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("carol's profile without a caller ID: %d %v", code, res)
	}
	f.d.switchTo(t, "carol", "plain", "")
	if got := callOut(t, f.ami, "1003", "97013", false); got != "1003" {
		t.Errorf("a call from carol's desk phone presents %q, want 1003", got)
	}

	// Off again: the device map goes with the last caller ID.
	f.d.switchTo(t, "alice", "available", "")
	code, res = profile(map[string]any{"action": "caller_id", "on": false})
	if code != http.StatusOK {
		t.Fatalf("a profile switching the caller ID off: %d %v", code, res)
	}
	f.d.switchTo(t, "alice", "out", "")
	for _, k := range []string{"PJSIP:1001-mobile", "PJSIP:1001", "1001/callerid", "1001/callerid/mobile"} {
		if v, ok := p.db("PROFILE", k); ok {
			t.Errorf("PROFILE/%s = %q after the caller ID was switched off, want gone", k, v)
		}
	}
	if got := callOut(t, f.ami, "1001-mobile", "97014", false); got != "1001" {
		t.Errorf("a call from alice's mobile without a caller ID presents %q, want the endpoint's 1001", got)
	}
}

// TestHotDeskIsTheBoundUsersPhone: while Alice is bound to a hot desk by a location action, it
// is her phone: an outgoing call from it presents her desk phones' caller ID, *55<n> from it
// switches her without a PIN, and a call on it is her call (queue repairs wait for it to end).
// Unbound, it is nobody's again.
func TestHotDeskIsTheBoundUsersPhone(t *testing.T) {
	f := startFeatureCodeDaemon(t, fixture(t, "config/caller-id.yaml", nil))
	p := &pbx{t: t, c: f.ami}
	forgetCallerIDKeys(t, f.ami)
	const desk = "hotdesk-1"
	iface := "Local/1001@presenced-queue-member/n"
	f.d.switchTo(t, "alice", "available", "")

	nobodys := func(when string) {
		t.Helper()
		if v, ok := p.db("PROFILE", "PJSIP:"+desk); ok {
			t.Errorf("%s: PROFILE/PJSIP:%s = %q, want no entry", when, desk, v)
		}
		if got := callOut(t, f.ami, desk, uniqDigits(), false); got != "1091" {
			t.Errorf("%s: a call from the hot desk presents %q, want its own 1091", when, got)
		}
		id, _ := f.dial("*553", desk)
		if o := f.outcome(id, 15*time.Second); o.Result == featurecode.ResultSwitched || o.Caller != "" {
			t.Errorf("%s: *553 from the hot desk: %+v, want nobody switched", when, o)
		}
		if got := f.activeProfile("alice"); got != "available" {
			t.Errorf("%s: alice is in %q", when, got)
		}
	}
	nobodys("before alice is bound")

	f.d.switchTo(t, "alice", "hotdesk", "")
	if v, _ := p.db("PROFILE", "PJSIP:"+desk); v != "1001:desk" {
		t.Fatalf("bound: PROFILE/PJSIP:%s = %q, want 1001:desk", desk, v)
	}
	if got := callOut(t, f.ami, desk, uniqDigits(), false); got != "+493012345678" {
		t.Errorf("a call from the hot desk alice is bound to presents %q, want her desk phones' +493012345678", got)
	}
	id, _ := f.dial("*553", desk)
	o := f.outcome(id, 15*time.Second)
	f.expect(o, featurecode.ResultSwitched, "alice", "1001", "lunch")
	if o.Caller != "alice" || o.Identity != featurecode.IdentityHotDesk || o.PIN {
		t.Errorf("*553 from the bound hot desk: caller %q identity %s PIN %v, want alice by hot_desk without PIN", o.Caller, o.Identity, o.PIN)
	}
	if v, _ := p.db("PROFILE", "1001/location"); v != "PJSIP/"+desk {
		t.Fatalf("lunch left the binding alone: PROFILE/1001/location = %q", v)
	}

	// A call on the hot desk is alice's: a hand unpause waits for it to end.
	sink := uniqDigits()
	callOut(t, f.ami, desk, sink, true)
	hangUp := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.ami.Hangup(ctx, "/^PJSIP/"+desk+"-/", 16)
	}
	t.Cleanup(hangUp)
	status := func() driftStatus {
		return f.d.status(t, driftUser{id: "alice", ext: "1001"})
	}
	eventually(t, 5*time.Second, "alice on a call on the hot desk", func() bool { return status().OnCall == "PJSIP/"+desk })
	if err := f.ami.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the repair of the pause waiting for the call", func() bool {
		st := status()
		return len(st.Pending) == 1 && st.Pending[0].Kind == "queue_pause" && st.Pending[0].Queue == "support"
	})
	if m := p.member("support", iface); !pausedFor(m, "") {
		t.Fatalf("support member during the call on the hot desk: %+v, want left unpaused", m)
	}
	hangUp()
	eventually(t, 5*time.Second, "the pause back after the call", func() bool { return pausedFor(p.member("support", iface), "Lunch") })
	eventually(t, 5*time.Second, "alice off the call", func() bool { return status().OnCall == "" })

	// Carol binds the same hot desk: alice, bound first, keeps it, and carol's state shows no
	// drift for it. When alice leaves, carol's next look claims it.
	f.d.switchTo(t, "carol", "hotdesk", "")
	if v, _ := p.db("PROFILE", "PJSIP:"+desk); v != "1001:desk" {
		t.Fatalf("carol bound too: PROFILE/PJSIP:%s = %q, want alice's 1001:desk", desk, v)
	}
	if st := f.d.status(t, driftUser{id: "carol", ext: "1003"}); !st.InSync || len(st.Differences) > 0 {
		t.Errorf("carol bound to the hot desk alice holds: %s, want in sync", st.raw)
	}
	f.d.switchTo(t, "alice", "home", "")
	if v, ok := p.db("PROFILE", "PJSIP:"+desk); ok {
		t.Fatalf("alice left: PROFILE/PJSIP:%s = %q, want her entry taken off", desk, v)
	}
	if code, res := f.d.call(t, http.MethodPost, "/api/v1/users/carol/reconcile", testToken("admin"), nil); code != http.StatusOK {
		t.Fatalf("reconcile carol: %d %v", code, res)
	}
	if v, _ := p.db("PROFILE", "PJSIP:"+desk); v != "1003:desk" {
		t.Fatalf("carol's look after alice left: PROFILE/PJSIP:%s = %q, want 1003:desk", desk, v)
	}
	id, _ = f.dial("*553", desk)
	o = f.outcome(id, 15*time.Second)
	f.expect(o, featurecode.ResultSwitched, "carol", "1003", "lunch")
	if o.Caller != "carol" || o.Identity != featurecode.IdentityHotDesk || o.PIN {
		t.Errorf("*553 from the hot desk carol holds: caller %q identity %s PIN %v", o.Caller, o.Identity, o.PIN)
	}

	// Unbound: nobody's again.
	f.d.switchTo(t, "carol", "home", "")
	f.d.switchTo(t, "alice", "available", "")
	nobodys("after both left it")
}

// uniqDigits is a lab-sink device of its own for one call.
func uniqDigits() string {
	return "97" + strings.Map(func(r rune) rune { return '0' + r%10 }, uniqID(""))[:6]
}
