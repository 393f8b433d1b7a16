// Package asterisk_test proves the shipped dialplan (extensions_presenced.conf) with real calls
// in the lab Asterisk 22 (internal/lab): the tests write the state presenced would write (astdb
// keys, Custom: device states, the PRESENCED_APP global) and place calls between Local channels.
// What happened is observed from the PBX only, through AMI events:
//
//   - UserEvent LabRang / LabAnswered, raised by the lab's device sink (context lab-sink in
//     testdata/asterisk/conf/extensions.conf) when a "device" Local/<dev>@lab-sink is called;
//     astdb LABSINK/<dev> makes it answer, be busy or (absent) ring without answering;
//   - UserEvent LabCallResult, raised by the lab's caller (lab-call, lab-queuecall) with the
//     DIALSTATUS its Dial() ended with;
//   - Hangup (Cause), DialEnd (DialStatus) and Newexten (Application, AppData) events.
//
// Test users are extensions 95xx, their devices <ext><nn>, "external numbers" 8<ext><nn> (the
// lab's PRESENCED_FORWARD_CONTEXT, lab-route, sends 8... to the sink). Every test uses its own
// extensions and deletes its keys; the tests run in parallel.
package asterisk_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Asterisk: true}, func(e *lab.Env) { env = e }))
}

const caller = `"Lab Caller" <9599>`

var (
	clientOnce sync.Once
	shared     *ami.Client
	clientErr  error
)

