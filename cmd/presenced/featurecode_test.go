package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/presence"
)

// fcLab drives feature-code calls against a daemon running in-process.
type fcLab struct {
	t        *testing.T
	d        *daemonUnderTest
	cfg      Config
	ami      *ami.Client
	rdb      *redis.Client
	outcomes chan featurecode.Outcome
	seen     map[string]bool // uniqueids of the Stasis channels found so far
	level    slog.Level      // the daemon's log level
}

// startFeatureCodeDaemon runs presenced with yaml (the users of
// testdata/config/end-to-end.yaml) against the lab and waits until the dialplan sends feature
// codes to it.
func startFeatureCodeDaemon(t *testing.T, yaml string) *fcLab {
	t.Helper()
	return startFeatureCodeDaemonAt(t, yaml, slog.LevelDebug)
}

// startFeatureCodeDaemonAt is startFeatureCodeDaemon logging at level.
func startFeatureCodeDaemonAt(t *testing.T, yaml string, level slog.Level) *fcLab {
	t.Helper()
	return startFeatureCodeDaemonWith(t, profileConfig(t, yaml), level)
}

// startFeatureCodeDaemonWith is startFeatureCodeDaemon with a configuration of profileConfig's.
func startFeatureCodeDaemonWith(t *testing.T, cfg Config, level slog.Level) *fcLab {
	t.Helper()
	f := &fcLab{t: t, cfg: cfg, outcomes: make(chan featurecode.Outcome, 1024), seen: map[string]bool{}, level: level}
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
	f.d = startDaemonAt(t, f.cfg, f.level)
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

// dial calls exten from the desk phone of extension phone (1001, 1002 or 1003): the lab
// Asterisk calls itself over SIP as that endpoint (testdata/asterisk/conf/pjsip.conf,
// lab-phone-<ext>), so the call runs in the phones' context (internal, which includes
// presenced-features) on a channel PJSIP/<phone>-<n> with the endpoint's caller ID, as a call
// from that phone would. It returns the uniqueid and the name of that channel once it is in the
// Stasis application.
func (f *fcLab) dial(exten, phone string) (id, name string) {
	f.t.Helper()
	f.originate(ami.OriginateSpec{Channel: "PJSIP/" + exten + "@lab-phone-" + phone, Application: "Wait", Data: "30",
		Async: true, ChannelID: uniqID("fc-")})
	return f.inStasis(func(c ami.ChannelInfo) bool {
		return strings.HasPrefix(c.Channel, "PJSIP/"+phone+"-") && c.Exten == exten
	})
}

// dialLocal calls exten in presenced-features through a Local channel with the given caller ID
// (docs/asterisk.md §8): a call that comes from no device, like a forward.
func (f *fcLab) dialLocal(exten, callerID string) (id, name string) {
	f.t.Helper()
	base := uniqID("fc-")
	f.originate(ami.OriginateSpec{Channel: "Local/" + exten + "@presenced-features", Application: "Wait", Data: "30",
		CallerID: callerID, Async: true, ChannelID: base + "-1", OtherChannelID: base + "-2"})
	return f.inStasis(func(c ami.ChannelInfo) bool { return c.Uniqueid == base+"-2" })
}

func (f *fcLab) originate(spec ami.OriginateSpec) {
	f.t.Helper()
	if err := f.ami.Originate(f.ctx(), spec); err != nil {
		f.t.Fatalf("originate %s: %v", spec.Channel, err)
	}
}

// inStasis waits for a channel not seen before that matches and is in the Stasis application,
// and returns its uniqueid and name.
func (f *fcLab) inStasis(match func(ami.ChannelInfo) bool) (id, name string) {
	t := f.t
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		chans, err := f.ami.CoreShowChannels(f.ctx())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chans {
			if c.Application == "Stasis" && !f.seen[c.Uniqueid] && match(c) {
				f.seen[c.Uniqueid] = true
				return c.Uniqueid, c.Channel
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the call never reached the Stasis application")
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

// TestFeatureCodes drives *55 calls from the users' phones through the whole daemon:
// activation, toggling back, the menu, errors, timeouts, hangups, PINs and their lockout
// (across a restart), lamps and hints.
func TestFeatureCodes(t *testing.T) {
	f := startFeatureCodeDaemon(t, fixture(t, "config/feature-codes.yaml", carolPIN()))
	f.d.switchTo(t, "alice", "available", "")
	f.d.switchTo(t, "carol", "available", "")
	p := &pbx{t: t, c: f.ami}
	const alice, carol = "1001", "1003" // their desk phones

	t.Run("activate", func(t *testing.T) {
		id, _ := f.dial("*553", alice)
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultSwitched, "alice", "1001", "lunch")
		if o.User != "alice" || o.Latency <= 0 || o.PIN {
			t.Errorf("outcome %+v", o)
		}
		// The phone's context (pjsip.conf context=internal) includes presenced-features: the
		// StasisStart reports the including context.
		if o.Caller != "alice" || o.Identity != featurecode.IdentityDevice || o.Context != "internal" || o.Actor != "alice" {
			t.Errorf("identification: caller %q identity %s context %q actor %q", o.Caller, o.Identity, o.Context, o.Actor)
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
	t.Run("phone of no user", func(t *testing.T) {
		id, _ := f.dial("*553", "1002") // Bob's phone; Bob is no user here
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultUnknownUser, "", "", "")
	})
	t.Run("caller ID alone proves nothing", func(t *testing.T) {
		id, _ := f.dialLocal("*553", `"Mallory" <1999>`)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultUnknownUser, "", "", "")
		id, _ = f.dialLocal("*553", `"Alice" <1001>`) // Alice has no PIN
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultDenied, "alice", "1001", "available")
		if o.Caller != "" || o.Identity != featurecode.IdentityNone || !o.PIN {
			t.Errorf("Local channel with Alice's caller ID: caller %q identity %s pin %v", o.Caller, o.Identity, o.PIN)
		}
		id, _ = f.dialLocal("*553", `"Carol" <1003>`) // Carol's PIN is asked; nobody keys it
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultTimeout, "carol", "1003", "available")
	})
	t.Run("trunk call with a user's caller ID asks the PIN", func(t *testing.T) {
		// The lab trunk's context lab-trusted is not trusted by this daemon.
		f.originate(ami.OriginateSpec{Channel: "PJSIP/*553@lab-trunk-out", Application: "Wait", Data: "30",
			CallerID: `"Carol" <1003>`, Async: true, ChannelID: uniqID("fc-")})
		id, name := f.inStasis(func(c ami.ChannelInfo) bool { return strings.HasPrefix(c.Channel, "PJSIP/lab-trunk-") })
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultTimeout, "carol", "1003", "available")
		if !o.PIN || o.Identity != featurecode.IdentityNone || o.Context != "lab-trusted" || o.Channel != name {
			t.Errorf("trunk call: pin %v identity %s context %q channel %q", o.PIN, o.Identity, o.Context, o.Channel)
		}
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

// carolPIN gives Carol the PIN 4321 in a fixture's users (testdata/users/carol.yaml).
func carolPIN() userKeys { return userKeys{"carol": {`pin: "4321"`}} }

// withBob adds Bob with his mobile alone (testdata/users/bob-mobile.yaml) to yaml's users,
// before Carol: his desk phone PJSIP/1002 (lab-phone-1002) is a phone of no user's, like a
// shared phone.
func withBob(t testing.TB, yaml string) string {
	t.Helper()
	carol := "  - id: carol\n"
	if !strings.Contains(yaml, carol) {
		t.Fatal("no user carol to add bob before")
	}
	return strings.Replace(yaml, carol, fixture(t, "users/bob-mobile.yaml", nil)+carol, 1)
}

// TestFeatureCodeForwards replays issue 10's attack through the shipped dialplan: a forward
// to a feature code (set on the PBX directly) plus a call from another user's phone switched
// that caller with no PIN, because the forward's Local channel carries the caller's ID. Now a
// call that reaches *55<n> through a forward or a transfer must give the PIN of the user it
// would switch, even when the admin trusts the contexts involved; the user's own phone still
// switches without one. Judged on the PBX through the test's own AMI login.
func TestFeatureCodeForwards(t *testing.T) {
	forgetUsers(t, "bob")
	f := startFeatureCodeDaemon(t, withBob(t, fixture(t, "config/feature-codes.yaml", carolPIN())))
	for _, u := range []string{"alice", "bob", "carol"} {
		f.d.switchTo(t, u, "available", "")
	}
	p := &pbx{t: t, c: f.ami}
	const alicePhone, bobPhone, carolPhone = "1001", "1002", "1003"
	const carolMember = "Local/1003@presenced-queue-member/n"

	// unchanged checks that Carol is still available on the PBX: no DND, logged in and not
	// paused in support, her profile key and the REST API say available.
	unchanged := func(t *testing.T) {
		t.Helper()
		if v, ok := p.db("DND", "1003"); ok {
			t.Errorf("DND/1003 = %q, want no key", v)
		}
		if m := p.member("support", carolMember); m == nil || m.Paused {
			t.Errorf("support member %s = %+v, want logged in, not paused", carolMember, m)
		}
		if v, _ := p.db("PROFILE", "1003/active"); v != "available" {
			t.Errorf("PROFILE/1003/active = %q, want available", v)
		}
		if got := f.activeProfile("carol"); got != "available" {
			t.Errorf("carol's profile %q, want available", got)
		}
	}
	dbPut := func(t *testing.T, family, key, value string) {
		t.Helper()
		if err := f.ami.DBPut(f.ctx(), family, key, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.ami.DBDel(context.Background(), family, key) })
	}
	// forwardedCall: the user of phone calls ext, whose line forwards (CF) to code; it returns
	// the forward's Local channel in the Stasis application.
	forwardedCall := func(t *testing.T, phone, ext, code string) (id, name string) {
		t.Helper()
		dbPut(t, "CF", ext, code)
		f.originate(ami.OriginateSpec{Channel: "PJSIP/" + ext + "@lab-phone-" + phone, Application: "Wait", Data: "30",
			Async: true, ChannelID: uniqID("fc-")})
		return f.inStasis(func(c ami.ChannelInfo) bool { return strings.HasPrefix(c.Channel, "Local/"+code+"@lab-route-") })
	}
	notSwitched := func(t *testing.T, o featurecode.Outcome, user presence.UserID) {
		t.Helper()
		if o.Result != featurecode.ResultTimeout && o.Result != featurecode.ResultBadPIN && o.Result != featurecode.ResultDenied {
			t.Errorf("call ended %s (%v), want timeout, bad_pin or denied", o.Result, o.Err)
		}
		if o.User != user || o.Caller != "" || o.Identity != featurecode.IdentityNone || !o.PIN {
			t.Errorf("outcome user %q caller %q identity %s pin %v; want user %s, no caller, a PIN asked", o.User, o.Caller, o.Identity, o.PIN, user)
		}
	}

	for _, code := range []string{"*554", "*553"} { // meeting (DND on), lunch (queues paused)
		t.Run("forward to "+code+" asks the caller's PIN", func(t *testing.T) {
			// Alice's line forwards to the feature code; Carol calls Alice from her phone.
			id, name := forwardedCall(t, carolPhone, alicePhone, code)
			o := f.outcome(id, 20*time.Second)
			notSwitched(t, o, "carol")
			if o.Result != featurecode.ResultTimeout {
				t.Errorf("result %s, want timeout (the PIN prompt, nobody keys)", o.Result)
			}
			// The forward runs in PRESENCED_FORWARD_CONTEXT (the lab's lab-route).
			if o.Context != "lab-route" || !strings.HasPrefix(o.Channel, "Local/"+code+"@lab-route-") || o.Channel != name {
				t.Errorf("forward: context %q channel %q", o.Context, o.Channel)
			}
			unchanged(t)
		})
	}
	t.Run("the PIN through a forward switches, journaled by the channel", func(t *testing.T) {
		id, name := forwardedCall(t, carolPhone, alicePhone, "*553")
		f.keys(name, "4321#")
		o := f.outcome(id, 20*time.Second)
		f.expect(o, featurecode.ResultSwitched, "carol", "1003", "lunch")
		if m := p.member("support", carolMember); m == nil || !m.Paused {
			t.Errorf("lunch: support member %+v, want paused", m)
		}
		if o.Actor != "pin:Local/*553@lab-route" || o.Caller != "" {
			t.Errorf("actor %q caller %q", o.Actor, o.Caller)
		}
		code, j := f.d.call(t, http.MethodGet, "/api/v1/users/carol/journal?limit=1", string(f.cfg.API.AdminToken), nil)
		entries, _ := j["entries"].([]any)
		if code != http.StatusOK || len(entries) != 1 {
			t.Fatalf("journal: %d %v", code, j)
		}
		if e := entries[0].(map[string]any); e["actor"] != "pin:Local/*553@lab-route" || e["to"] != "lunch" {
			t.Errorf("journal entry %v, want actor pin:Local/*553@lab-route", e)
		}
		f.d.switchTo(t, "carol", "available", "")
	})
	t.Run("forward for a user without PIN is denied", func(t *testing.T) {
		// Carol's line forwards to *554; Alice (no PIN) calls Carol.
		id, _ := forwardedCall(t, alicePhone, carolPhone, "*554")
		o := f.outcome(id, 20*time.Second)
		notSwitched(t, o, "alice")
		if o.Result != featurecode.ResultDenied {
			t.Errorf("result %s, want denied", o.Result)
		}
		if v, ok := p.db("DND", "1001"); ok {
			t.Errorf("DND/1001 = %q, want no key", v)
		}
		if got := f.activeProfile("alice"); got != "available" {
			t.Errorf("alice's profile %q", got)
		}
	})
	t.Run("a call transferred to the code asks the PIN, even from the user's phone", func(t *testing.T) {
		// Carol calls Alice, whose line forwards to an answering device; that side blind
		// transfers Carol's call to *554: Carol's own phone channel enters the feature code.
		sink := fmt.Sprintf("8%07d", time.Now().UnixNano()%10_000_000) // a device in lab-sink
		dbPut(t, "LABSINK", sink, "answer")
		dbPut(t, "CF", alicePhone, sink)
		f.originate(ami.OriginateSpec{Channel: "PJSIP/" + alicePhone + "@lab-phone-" + carolPhone, Application: "Wait", Data: "30",
			Async: true, ChannelID: uniqID("fc-")})
		transferer := f.bridged("Local/" + sink + "@lab-route-")
		if _, err := f.ami.Do(f.ctx(), blindTransfer{channel: transferer, context: "internal", exten: "*554"}); err != nil {
			t.Fatalf("BlindTransfer %s: %v", transferer, err)
		}
		id, name := f.inStasis(func(c ami.ChannelInfo) bool {
			return strings.HasPrefix(c.Channel, "PJSIP/"+carolPhone+"-") && c.Exten == "*554"
		})
		o := f.outcome(id, 20*time.Second)
		notSwitched(t, o, "carol")
		if o.Result != featurecode.ResultTimeout || o.Channel != name || o.Context != "internal" {
			t.Errorf("transferred call: result %s channel %q context %q", o.Result, o.Channel, o.Context)
		}
		unchanged(t)
	})
	t.Run("the own phone switches without PIN", func(t *testing.T) {
		id, _ := f.dial("*554", carolPhone)
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultSwitched, "carol", "1003", "meeting")
		if o.PIN || o.Identity != featurecode.IdentityDevice || o.Actor != "carol" {
			t.Errorf("outcome %+v", o)
		}
		if v, _ := p.db("DND", "1003"); v != "YES" {
			t.Errorf("DND/1003 = %q after meeting", v)
		}
		id, _ = f.dial("*554", carolPhone)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "carol", "1003", "available")
		unchanged(t)
	})
	t.Run("a phone of no user's needs the PIN", func(t *testing.T) {
		id, _ := f.dial("*553", bobPhone) // Bob has no PIN
		o := f.outcome(id, 15*time.Second)
		notSwitched(t, o, "bob")
		if o.Result != featurecode.ResultDenied || o.Context != "internal" {
			t.Errorf("result %s context %q, want denied in internal", o.Result, o.Context)
		}
	})

	// The admin trusts the phones' context and even the forward context: a phone of no user's
	// is identified by its caller ID, a forward's Local channel still is not.
	f.d.stop(t)
	f.cfg.FeatureCodes.TrustedContexts = []string{"internal", "lab-route"}
	f.start()
	t.Run("trusted context identifies by caller ID", func(t *testing.T) {
		id, _ := f.dial("*553", bobPhone)
		o := f.outcome(id, 15*time.Second)
		f.expect(o, featurecode.ResultSwitched, "bob", "1002", "lunch")
		if o.PIN || o.Identity != featurecode.IdentityTrustedContext || o.Caller != "bob" || o.Actor != "bob" {
			t.Errorf("outcome %+v", o)
		}
		id, _ = f.dial("*553", bobPhone)
		f.expect(f.outcome(id, 15*time.Second), featurecode.ResultSwitched, "bob", "1002", "available")
	})
	t.Run("a forward in a trusted context still asks the PIN", func(t *testing.T) {
		id, _ := forwardedCall(t, carolPhone, alicePhone, "*554")
		o := f.outcome(id, 20*time.Second)
		notSwitched(t, o, "carol")
		if o.Result != featurecode.ResultTimeout || o.Context != "lab-route" {
			t.Errorf("result %s context %q", o.Result, o.Context)
		}
		unchanged(t)
	})
}

// bridged waits until a channel whose name starts with prefix is bridged and returns its name.
func (f *fcLab) bridged(prefix string) string {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		chans, err := f.ami.CoreShowChannels(f.ctx())
		if err != nil {
			f.t.Fatal(err)
		}
		for _, c := range chans {
			if strings.HasPrefix(c.Channel, prefix) && strings.HasSuffix(c.Channel, ";1") && c.BridgeID != "" {
				return c.Channel
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no channel %s... was bridged", prefix)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blindTransfer is AMI's BlindTransfer, which only this test sends: it transfers the call of
// channel to exten in context.
type blindTransfer struct{ channel, context, exten string }

func (blindTransfer) ActionName() string { return "BlindTransfer" }

func (b blindTransfer) ActionHeaders() ([]ami.Header, error) {
	return []ami.Header{{Key: "Channel", Value: b.channel}, {Key: "Context", Value: b.context}, {Key: "Exten", Value: b.exten}}, nil
}
