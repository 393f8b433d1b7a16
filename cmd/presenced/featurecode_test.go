package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/presence"
)

// fcYAML is profilesYAML with a PIN for Carol and short digit timeouts.
var fcYAML = profilesYAML + `
feature_codes:
  first_digit_timeout: 1500ms
  digit_timeout: 1s
  pin_attempts: 5
  lockout: 10m
`

func withPIN(yaml string) string {
	carol := "    token: " + testToken("carol") + "\n"
	return strings.Replace(yaml, carol, carol+"    pin: \"4321\"\n", 1)
}

// fcLab drives feature-code calls against a daemon running in-process.
type fcLab struct {
	t        *testing.T
	d        *daemonUnderTest
	cfg      Config
	ami      *ami.Client
	rdb      *redis.Client
	outcomes chan featurecode.Outcome
}

// startFeatureCodeDaemon runs presenced with yaml (profilesYAML's users) against the lab and
// waits until the dialplan sends feature codes to it.
func startFeatureCodeDaemon(t *testing.T, yaml string) *fcLab {
	t.Helper()
	cfg := profileConfig(t, yaml)
	f := &fcLab{t: t, cfg: cfg, outcomes: make(chan featurecode.Outcome, 1024)}
	f.cfg.observeFeatureCode = func(o featurecode.Outcome) { f.outcomes <- o }
	f.ami = newProbe(t).c
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	f.rdb = redis.NewClient(opt)
	t.Cleanup(func() { f.rdb.Close() })
	f.start()
	return f
}