// amiClient is the package's AMI client (the lab's test user, call + user + dialplan events),
// connected and fully booted.
func amiClient(t *testing.T) *ami.Client {
	t.Helper()
	clientOnce.Do(func() {
		shared, clientErr = ami.New(ami.Config{
			Addr: env.AMIAddr, Username: env.AMITestUser, Secret: env.AMITestSecret,
			Events:     "system,call,user,dialplan",
			BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		})
		if clientErr != nil {
			return
		}
		go shared.Run(context.Background()) // lives as long as the test binary
		deadline := time.Now().Add(15 * time.Second)
		for !shared.Status().FullyBooted {
			if time.Now().After(deadline) {
				clientErr = fmt.Errorf("AMI not fully booted after 15 s: %+v", shared.Status())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if clientErr != nil {
		t.Fatal(clientErr)
	}
	return shared
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func uniq(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ---- observing ------------------------------------------------------------------------------

type stamped struct {
	at time.Time
	m  *ami.Message
}

// recorder keeps every event the client receives from its creation on, with the time it arrived.
type recorder struct {
	mu     sync.Mutex
	events []stamped
	notify chan struct{} // closed and replaced on every new event
	resync bool
}

func record(t *testing.T, c *ami.Client) *recorder {
	r := &recorder{notify: make(chan struct{})}
	sub := c.Subscribe(100000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range sub.Events() {
			r.mu.Lock()
			if m.Event() == ami.EventResync {
				r.resync = true
			}
			r.events = append(r.events, stamped{time.Now(), m})
			close(r.notify)
			r.notify = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		sub.Close()
		<-done
		if r.resync {
			t.Error("events were dropped (Resync): the observations of this test are incomplete")
		}
	})
	return r
}

// wait returns the first event (since the recorder started) that match accepts, or fails t.
func (r *recorder) wait(t *testing.T, what string, timeout time.Duration, match func(*ami.Message) bool) stamped {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	i := 0
	for {
		r.mu.Lock()
		for ; i < len(r.events); i++ {
			if match(r.events[i].m) {
				e := r.events[i]
				r.mu.Unlock()
				return e
			}
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// all returns the events so far that match accepts.
func (r *recorder) all(match func(*ami.Message) bool) []stamped {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []stamped
	for _, e := range r.events {
		if match(e.m) {
			out = append(out, e)
		}
	}
	return out
}

// userEvent matches UserEvent name whose headers have the given key/value pairs.
func userEvent(name string, kv ...string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		if m.Event() != "UserEvent" || m.Get("UserEvent") != name {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if m.Get(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

func rang(dev string) func(*ami.Message) bool { return userEvent("LabRang", "Device", dev) }

func callResult(target string) func(*ami.Message) bool {
	return userEvent("LabCallResult", "Target", target)
}

// newexten matches the dialplan executing app with data starting with dataPrefix.
func newexten(app, dataPrefix string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		return m.Event() == "Newexten" && m.Get("Application") == app && strings.HasPrefix(m.Get("AppData"), dataPrefix)
	}
}

// hangupOf matches the Hangup event of the ;2 half (the one running the dialplan) of a Local
// channel whose name starts with prefix.
func hangupOf(prefix string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		ch := m.Get("Channel")
		return m.Event() == "Hangup" && strings.HasPrefix(ch, prefix) && strings.HasSuffix(ch, ";2")
	}
}

func dialEndTo(devPrefix string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		return m.Event() == "DialEnd" && strings.HasPrefix(m.Get("DestChannel"), devPrefix)
	}
}

// expectNone fails t if an event match accepts arrived.
func (r *recorder) expectNone(t *testing.T, what string, match func(*ami.Message) bool) {
	t.Helper()
	if got := r.all(match); len(got) > 0 {
		t.Errorf("unexpected %s: %s", what, got[0].m)
	}
}

// ---- acting -------------------------------------------------------------------------------------

// dbPut stores family/key = value until the test ends.
func dbPut(t *testing.T, c *ami.Client, family, key, value string) {
	t.Helper()
	if err := c.DBPut(testCtx(t), family, key, value); err != nil {
		t.Fatalf("DBPut %s/%s: %v", family, key, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.DBDel(ctx, family, key)
	})
}

// profile writes a user's PROFILE/<ext>/<key> values (and DND/CF/CFB/CFU for those keys).
func profile(t *testing.T, c *ami.Client, ext string, kv map[string]string) {
	t.Helper()
	for k, v := range kv {
		switch k {
		case "DND", "CF", "CFB", "CFU":
			dbPut(t, c, k, ext, v)
		default:
			dbPut(t, c, "PROFILE", ext+"/"+k, v)
		}
	}
}

// dev is the dial string of lab device id.
func dev(id string) string { return "Local/" + id + "@lab-sink" }

func devs(ids ...string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = dev(id)
	}
	return strings.Join(out, "&")
}

// sink makes device id answer ("answer") or be busy ("busy").
func sink(t *testing.T, c *ami.Client, id, mode string) { dbPut(t, c, "LABSINK", id, mode) }

// call originates Local/<exten>@<context>: the ;2 half runs the dialplan, the ;1 half waits in
// Wait() once answered. The call is hung up when the test ends.
func call(t *testing.T, c *ami.Client, context_, exten, callerID string, vars map[string]string) {
	t.Helper()
	id := uniq("pdt")
	err := c.Originate(testCtx(t), ami.OriginateSpec{
		Channel:     "Local/" + exten + "@" + context_,
		Application: "Wait",
		Data:        "40",
		CallerID:    callerID,
		Timeout:     40 * time.Second,
		Async:       true,
		ChannelID:   id,
		Variables:   vars,
	})
	if err != nil {
		t.Fatalf("Originate Local/%s@%s: %v", exten, context_, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Hangup(ctx, id, 0) // "No such channel" when the call already ended
	})
}

// ---- the tests ------------------------------------------------------------------------------------

// TestCalls runs every call scenario in parallel; TestZLogClean checks the log afterwards.
func TestCalls(t *testing.T) {
	c := amiClient(t)
	tests := []struct {
		name string
		run  func(t *testing.T, c *ami.Client, r *recorder)
	}{
		{"DNDIsBusy", testDNDIsBusy},
		{"DNDWithVoicemailIsBusyGreeting", testDNDVoicemail},
		{"BusyWithoutCFB", testBusyWithoutCFB},
		{"CFForwardsAtOnce", testCF},
		{"CFBWhenDeviceBusy", testCFB},
		{"CFUAfterRingtime", testCFU},
		{"NoAnswerNumber", testNoAnswerNumber},
		{"NoAnswerVoicemail", testNoAnswerVoicemail},
		{"NoAnswerVoicemailWithoutMailbox", testNoAnswerNoMailbox},
		{"SimultaneousRingsAllAndLocation", testSimultaneous},
		{"SequentialRingsInOrder", testSequential},
		{"SequentialAllBusyIsCFB", testSequentialBusy},
		{"SequentialStepsWithTheirRingTimes", testSequentialSteps},
		{"StepsRingTogetherWhenSimultaneous", testStepsSimultaneous},
		{"DefaultRingListOfAProfile", testDefaultRingList},
		{"FollowMeInTheActionsFamilyOrder", testFollowMeFamilyOrder},
		{"ForwardLoopIsBroken", testForwardLoop},
		{"HopLimit", testHopLimit},
		{"InvalidForwardTargetIgnored", testInvalidForward},
		{"OutboundCallerID", testOutboundCallerID},
		{"OutboundCallerIDOfTheCallingPhone", testOutboundCallerIDByPhone},
		{"QueueMemberHonoursDND", testQueueMemberDND},
		{"QueueMemberRingsListWithoutForwarding", testQueueMemberRings},
		{"DNDPatternHint", testDNDPatternHint},
		{"FeatureCodeFallback", testFeatureCodeFallback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, c, record(t, c))
		})
	}
}

// DND: the call ends busy (DIALSTATUS BUSY, cause 17); no device rings, CF is not followed.
func testDNDIsBusy(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9501", map[string]string{"DND": "YES", "dndtext": "in a meeting",
		"dialstring": devs("950101"), "CF": "8950199"})
	call(t, c, "lab-call", "9501", caller, nil)
	res := r.wait(t, "LabCallResult for 9501", 10*time.Second, callResult("9501"))
	if got := res.m.Get("DialStatus"); got != "BUSY" {
		t.Errorf("DIALSTATUS = %q, want BUSY", got)
	}
	h := r.wait(t, "Hangup of the presenced-dial channel", 10*time.Second, hangupOf("Local/9501@presenced-dial-"))
	if got := h.m.Get("Cause"); got != "17" {
		t.Errorf("Hangup Cause = %q (%s), want 17 (busy)", got, h.m.Get("Cause-txt"))
	}
	r.expectNone(t, "ring of the DND user's device", rang("950101"))
	r.expectNone(t, "ring of the CF target", rang("8950199"))
}

// DND with noanswer=voicemail: the user's voicemail with the busy greeting.
func testDNDVoicemail(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9542", map[string]string{"DND": "YES", "noanswer": "voicemail", "dialstring": devs("954201")})
	call(t, c, "lab-call", "9542", caller, nil)
	r.wait(t, "VoiceMail(9542@default,b)", 10*time.Second, newexten("VoiceMail", "9542@default,b"))
	r.expectNone(t, "ring of the DND user's device", rang("954201"))
}

// Device busy, no CFB: the caller gets busy.
func testBusyWithoutCFB(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9506", map[string]string{"dialstring": devs("950601"), "CFU": "8950699"})
	sink(t, c, "950601", "busy")
	call(t, c, "lab-call", "9506", caller, nil)
	r.wait(t, "ring of 950601", 10*time.Second, rang("950601"))
	res := r.wait(t, "LabCallResult for 9506", 10*time.Second, callResult("9506"))
	if got := res.m.Get("DialStatus"); got != "BUSY" {
		t.Errorf("DIALSTATUS = %q, want BUSY", got)
	}
	h := r.wait(t, "Hangup of the presenced-dial channel", 10*time.Second, hangupOf("Local/9506@presenced-dial-"))
	if got := h.m.Get("Cause"); got != "17" {
		t.Errorf("Hangup Cause = %q, want 17", got)
	}
	r.expectNone(t, "CFU on busy", rang("8950699"))
}

// CF: the target (another presenced user) rings at once, with the caller's number and the
// redirecting information; the forwarding user's devices do not ring.
func testCF(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9503", map[string]string{"CF": "9504", "dialstring": devs("950301")})
	profile(t, c, "9504", map[string]string{"dialstring": devs("950401")})
	call(t, c, "lab-call", "9503", caller, nil)
	e := r.wait(t, "ring of the CF target's device 950401", 10*time.Second, rang("950401"))
	for k, want := range map[string]string{"From": "9599", "FromName": "Lab Caller", "RedirFrom": "9503",
		"RedirReason": "cfu", "Hops": "1", "Path": "-9503"} {
		if got := e.m.Get(k); got != want {
			t.Errorf("LabRang %s = %q, want %q", k, got, want)
		}
	}
	r.expectNone(t, "ring of the forwarding user's device", rang("950301"))
}

// CFB: the user's only device is busy -> forwarded at once (not after the ring time).
func testCFB(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9505", map[string]string{"dialstring": devs("950501"), "ringtime": "10", "CFB": "8950599", "CFU": "8950598"})
	sink(t, c, "950501", "busy")
	call(t, c, "lab-call", "9505", caller, nil)
	first := r.wait(t, "ring of 950501", 10*time.Second, rang("950501"))
	fwd := r.wait(t, "ring of the CFB target", 10*time.Second, rang("8950599"))
	if d := fwd.at.Sub(first.at); d > 3*time.Second {
		t.Errorf("CFB target rang %v after the busy device, want at once", d)
	}
	if got := fwd.m.Get("RedirReason"); got != "cfb" {
		t.Errorf("RedirReason = %q, want cfb (user-busy)", got)
	}
	if got := fwd.m.Get("From"); got != "9599" {
		t.Errorf("From = %q, want the caller 9599", got)
	}
	r.expectNone(t, "CFU target on busy", rang("8950598"))
}

// CFU: after the ring time the CFU target rings (CFU wins over noanswer).
func testCFU(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9507", map[string]string{"dialstring": devs("950701"), "ringtime": "2",
		"CFU": "8950799", "noanswer": "8950798"})
	call(t, c, "lab-call", "9507", caller, nil)
	first := r.wait(t, "ring of 950701", 10*time.Second, rang("950701"))
	fwd := r.wait(t, "ring of the CFU target", 10*time.Second, rang("8950799"))
	if d := fwd.at.Sub(first.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("CFU target rang %v after the device, want after the 2 s ring time", d)
	}
	if got := fwd.m.Get("RedirReason"); got != "cfnr" {
		t.Errorf("RedirReason = %q, want cfnr (no-answer)", got)
	}
	if got := fwd.m.Get("RedirFrom"); got != "9507" {
		t.Errorf("RedirFrom = %q, want 9507", got)
	}
	r.expectNone(t, "noanswer number although CFU is set", rang("8950798"))
	d := r.wait(t, "DialEnd of 950701", 5*time.Second, dialEndTo("Local/950701@lab-sink-"))
	if got := d.m.Get("DialStatus"); got != "NOANSWER" {
		t.Errorf("device DialStatus = %q, want NOANSWER", got)
	}
}

// noanswer=<number> without CFU: the number rings after the ring time.
func testNoAnswerNumber(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9508", map[string]string{"dialstring": devs("950801"), "ringtime": "2", "noanswer": "8950899"})
	call(t, c, "lab-call", "9508", caller, nil)
	first := r.wait(t, "ring of 950801", 10*time.Second, rang("950801"))
	fwd := r.wait(t, "ring of the noanswer number", 10*time.Second, rang("8950899"))
	if d := fwd.at.Sub(first.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("noanswer number rang %v after the device, want after the 2 s ring time", d)
	}
	if got := fwd.m.Get("RedirReason"); got != "cfnr" {
		t.Errorf("RedirReason = %q, want cfnr (no-answer)", got)
	}
}

// noanswer=voicemail: VoiceMail(<ext>@default,u) after the ring time.
func testNoAnswerVoicemail(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9541", map[string]string{"dialstring": devs("954101"), "ringtime": "2", "noanswer": "voicemail"})
	call(t, c, "lab-call", "9541", caller, nil)
	first := r.wait(t, "ring of 954101", 10*time.Second, rang("954101"))
	vm := r.wait(t, "VoiceMail(9541@default,u)", 10*time.Second, newexten("VoiceMail", "9541@default,u"))
	if d := vm.at.Sub(first.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("voicemail %v after the device rang, want after the 2 s ring time", d)
	}
}

// noanswer=voicemail for a user without a mailbox: the call ends "no answer" (cause 19).
func testNoAnswerNoMailbox(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9543", map[string]string{"dialstring": devs("954301"), "ringtime": "2", "noanswer": "voicemail"})
	call(t, c, "lab-call", "9543", caller, nil)
	res := r.wait(t, "LabCallResult for 9543", 10*time.Second, callResult("9543"))
	if got := res.m.Get("DialStatus"); got != "NOANSWER" {
		t.Errorf("DIALSTATUS = %q, want NOANSWER", got)
	}
	h := r.wait(t, "Hangup of the presenced-dial channel", 10*time.Second, hangupOf("Local/9543@presenced-dial-"))
	if got := h.m.Get("Cause"); got != "19" {
		t.Errorf("Hangup Cause = %q, want 19 (no answer)", got)
	}
	r.expectNone(t, "VoiceMail without mailbox", newexten("VoiceMail", "9543@"))
}

// Simultaneous (the default mode, default ring time 20 s): every device and the location ring
// together in one Dial; the one that answers takes the call.
func testSimultaneous(t *testing.T, c *ami.Client, r *recorder) {
	list := devs("953101", "953102", "953103")
	profile(t, c, "9531", map[string]string{"dialstring": list, "location": dev("953109")})
	sink(t, c, "953102", "answer")
	call(t, c, "lab-call", "9531", caller, nil)
	r.wait(t, "one Dial of all devices and the location, 20 s", 10*time.Second,
		newexten("Dial", list+"&"+dev("953109")+",20"))
	var times []time.Time
	for _, d := range []string{"953101", "953102", "953103", "953109"} {
		times = append(times, r.wait(t, "ring of "+d, 10*time.Second, rang(d)).at)
	}
	if e := r.all(rang("953101"))[0].m; e.Get("Path") != "" || e.Get("Hops") != "" {
		t.Errorf("a call that was not forwarded carries Path %q Hops %q, want none", e.Get("Path"), e.Get("Hops"))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if spread := times[len(times)-1].Sub(times[0]); spread > time.Second {
		t.Errorf("devices rang %v apart, want together", spread)
	}
	r.wait(t, "answer by 953102", 10*time.Second, userEvent("LabAnswered", "Device", "953102"))
	d := r.wait(t, "DialEnd of 953102", 10*time.Second, dialEndTo("Local/953102@lab-sink-"))
	if got := d.m.Get("DialStatus"); got != "ANSWER" {
		t.Errorf("953102 DialStatus = %q, want ANSWER", got)
	}
	for _, other := range []string{"953101", "953103", "953109"} {
		d := r.wait(t, "DialEnd of "+other, 10*time.Second, dialEndTo("Local/"+other+"@lab-sink-"))
		if got := d.m.Get("DialStatus"); got != "CANCEL" {
			t.Errorf("%s DialStatus = %q, want CANCEL", other, got)
		}
	}
}

// Sequential: one device after the other, ring time each, the location alongside each step;
// the second device answers.
func testSequential(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9532", map[string]string{"dialstring": devs("953201", "953202"), "ringmode": "sequential",
		"ringtime": "2", "location": dev("953209")})
	sink(t, c, "953202", "answer")
	call(t, c, "lab-call", "9532", caller, nil)
	first := r.wait(t, "ring of 953201", 10*time.Second, rang("953201"))
	second := r.wait(t, "ring of 953202", 10*time.Second, rang("953202"))
	if d := second.at.Sub(first.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("953202 rang %v after 953201, want one ring time (2 s) later", d)
	}
	r.wait(t, "answer by 953202", 10*time.Second, userEvent("LabAnswered", "Device", "953202"))
	d := r.wait(t, "DialEnd of 953201", 5*time.Second, dialEndTo("Local/953201@lab-sink-"))
	if got := d.m.Get("DialStatus"); got != "NOANSWER" {
		t.Errorf("953201 DialStatus = %q, want NOANSWER", got)
	}
	if !d.at.Before(second.at) {
		t.Errorf("953202 rang before 953201's Dial ended")
	}
	loc := r.all(rang("953209"))
	if len(loc) != 2 {
		t.Fatalf("location rang %d times, want twice (with each device)", len(loc))
	}
	if d := loc[0].at.Sub(first.at).Abs(); d > time.Second {
		t.Errorf("location's first ring %v away from 953201's", d)
	}
	if d := loc[1].at.Sub(second.at).Abs(); d > time.Second {
		t.Errorf("location's second ring %v away from 953202's", d)
	}
	r.wait(t, "Dial of 953201 with the location", time.Second, newexten("Dial", devs("953201", "953209")+",2"))
	r.wait(t, "Dial of 953202 with the location", time.Second, newexten("Dial", devs("953202", "953209")+",2"))
}

// Sequential with every device busy: each busy device is skipped at once (not after the ring
// time) and the call goes to CFB.
func testSequentialBusy(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9533", map[string]string{"dialstring": devs("953301", "953302"), "ringmode": "sequential",
		"ringtime": "5", "CFB": "8953399", "CFU": "8953398"})
	sink(t, c, "953301", "busy")
	sink(t, c, "953302", "busy")
	call(t, c, "lab-call", "9533", caller, nil)
	first := r.wait(t, "ring of 953301", 10*time.Second, rang("953301"))
	r.wait(t, "ring of 953302", 10*time.Second, rang("953302"))
	fwd := r.wait(t, "ring of the CFB target", 10*time.Second, rang("8953399"))
	if d := fwd.at.Sub(first.at); d > 3*time.Second {
		t.Errorf("CFB target rang %v after the first device, want at once (busy devices are skipped)", d)
	}
	if got := fwd.m.Get("RedirReason"); got != "cfb" {
		t.Errorf("RedirReason = %q, want cfb", got)
	}
	r.expectNone(t, "CFU target when all devices are busy", rang("8953398"))
}

// A forwards to B, B forwards back to A: A's devices ring on the second visit and the call
// ends; nothing loops.
func testForwardLoop(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9521", map[string]string{"CF": "9522", "dialstring": devs("952101"), "ringtime": "2"})
	profile(t, c, "9522", map[string]string{"CF": "9521", "dialstring": devs("952201"), "ringtime": "2"})
	call(t, c, "lab-call", "9521", caller, nil)
	e := r.wait(t, "ring of 952101 (loop broken)", 10*time.Second, rang("952101"))
	if got, want := e.m.Get("Path"), "-9521-9522"; got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if got := e.m.Get("Hops"); got != "2" {
		t.Errorf("Hops = %q, want 2", got)
	}
	r.wait(t, "LabCallResult for 9521", 10*time.Second, callResult("9521"))
	r.expectNone(t, "ring of 952201 (B forwards)", rang("952201"))
	if n := len(r.all(newexten("NoOp", "presenced: call to 952"))); n != 3 {
		t.Errorf("presenced-dial entered %d times, want 3 (A, B, A)", n)
	}
}

// A call that already took PRESENCED_MAX_HOPS (5) forwards is not forwarded again.
func testHopLimit(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9518", map[string]string{"CF": "8951899", "dialstring": devs("951801")})
	call(t, c, "lab-call", "9518", caller, map[string]string{"__PRESENCED_HOPS": "5"})
	r.wait(t, "ring of 951801 (hop limit)", 10*time.Second, rang("951801"))
	r.expectNone(t, "ring of the CF target beyond the hop limit", rang("8951899"))
}