// start (re)starts the daemon.
func (f *fcLab) start() {
	t := f.t
	t.Helper()
	f.d = startDaemon(t, f.cfg)
	f.d.waitReady(t, 15*time.Second)
	app := f.cfg.Asterisk.ARI.App + "-" + f.cfg.InstanceID
	deadline := time.Now().Add(10 * time.Second)
	for (&probe{c: f.ami}).global(t, appVariable) != app {
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %s", appVariable, app)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fcLab) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func uniqID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// dial calls exten in presenced-features as callerID (NOTES.md §11 A) and returns the
// uniqueid and the name of the channel in the Stasis application (the ;2 half).
func (f *fcLab) dial(exten, callerID string) (id, name string) {
	t := f.t
	t.Helper()
	base := uniqID("fc-")
	err := f.ami.Originate(f.ctx(), ami.OriginateSpec{
		Channel:        "Local/" + exten + "@presenced-features",
		Application:    "Wait",
		Data:           "30",
		CallerID:       callerID,
		Async:          true,
		ChannelID:      base + "-1",
		OtherChannelID: base + "-2",
	})
	if err != nil {
		t.Fatalf("originate %s: %v", exten, err)
	}
	id = base + "-2"
	deadline := time.Now().Add(10 * time.Second)
	for {
		chans, err := f.ami.CoreShowChannels(f.ctx())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chans {
			if c.Uniqueid == id && c.Application == "Stasis" {
				return id, c.Channel
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("call to %s never reached the Stasis application", exten)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keys presses digits on the channel, as the caller would.
func (f *fcLab) keys(name, digits string) {
	f.t.Helper()
	for _, d := range digits {
		if err := f.ami.PlayDTMF(f.ctx(), name, string(d), 80*time.Millisecond, true); err != nil {
			f.t.Fatalf("PlayDTMF %c on %s: %v", d, name, err)
		}
		time.Sleep(100 * time.Millisecond) // a digit queued while the last one plays is lost
	}
}

// outcome waits for the end of the call id.
func (f *fcLab) outcome(id string, within time.Duration) featurecode.Outcome {
	f.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case o := <-f.outcomes:
			if o.ChannelID == id {
				return o
			}
		case <-timer.C:
			f.t.Fatalf("call %s did not end within %v", id, within)
		}
	}
}

// activeProfile reads the user's profile from the REST API (Redis).
func (f *fcLab) activeProfile(user string) string {
	f.t.Helper()
	code, st := f.d.call(f.t, http.MethodGet, "/api/v1/users/"+user, testToken("admin"), nil)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %v", user, code, st)
	}
	p, _ := st["profile"].(string)
	return p
}

// expect checks one call's outcome and the user's profile in Redis and on the PBX.
func (f *fcLab) expect(o featurecode.Outcome, result featurecode.Result, user, ext, profile string) {
	f.t.Helper()
	if o.Result != result {
		f.t.Fatalf("call ended %s (%v), want %s", o.Result, o.Err, result)
	}
	if profile == "" {
		return
	}
	if got := f.activeProfile(user); got != profile {
		f.t.Fatalf("%s's profile in Redis %q, want %q", user, got, profile)
	}
	p := &pbx{t: f.t, c: f.ami}
	if v, _ := p.db("PROFILE", ext+"/active"); v != profile {
		f.t.Fatalf("PROFILE/%s/active = %q, want %q", ext, v, profile)
	}
}

// TestFeatureCodes drives *55 calls from the lab through the whole daemon: activation,
// toggling back, the menu, errors, timeouts, hangups, PINs and their lockout (across a
// restart), lamps and hints.
func TestFeatureCodes(t *testing.T) {
	f := startFeatureCodeDaemon(t, withPIN(fcYAML))
	f.d.switchTo(t, "alice", "available", "")
	f.d.switchTo(t, "carol", "available", "")
	p := &pbx{t: t, c: f.ami}
	const alice, carol = `"Alice" <1001>`, `"Carol" <1003>`

	t.Run("activate", func(t *testing.T) {
		id, _ := f.dial("*553", alice)
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultSwitched, "alice", "1001", "lunch")
		if o.User != "alice" || o.Latency <= 0 {
			t.Errorf("outcome %+v", o)
		}
		if m := p.member("support", "Local/1001@presenced-queue-member/n"); m == nil || !m.Paused || m.PausedReason != "Lunch" {
			t.Errorf("lunch: support member %+v", m)
		}
		if s := p.getvar("DEVICE_STATE(Custom:PROFILE1001-3)"); s != "BUSY" {
			t.Errorf("lunch lamp %q", s)
		}
		if s := p.getvar("DEVICE_STATE(Custom:PROFILE1001-1)"); s != "INVALID" {
			t.Errorf("available lamp after leaving it %q, want INVALID (does not mask an offline phone)", s)
		}
	})
	t.Run("toggle back to default", func(t *testing.T) {
		id, _ := f.dial("*553", alice)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "alice", "1001", "available")
	})
	t.Run("unknown number", func(t *testing.T) {
		id, _ := f.dial("*557", alice)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultUnknownProfile, "alice", "1001", "available")
	})
	t.Run("two-digit unknown number", func(t *testing.T) {
		id, _ := f.dial("*5577", alice)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultUnknownProfile, "alice", "1001", "available")
	})
	t.Run("unknown caller", func(t *testing.T) {
		id, _ := f.dial("*553", `"Mallory" <1999>`)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultUnknownUser, "", "", "")
	})
	t.Run("menu", func(t *testing.T) {
		id, name := f.dial("*55", alice)
		f.keys(name, "4#")
		o := f.outcome(id, 20*time.Second)
		f.expect(o, featurecode.ResultSwitched, "alice", "1001", "meeting")
		if v, _ := p.db("DND", "1001"); v != "YES" {
			t.Errorf("DND/1001 = %q after meeting", v)
		}
		es, err := p.c.ExtensionState(p.ctx(), "*761001", "hints")
		if err != nil || es.StatusText != "Busy" {
			t.Errorf("DND lamp *761001@hints = %+v %v, want Busy", es, err)
		}
	})
	t.Run("menu without a number", func(t *testing.T) {
		id, name := f.dial("*55", alice)
		f.keys(name, "#")
		f.expect(f.outcome(id, 20*time.Second), featurecode.ResultNoChange, "alice", "1001", "meeting")
	})
	t.Run("menu timeout", func(t *testing.T) {
		id, _ := f.dial("*55", alice)
		start := time.Now()
		f.expect(f.outcome(id, 20*time.Second), featurecode.ResultTimeout, "alice", "1001", "meeting")
		t.Logf("silent caller timed out after %v (prompt + 1.5 s)", time.Since(start).Round(time.Millisecond))
	})
	t.Run("menu digits then silence", func(t *testing.T) {
		id, name := f.dial("*55", alice)
		f.keys(name, "3") // no '#'
		f.expect(f.outcome(id, 20*time.Second), featurecode.ResultTimeout, "alice", "1001", "meeting")
	})
	t.Run("hangup mid-flow", func(t *testing.T) {
		id, name := f.dial("*55", alice)
		f.keys(name, "3")
		if err := f.ami.Hangup(f.ctx(), name, 16); err != nil {
			t.Fatal(err)
		}
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultHangup, "alice", "1001", "meeting")
	})
	t.Run("own phone needs no PIN", func(t *testing.T) {
		id, _ := f.dial("*553", carol)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "carol", "1003", "lunch")
	})
	t.Run("other phone with PIN", func(t *testing.T) {
		id, name := f.dial("*559*1003", alice)
		f.keys(name, "4321#")
		o := f.outcome(id, 20*time.Second)
		f.expect(o, featurecode.ResultSwitched, "carol", "1003", "gone")
		if o.Latency <= 0 || o.Latency > 2*time.Second {
			t.Errorf("latency from the PIN's # to the confirmation %v", o.Latency)
		}
	})
	t.Run("other phone, user without PIN", func(t *testing.T) {
		id, _ := f.dial("*553*1001", carol)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultDenied, "alice", "1001", "meeting")
	})
	t.Run("wrong PINs lock out across a restart", func(t *testing.T) {
		failures := f.d.metric(t, "presenced_featurecode_pin_failures_total")
		id, name := f.dial("*553*1003", alice)
		for range 3 {
			f.keys(name, "1111#")
			time.Sleep(300 * time.Millisecond)
		}
		f.expect(f.outcome(id, 30*time.Second), featurecode.ResultBadPIN, "carol", "1003", "gone")
		if got := f.d.metric(t, "presenced_featurecode_pin_failures_total") - failures; got != 3 {
			t.Errorf("pin failures counted %v, want 3", got)
		}
		id, name = f.dial("*553*1003", alice)
		f.keys(name, "2222#")
		time.Sleep(300 * time.Millisecond)
		f.keys(name, "3333#")
		f.expect(f.outcome(id, 30*time.Second), featurecode.ResultLockedOut, "carol", "1003", "gone")
		if got := f.d.metric(t, "presenced_featurecode_lockouts_total"); got != 1 {
			t.Errorf("lockouts %v, want 1", got)
		}
		ttl, err := f.rdb.TTL(f.ctx(), featurecode.PINFailureKey("", "carol")).Result()
		if err != nil || ttl <= 9*time.Minute || ttl > 10*time.Minute {
			t.Errorf("lockout TTL %v %v, want about 10m", ttl, err)
		}
		// The right PIN does not help while locked, not even after a restart.
		f.d.stop(t)
		f.start()
		id, name = f.dial("*553*1003", alice)
		f.keys(name, "4321#")
		f.expect(f.outcome(id, 20*time.Second), featurecode.ResultLockedOut, "carol", "1003", "gone")
		// Once the lockout is over (the key expired), the PIN works again.
		f.rdb.Del(f.ctx(), featurecode.PINFailureKey("", "carol"))
		id, name = f.dial("*551*1003", alice)
		f.keys(name, "4321#")
		f.expect(f.outcome(id, 20*time.Second), featurecode.ResultSwitched, "carol", "1003", "available")
	})
	t.Run("feature code and API at once are serialised", func(t *testing.T) {
		f.d.switchTo(t, "alice", "available", "")
		done := make(chan int, 1)
		id, _ := f.dial("*553", alice)
		go func() {
			code, _ := f.d.call(t, http.MethodPut, "/api/v1/users/alice/profile", testToken("admin"), map[string]string{"profile": "meeting"})
			done <- code
		}()
		o := f.outcome(id, 15*time.Second)
		if code := <-done; code != http.StatusOK || o.Result != featurecode.ResultSwitched {
			t.Fatalf("API %d, feature code %s (%v)", code, o.Result, o.Err)
		}
		code, j := f.d.call(t, http.MethodGet, "/api/v1/users/alice/journal?limit=3", testToken("admin"), nil)
		if code != http.StatusOK {
			t.Fatalf("journal: %d", code)
		}
		entries, _ := j["entries"].([]any)
		if len(entries) < 3 {
			t.Fatalf("journal %v", entries)
		}
		for i := range 2 { // newest first; each switch starts where the previous ended
			cur, prev := entries[i].(map[string]any), entries[i+1].(map[string]any)
			if cur["from"] != prev["to"] {
				t.Fatalf("journal entry %d from %v, the one before went to %v", i, cur["from"], prev["to"])
			}
		}
		sources := map[any]bool{}
		for _, e := range entries[:2] {
			sources[e.(map[string]any)["source"]] = true
		}
		if !sources[string(presence.SourceFeatureCode)] || !sources[string(presence.SourceAPI)] {
			t.Errorf("last two switches' sources %v", sources)
		}
		last := entries[0].(map[string]any)["to"].(string)
		f.expect(o, featurecode.ResultSwitched, "alice", "1001", last)
	})
	t.Run("lamps and hints", func(t *testing.T) {
		// Load what presenced -print-hints generates, as an admin would include it.
		var b strings.Builder
		if err := featurecode.WriteHints(&b, f.cfg.catalog, f.cfg.Asterisk.Naming); err != nil {
			t.Fatal(err)
		}
		loadHints(t, b.String())
		// The subtest before leaves alice in whichever profile won its race (lunch, under -race
		// often): start from available, so that *553 activates lunch rather than toggling back.
		f.d.switchTo(t, "alice", "available", "")
		id, _ := f.dial("*553", alice)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "alice", "1001", "lunch")
		for _, c := range []struct{ exten, context, want string }{
			{"*553", "presenced-hints-1001", "Busy"},        // per-user context: lunch is active
			{"*551", "presenced-hints-1001", "Unavailable"}, // INVALID: not active, masks nothing
			{"*553*1001", "presenced-hints", "Busy"},        // shared pattern hints
			{"*554*1001", "presenced-hints", "Unavailable"},
			{"*761001", "presenced-hints-1001", "Unavailable"}, // the include reaches the DND hint (DND off = INVALID)
		} {
			es, err := f.ami.ExtensionState(f.ctx(), c.exten, c.context)
			if err != nil || es.StatusText != c.want {
				t.Errorf("%s@%s = %+v %v, want %s", c.exten, c.context, es, err, c.want)
			}
		}
		id, _ = f.dial("*553", alice) // back to available
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "alice", "1001", "available")
		for _, c := range []struct{ exten, context, want string }{
			{"*553", "presenced-hints-1001", "Unavailable"},
			{"*551", "presenced-hints-1001", "Busy"},
			{"*551*1001", "presenced-hints", "Busy"},
		} {
			es, err := f.ami.ExtensionState(f.ctx(), c.exten, c.context)
			if err != nil || es.StatusText != c.want {
				t.Errorf("%s@%s = %+v %v, want %s", c.exten, c.context, es, err, c.want)
			}
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for _, r := range []featurecode.Result{featurecode.ResultSwitched, featurecode.ResultTimeout, featurecode.ResultHangup,
			featurecode.ResultUnknownProfile, featurecode.ResultLockedOut} {
			_, body := f.d.get(t, "/metrics")
			if !strings.Contains(body, `presenced_featurecode_calls_total{result="`+string(r)+`"}`) {
				t.Errorf("/metrics lacks calls_total{result=%q}", r)
			}
		}
	})
}

// loadHints adds the contexts of a -print-hints output to the running lab Asterisk over the
// CLI (dialplan add), comments stripped.
func loadHints(t *testing.T, conf string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	context := ""
	for _, line := range strings.Split(conf, "\n") {
		line, _, _ = strings.Cut(line, ";")
		line = strings.TrimSpace(line)
		var cmd string
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "["):
			context = strings.Trim(line, "[] ")
			continue
		case strings.HasPrefix(line, "include =>"):
			cmd = "dialplan add include " + strings.TrimSpace(strings.TrimPrefix(line, "include =>")) + " into " + context
		case strings.HasPrefix(line, "exten =>"):
			cmd = "dialplan add extension " + strings.TrimSpace(strings.TrimPrefix(line, "exten =>")) + " into " + context + " replace"
		default:
			t.Fatalf("unexpected line %q in -print-hints output", line)
		}
		if out, err := env.CLI(ctx, cmd); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
}