// A forward target that is not a number (digits * # +) is ignored: the user's devices ring.
func testInvalidForward(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9519", map[string]string{"CF": "8951999@lab-sink/n", "dialstring": devs("951901")})
	call(t, c, "lab-call", "9519", caller, nil)
	r.wait(t, "ring of 951901", 10*time.Second, rang("951901"))
	r.expectNone(t, "ring of the malformed CF target", rang("8951999"))
}

// presenced-outbound sets the caller ID the callee sees from PROFILE/<ext>/callerid.
func testOutboundCallerID(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9551", map[string]string{"callerid": `"Sales Team" <0301234567>`})
	profile(t, c, "9552", map[string]string{"callerid": "0309999"})
	for _, d := range []string{"8955101", "8955201", "8955301"} {
		sink(t, c, d, "busy")
	}
	call(t, c, "lab-outbound", "8955101", `"Alice" <9551>`, nil)
	call(t, c, "lab-outbound", "8955201", `"Bob" <9552>`, nil)
	call(t, c, "lab-outbound", "8955301", `"Carol" <9553>`, nil)
	for _, tc := range []struct{ dev, num, name string }{
		{"8955101", "0301234567", "Sales Team"}, // "Name" <number>: both
		{"8955201", "0309999", "Bob"},           // a number: the number only
		{"8955301", "9553", "Carol"},            // no key: unchanged
	} {
		e := r.wait(t, "ring of "+tc.dev, 10*time.Second, rang(tc.dev))
		if got := e.m.Get("From"); got != tc.num {
			t.Errorf("%s: callee saw number %q, want %q", tc.dev, got, tc.num)
		}
		if got := e.m.Get("FromName"); got != tc.name {
			t.Errorf("%s: callee saw name %q, want %q", tc.dev, got, tc.name)
		}
	}
}

// presenced-outbound finds the caller by the phone the call comes from, a real SIP call from
// the lab's endpoints (PJSIP/1001-mobile-<n>, PJSIP/1001-<n>; their own caller ID is "Alice"
// <1001>): the device map entry PROFILE/PJSIP:<endpoint> names the user and the phone's family,
// PROFILE/<ext>/callerid/<family> wins over PROFILE/<ext>/callerid. The argument (the caller ID
// number) is not asked.
func testOutboundCallerIDByPhone(t *testing.T, c *ami.Client, r *recorder) {
	dbPut(t, c, "PROFILE", "PJSIP:1001-mobile", "9554:mobile")
	dbPut(t, c, "PROFILE", "PJSIP:1001", "9554:desk")
	profile(t, c, "9554", map[string]string{"callerid": "0309554", "callerid/mobile": `"Alice mobile" <+4917095540>`})
	profile(t, c, "1001", map[string]string{"callerid": "0301001"}) // what the caller ID number would find
	for _, d := range []string{"8955401", "8955402"} {
		sink(t, c, d, "busy")
	}
	for _, tc := range []struct{ phone, dev, num, name string }{
		{"1001-mobile", "8955401", "+4917095540", "Alice mobile"}, // the mobile's own
		{"1001", "8955402", "0309554", "Alice"},                   // no desk caller ID: the user's for every phone
	} {
		err := c.Originate(testCtx(t), ami.OriginateSpec{Channel: "PJSIP/0" + tc.dev + "@lab-phone-" + tc.phone,
			Application: "Wait", Data: "20", Async: true, ChannelID: uniq("pdt")})
		if err != nil {
			t.Fatalf("Originate from %s: %v", tc.phone, err)
		}
		e := r.wait(t, "ring of "+tc.dev, 10*time.Second, rang(tc.dev))
		if got := e.m.Get("From"); got != tc.num {
			t.Errorf("a call from PJSIP/%s: callee saw number %q, want %q", tc.phone, got, tc.num)
		}
		if got := e.m.Get("FromName"); got != tc.name {
			t.Errorf("a call from PJSIP/%s: callee saw name %q, want %q", tc.phone, got, tc.name)
		}
	}
}

// Queue calls honour DND: the member is busy, its devices do not ring.
func testQueueMemberDND(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9561", map[string]string{"DND": "YES", "dialstring": devs("956101")})
	call(t, c, "lab-queuecall", "9561", caller, nil)
	res := r.wait(t, "LabCallResult for the queue call", 10*time.Second, callResult("q9561"))
	if got := res.m.Get("DialStatus"); got != "BUSY" {
		t.Errorf("DIALSTATUS = %q, want BUSY", got)
	}
	r.expectNone(t, "ring of a DND member's device", rang("956101"))
}

// Queue calls ring the ring list and location but never forward (CF, CFU are ignored), and a
// simultaneous ring has no ring time of its own (the queue's timeout governs).
func testQueueMemberRings(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9562", map[string]string{"dialstring": devs("956201", "956202"), "location": dev("956209"),
		"ringtime": "2", "CF": "8956299", "CFU": "8956298"})
	call(t, c, "lab-queuecall", "9562", caller, nil)
	r.wait(t, "queue Dial without ring time", 10*time.Second, newexten("Dial", devs("956201", "956202", "956209")))
	for _, d := range []string{"956201", "956202", "956209"} {
		r.wait(t, "ring of "+d, 10*time.Second, rang(d))
	}
	time.Sleep(3 * time.Second) // longer than the ring time
	r.expectNone(t, "queue call forwarded (CF)", rang("8956299"))
	r.expectNone(t, "queue call forwarded (CFU)", rang("8956298"))
	r.expectNone(t, "queue call ended by the ring time", callResult("q9562"))
	if got := r.all(newexten("Dial", devs("956201", "956202", "956209"))); got[0].m.Get("AppData") != devs("956201", "956202", "956209") {
		t.Errorf("queue Dial %q has a timeout", got[0].m.Get("AppData"))
	}
}

// The pattern hint _*76X. in presenced-hints follows Custom:DND<ext>, directly and through an
// include, and pushes changes (ExtensionStatus) once instantiated.
func testDNDPatternHint(t *testing.T, c *ami.Client, r *recorder) {
	ctx := testCtx(t)
	for _, tc := range []struct{ ext, context string }{{"9571", "presenced-hints"}, {"9572", "lab-hints"}} {
		lamp := "Custom:DND" + tc.ext
		exten := "*76" + tc.ext
		if err := c.Setvar(ctx, "", "DEVICE_STATE("+lamp+")", "BUSY"); err != nil {
			t.Fatal(err)
		}
		st, err := c.ExtensionState(ctx, exten, tc.context)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hint != lamp || st.Status != 2 {
			t.Errorf("%s@%s with %s BUSY: hint %q status %d (%s), want %q status 2 (Busy)",
				exten, tc.context, lamp, st.Hint, st.Status, st.StatusText, lamp)
		}
		if err := c.Setvar(ctx, "", "DEVICE_STATE("+lamp+")", "NOT_INUSE"); err != nil {
			t.Fatal(err)
		}
		ev := r.wait(t, "ExtensionStatus of "+exten, 5*time.Second, func(m *ami.Message) bool {
			return m.Event() == "ExtensionStatus" && m.Get("Exten") == exten && m.Get("Status") == "0"
		})
		if got := ev.m.Get("Hint"); got != lamp {
			t.Errorf("ExtensionStatus hint %q, want %q", got, lamp)
		}
		if st, err := c.ExtensionState(ctx, exten, tc.context); err != nil || st.Status != 0 {
			t.Errorf("%s@%s with %s NOT_INUSE: status %d (%s), %v; want 0 (Idle)", exten, tc.context, lamp, st.Status, st.StatusText, err)
		}
	}
	// Something that is not *76<digits> has no hint.
	if st, err := c.ExtensionState(ctx, "*76", "presenced-hints"); err != nil || st.Status != -1 {
		t.Errorf("*76@presenced-hints: status %d, %v; want -1 (no hint)", st.Status, err)
	}
}

// Feature codes (*55<n>, *76, *76<ext>): with PRESENCED_APP empty the caller hears beeperr
// without entering Stasis; with an application that is not connected Stasis fails and the
// caller hears beeperr too.
func testFeatureCodeFallback(t *testing.T, c *ami.Client, r *recorder) {
	ctx := testCtx(t)
	t.Cleanup(func() { _ = c.Setvar(context.Background(), "", "PRESENCED_APP", "") })
	if err := c.Setvar(ctx, "", "PRESENCED_APP", ""); err != nil {
		t.Fatal(err)
	}
	onChannel := func(prefix string, match func(*ami.Message) bool) func(*ami.Message) bool {
		return func(m *ami.Message) bool { return strings.HasPrefix(m.Get("Channel"), prefix) && match(m) }
	}
	call(t, c, "presenced-features", "*559581", `"Alice" <9581>`, nil)
	ch := "Local/*559581@presenced-features-"
	r.wait(t, "Playback(beeperr) with PRESENCED_APP empty", 10*time.Second, onChannel(ch, newexten("Playback", "beeperr")))
	r.expectNone(t, "Stasis with PRESENCED_APP empty", onChannel(ch, newexten("Stasis", "")))
	call(t, c, "presenced-features", "*76", `"Alice" <9581>`, nil)
	r.wait(t, "*76: Playback(beeperr) with PRESENCED_APP empty", 10*time.Second,
		onChannel("Local/*76@presenced-features-", newexten("Playback", "beeperr")))

	if err := c.Setvar(ctx, "", "PRESENCED_APP", "pdnotconnected"); err != nil {
		t.Fatal(err)
	}
	call(t, c, "presenced-features", "*559582", `"Alice" <9581>`, nil)
	ch = "Local/*559582@presenced-features-"
	r.wait(t, "Stasis(pdnotconnected,...)", 10*time.Second, onChannel(ch, newexten("Stasis", "pdnotconnected,activate,9582,,9581")))
	r.wait(t, "Playback(beeperr) after Stasis failed", 10*time.Second, onChannel(ch, newexten("Playback", "beeperr")))

	// *76 toggles the caller's DND, *76<ext> that user's, through the same application.
	// (The channel of each call by its Stasis event: the first *76 above also heard beeperr.)
	call(t, c, "presenced-features", "*76", `"Alice" <9581>`, nil)
	st := r.wait(t, "Stasis(pdnotconnected,dnd,...)", 10*time.Second,
		onChannel("Local/*76@presenced-features-", newexten("Stasis", "pdnotconnected,dnd,,,9581")))
	r.wait(t, "*76: Playback(beeperr) after Stasis failed", 10*time.Second, onChannel(st.m.Get("Channel"), newexten("Playback", "beeperr")))
	call(t, c, "presenced-features", "*769582", `"Alice" <9581>`, nil)
	st = r.wait(t, "Stasis(pdnotconnected,dnd,9582,...)", 10*time.Second,
		onChannel("Local/*769582@presenced-features-", newexten("Stasis", "pdnotconnected,dnd,9582,,9581")))
	r.wait(t, "*769582: Playback(beeperr) after Stasis failed", 10*time.Second, onChannel(st.m.Get("Channel"), newexten("Playback", "beeperr")))
}

// TestZLogClean runs after TestCalls: the calls made Asterisk log no ERROR and no WARNING other
// than the expected one of the feature-code test (a Stasis app that is not connected).
func TestZLogClean(t *testing.T) {
	ctx := testCtx(t)
	log, err := env.AsteriskLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "WARNING") && !strings.Contains(line, "ERROR") {
			continue
		}
		if strings.Contains(line, "WARNING") && strings.Contains(line, "pdnotconnected") {
			continue
		}
		t.Errorf("Asterisk logged: %s", line)
	}
}

// Sequential in steps (what presenced writes for a follow-me: one step per family, "|" after
// each): the devices of a step ring together for the step's ring time, then the next step's.
func testSequentialSteps(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9534", map[string]string{"dialstring": devs("953401", "953402") + "|" + dev("953403") + "|",
		"ringmode": "sequential", "ringtime": "2|3"})
	sink(t, c, "953403", "answer")
	call(t, c, "lab-call", "9534", caller, nil)
	a := r.wait(t, "ring of 953401", 10*time.Second, rang("953401"))
	b := r.wait(t, "ring of 953402", 10*time.Second, rang("953402"))
	if d := b.at.Sub(a.at).Abs(); d > time.Second {
		t.Errorf("the first step's devices rang %v apart, want together", d)
	}
	third := r.wait(t, "ring of 953403", 10*time.Second, rang("953403"))
	if d := third.at.Sub(a.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("the second step rang %v after the first, want its ring time (2 s) later", d)
	}
	r.wait(t, "Dial of the first step, 2 s", time.Second, newexten("Dial", devs("953401", "953402")+",2"))
	r.wait(t, "Dial of the second step, 3 s", time.Second, newexten("Dial", dev("953403")+",3"))
	r.wait(t, "answer by 953403", 10*time.Second, userEvent("LabAnswered", "Device", "953403"))
}

// A ring list in steps without ringmode sequential rings every device at once.
func testStepsSimultaneous(t *testing.T, c *ami.Client, r *recorder) {
	profile(t, c, "9535", map[string]string{"dialstring": dev("953501") + "|" + dev("953502") + "|"})
	sink(t, c, "953502", "answer")
	call(t, c, "lab-call", "9535", caller, nil)
	r.wait(t, "one Dial of both devices, 20 s", 10*time.Second, newexten("Dial", devs("953501", "953502")+",20"))
	r.wait(t, "answer by 953502", 10*time.Second, userEvent("LabAnswered", "Device", "953502"))
}

// labUser is a user whose devices are lab sinks: <ext>01 desk, <ext>02 softphone, <ext>03
// mobile.
func labUser(ext string) presence.User {
	return presence.User{ID: presence.UserID("u" + ext), Extension: ext, Devices: []presence.Device{
		{Dial: dev(ext + "01"), Family: presence.FamilyDesk},
		{Dial: dev(ext + "02"), Family: presence.FamilySoftphone},
		{Dial: dev(ext + "03"), Family: presence.FamilyMobile},
	}}
}

// apply writes what presenced compiles for u in profile p (its on_enter, from no state) into
// astdb, and returns the desired state.
func apply(t *testing.T, c *ami.Client, u *presence.User, p *presence.Profile) *presence.Target {
	t.Helper()
	if _, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{*u}, Profiles: []presence.Profile{*p}}); err != nil {
		t.Fatal(err)
	}
	in := presence.FoldSteps(u, []presence.Step{{Profile: p.ID}}, []*presence.Profile{p}, nil)
	want := presence.Compile(u, in, presence.Active{}, nil, presence.DefaultNaming())
	for k, v := range want.AstDB {
		if v != nil {
			family, key, _ := strings.Cut(k, "/")
			dbPut(t, c, family, key, *v)
		}
	}
	return &want.Target
}

// rangDevices waits until no device of ext has rung for quiet and returns the lab devices of
// ext that rang, in the order they first rang.
func rangDevices(r *recorder, ext string, quiet time.Duration) []string {
	ofExt := func(m *ami.Message) bool {
		return m.Event() == "UserEvent" && m.Get("UserEvent") == "LabRang" && strings.HasPrefix(m.Get("Device"), ext)
	}
	for {
		before := len(r.all(ofExt))
		time.Sleep(quiet)
		if len(r.all(ofExt)) == before {
			break
		}
	}
	var out []string
	for _, e := range r.all(ofExt) {
		if d := dev(e.m.Get("Device")); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// A profile that says nothing of ringing: the user's desk phones ring (desk and softphone, not
// the mobile), as presence.Rings (the will-not-ring warning) says.
func testDefaultRingList(t *testing.T, c *ami.Client, r *recorder) {
	u := labUser("9536")
	want := apply(t, c, &u, &presence.Profile{ID: "plain", Name: "Plain"})
	rings, none := presence.Rings(want, presence.DefaultNaming(), &u)
	if none != "" || !slices.Equal(rings, []string{dev("953601"), dev("953602")}) {
		t.Fatalf("presence.Rings = %v %q, want the desk and the softphone", rings, none)
	}
	sink(t, c, "953602", "answer")
	call(t, c, "lab-call", "9536", caller, nil)
	r.wait(t, "answer by the softphone", 10*time.Second, userEvent("LabAnswered", "Device", "953602"))
	got := rangDevices(r, "9536", time.Second)
	slices.Sort(got)
	if !slices.Equal(got, rings) {
		t.Errorf("the call rang %v, presence.Rings says %v", got, rings)
	}
}

// followme sequential with families [mobile, desk] and a ring time each: the mobile first for
// its 2 s, then the desk phone for its 3 s; the softphone not at all, as presence.Rings says.
func testFollowMeFamilyOrder(t *testing.T, c *ami.Client, r *recorder) {
	u := labUser("9537")
	want := apply(t, c, &u, &presence.Profile{ID: "out", Name: "Out", OnEnter: []presence.Action{{Kind: presence.ActionFollowMe,
		Families: []presence.Family{presence.FamilyMobile, presence.FamilyDesk}, Order: presence.RingSequential, RingTimes: []int{2, 3}}}})
	rings, _ := presence.Rings(want, presence.DefaultNaming(), &u)
	if !slices.Equal(rings, []string{dev("953703"), dev("953701")}) {
		t.Fatalf("presence.Rings = %v, want the mobile, then the desk", rings)
	}
	call(t, c, "lab-call", "9537", caller, nil)
	mobile := r.wait(t, "ring of the mobile", 10*time.Second, rang("953703"))
	desk := r.wait(t, "ring of the desk", 10*time.Second, rang("953701"))
	if d := desk.at.Sub(mobile.at); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("the desk rang %v after the mobile, want the mobile's ring time (2 s) later", d)
	}
	r.wait(t, "the desk's Dial, 3 s", time.Second, newexten("Dial", dev("953701")+",3"))
	res := r.wait(t, "LabCallResult for 9537", 15*time.Second, callResult("9537"))
	if d := res.at.Sub(desk.at); d < 2500*time.Millisecond {
		t.Errorf("the call ended %v after the desk began ringing, want its 3 s", d)
	}
	if got := rangDevices(r, "9537", 500*time.Millisecond); !slices.Equal(got, rings) {
		t.Errorf("the call rang %v, presence.Rings says %v", got, rings)
	}
}
