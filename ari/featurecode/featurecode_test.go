package featurecode

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    request
		wantErr string
	}{
		// the shipped dialplan: <mode>,<n>[*<ext>],<transferred by>,<caller>
		{args: args("activate,3,,1001"), want: request{mode: modeActivate, number: "3", caller: "1001"}},
		{args: args("activate,12,,"), want: request{mode: modeActivate, number: "12"}},
		{args: args("activate,3*1003,,1001"), want: request{mode: modeActivate, number: "3", ext: "1003", caller: "1001"}},
		{args: args("activate,3,PJSIP/1002-00000007,1001"), want: request{mode: modeActivate, number: "3", transfer: "PJSIP/1002-00000007", caller: "1001"}},
		{args: args("menu,,,1001"), want: request{mode: modeMenu, caller: "1001"}},
		// a caller number with commas is joined back; it cannot shift the transfer argument
		{args: args("activate,3,,10,01"), want: request{mode: modeActivate, number: "3", caller: "10,01"}},
		{args: args("menu,,,,"), want: request{mode: modeMenu, caller: ","}},
		// older dialplans: <mode>,<n>[*<ext>],<caller>
		{args: args("activate,3,1001"), want: request{mode: modeActivate, number: "3", caller: "1001", legacy: true}},
		{args: args("activate,12,"), want: request{mode: modeActivate, number: "12", legacy: true}},
		{args: args("activate,3*1003,1001"), want: request{mode: modeActivate, number: "3", ext: "1003", caller: "1001", legacy: true}},
		{args: args("menu,,1001"), want: request{mode: modeMenu, caller: "1001", legacy: true}},
		{args: []string{"menu"}, want: request{mode: modeMenu, legacy: true}},
		// an old dialplan's caller number with a comma reads as a transfer: a PIN is asked
		{args: args("activate,3,10,01"), want: request{mode: modeActivate, number: "3", transfer: "10", caller: "01"}},
		{args: args("dnd,,,1001"), want: request{mode: modeDND, caller: "1001"}},
		{args: args("dnd,1003,,1001"), want: request{mode: modeDND, ext: "1003", caller: "1001"}},
		{args: args("dnd,1003,PJSIP/1002-00000007,1001"), want: request{mode: modeDND, ext: "1003", transfer: "PJSIP/1002-00000007", caller: "1001"}},
		{args: args("dnd,10a,,1001"), wantErr: "not digits"},
		{args: args("dnd,123456789012345678901,,1001"), wantErr: "longer than 20 digits"},
		{args: nil, wantErr: "no arguments"},
		{args: args("activate,,,1001"), wantErr: "not digits"},
		{args: args("activate,3*,,1001"), wantErr: "extension"},
		{args: args("activate,3*10a,,1001"), wantErr: "extension"},
		{args: args("activate,*1003,,1001"), wantErr: "not digits"},
		{args: args("activate,3*1003*1,,1001"), wantErr: "extension"},
		{args: args("activate,12345678901234567,,1001"), wantErr: "longer than 16 digits"},
		{args: args("activate,1*123456789012345678901,,1001"), wantErr: "longer than 20 digits"},
		{args: args("activate,٣,,1001"), wantErr: "not digits"},
		{args: args("menu,4,,1001"), wantErr: "menu takes no number"},
		{args: args("dance,4,,1001"), wantErr: "unknown mode"},
	} {
		got, err := parseArgs(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseArgs(%q) error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestSayDigits(t *testing.T) {
	if got, want := sayDigits("12"), []string{"sound:digits/1", "sound:digits/2"}; !slices.Equal(got, want) {
		t.Errorf("sayDigits(12) = %q, want %q", got, want)
	}
}

func testCatalog(t *testing.T) *presence.Catalog {
	t.Helper()
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{
		{ID: "alice", Name: "Alice", Extension: "1001", Devices: []presence.Device{{Dial: "PJSIP/1001", Family: presence.FamilyDesk}, {Dial: "PJSIP/1001-mobile", Family: presence.FamilyMobile}}},
		{ID: "bob", Extension: "1002", Devices: []presence.Device{{Dial: "PJSIP/1002", Family: presence.FamilyDesk}}},
	}, Profiles: []presence.Profile{
		{ID: "available", Name: "Available", Activation: "1"},
		{ID: "lunch", Name: "Lunch", Activation: "3"},
		{ID: "quiet", Name: "Quiet"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestUserOfDevice(t *testing.T) {
	cat := testCatalog(t)
	for _, tc := range []struct{ channel, want string }{
		{"PJSIP/1001-0000002a", "alice"},
		{"PJSIP/1001-mobile-00000003", "alice"},
		{"pjsip/1002-00000001", "bob"},
		{"PJSIP/1003-00000001", ""},
		{"Local/*553@presenced-features-00000000;2", ""},
		{"local/PJSIP/1001-00000000;2", ""},
		{"PJSIP", ""},
		{"", ""},
	} {
		u, ok := userOfDevice(cat, tc.channel)
		got := ""
		if ok {
			got = string(u.ID)
		}
		if got != tc.want {
			t.Errorf("userOfDevice(%q) = %q, want %q", tc.channel, got, tc.want)
		}
	}
}

func TestDeviceOf(t *testing.T) {
	for _, tc := range []struct{ channel, want string }{
		{"Local/*552@from-internal-0000001f;2", "Local/*552@from-internal"},
		{"PJSIP/trunk-0000002a", "PJSIP/trunk"},
		{"PJSIP/1001-mobile-00000003", "PJSIP/1001-mobile"},
		{"PJSIP/x\r\n\x01-00000001", "PJSIP/x???"},
		{"PJSIP/a\nb\u00e9-1", "PJSIP/a?b??"},
		{"PJSIP/" + strings.Repeat("9", 100) + "-1", "PJSIP/" + strings.Repeat("9", 58)},
	} {
		if got := deviceOf(tc.channel); got != tc.want {
			t.Errorf("deviceOf(%q) = %q, want %q", tc.channel, got, tc.want)
		}
	}
}

func TestCheckContext(t *testing.T) {
	for _, ok := range []string{"from-internal", "from_internal.trusted+1", "A"} {
		if err := CheckContext(ok); err != nil {
			t.Errorf("CheckContext(%q) = %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                      "not a dialplan context name",
		strings.Repeat("x", 80): "not a dialplan context name",
		"from internal":         "letters, digits",
		"a,b":                   "letters, digits",
		"ctx\n":                 "letters, digits",
		"presenced-features":    "cannot be trusted",
		"Presenced-Features":    "cannot be trusted",
	} {
		if err := CheckContext(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckContext(%q) = %v, want %q", name, err, want)
		}
	}
}

func TestWriteHints(t *testing.T) {
	var b strings.Builder
	if err := WriteHints(&b, testCatalog(t), presence.DefaultNaming()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"\n[presenced-hints-1001] ; Alice\ninclude => presenced-hints\nexten => *551,hint,Custom:PROFILE1001-1 ; Available\nexten => *553,hint,Custom:PROFILE1001-3 ; Lunch\n",
		"\n[presenced-hints-1002] ; bob\ninclude => presenced-hints\nexten => *551,hint,Custom:PROFILE1002-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteHints output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Quiet") {
		t.Errorf("a profile without activation number got a hint:\n%s", out)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Options.Channels") {
		t.Errorf("New(zero) = %v", err)
	}
	opts := Options{Channels: &fakeChannels{}, Engine: &fakeEngine{}, States: fakeStates{}, Redis: redis.NewClient(&redis.Options{}),
		TrustedContexts: []string{"from-internal", "from internal"}}
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "Options.TrustedContexts[1]") {
		t.Errorf("New with a bad trusted context = %v", err)
	}
}

// TestIdentification drives calls through the App: only a user's own device (or, where the
// admin opted in, a trusted context) switches without a PIN; every other call must give the
// PIN of the user it switches, and the journal's actor names only a proven caller.
func TestIdentification(t *testing.T) {
	const (
		own       = "PJSIP/1001-00000001"
		ownMobile = "PJSIP/1001-mobile-00000002"
		bobsPhone = "PJSIP/1002-00000003"
		forward   = "Local/*553@from-internal-00000004;2" // presenced-forward's Local channel
		trunk     = "PJSIP/trunk-00000005"
		unknown   = "PJSIP/1009-00000006"
		inTrusted = "Local/*553@from-internal-trusted-00000007;2"
		hotDesk   = "PJSIP/hotdesk-1-00000008" // alice is bound to it (newHarness)
		freeDesk  = "PJSIP/hotdesk-2-0000000a" // nobody is
	)
	for _, tc := range []struct {
		name                   string
		channel, context, args string
		keys                   string
		alwaysPIN              bool
		result                 Result
		user                   presence.UserID // the user to switch ("" when unknown)
		caller                 presence.UserID // the proven caller
		identity               Identity
		pin                    bool   // the PIN was asked
		actor                  string // the journal's actor when switched
	}{
		{name: "own device", channel: own, context: "from-internal", args: "activate,3,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "alice"},
		{name: "own second device", channel: ownMobile, context: "from-internal", args: "activate,3,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "alice"},
		{name: "own device, another caller ID", channel: bobsPhone, context: "from-internal", args: "activate,3,,1001",
			result: ResultSwitched, user: "bob", caller: "bob", identity: IdentityDevice, actor: "bob"},
		{name: "own device, own extension named", channel: own, context: "from-internal", args: "activate,3*1001,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "alice"},
		{name: "other user's device: PIN", channel: bobsPhone, context: "from-internal", args: "activate,3*1001,,1002", keys: "1234#",
			result: ResultSwitched, user: "alice", caller: "bob", identity: IdentityDevice, pin: true, actor: "bob"},
		{name: "other user's device: wrong PIN", channel: bobsPhone, context: "from-internal", args: "activate,3*1001,,1002", keys: "1111#2222#3333#",
			result: ResultBadPIN, user: "alice", caller: "bob", identity: IdentityDevice, pin: true},
		{name: "forward with a user's caller ID: PIN", channel: forward, context: "from-internal", args: "activate,3,,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "forward with a user's caller ID and the PIN", channel: forward, context: "from-internal", args: "activate,3,,1001", keys: "1234#",
			result: ResultSwitched, user: "alice", identity: IdentityNone, pin: true, actor: "pin:Local/*553@from-internal"},
		{name: "forward naming the user: PIN", channel: forward, context: "from-internal", args: "activate,3*1003,,1001", keys: "4321#",
			result: ResultSwitched, user: "carol", identity: IdentityNone, pin: true, actor: "pin:Local/*553@from-internal"},
		{name: "trunk with a user's caller ID: PIN", channel: trunk, context: "from-trunk", args: "activate,3,,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "unknown endpoint with a user's caller ID: PIN", channel: unknown, context: "from-internal", args: "activate,3,,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "unknown endpoint, unknown caller ID", channel: unknown, context: "from-internal", args: "activate,3,,1999",
			result: ResultUnknownUser, identity: IdentityNone},
		{name: "trusted context", channel: unknown, context: trustedContext, args: "activate,3,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityTrustedContext, actor: "alice"},
		{name: "trusted context, another user named: PIN", channel: unknown, context: trustedContext, args: "activate,3*1003,,1001", keys: "4321#",
			result: ResultSwitched, user: "carol", caller: "alice", identity: IdentityTrustedContext, pin: true, actor: "alice"},
		{name: "trusted context, caller ID no user's", channel: trunk, context: trustedContext, args: "activate,3,,1999",
			result: ResultUnknownUser, identity: IdentityNone},
		{name: "Local channel in a trusted context: PIN", channel: inTrusted, context: trustedContext, args: "activate,3,,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "untrusted call for a user without PIN: denied", channel: forward, context: "from-internal", args: "activate,3,,1002",
			result: ResultDenied, user: "bob", identity: IdentityNone, pin: true},
		{name: "untrusted call in a trusted context for a user without PIN: denied", channel: inTrusted, context: trustedContext, args: "activate,3,,1002",
			result: ResultDenied, user: "bob", identity: IdentityNone, pin: true},
		{name: "other device for a user without PIN: denied", channel: own, context: "from-internal", args: "activate,3*1002,,1001",
			result: ResultDenied, user: "bob", caller: "alice", identity: IdentityDevice, pin: true},
		{name: "own device transferred to the code: PIN", channel: own, context: "from-internal", args: "activate,3,PJSIP/1002-00000009,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "own device transferred, user without PIN: denied", channel: bobsPhone, context: "from-internal", args: "activate,4,PJSIP/1001-00000009,1002",
			result: ResultDenied, user: "bob", identity: IdentityNone, pin: true},
		{name: "trusted context transferred: PIN", channel: trunk, context: trustedContext, args: "activate,3,PJSIP/1001-00000009,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "older dialplan, own device", channel: own, context: "from-internal", args: "activate,3,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "alice"},
		{name: "older dialplan, forward: PIN", channel: forward, context: "from-internal", args: "activate,3,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "older dialplan, caller ID with a comma in a trusted context: PIN", channel: unknown, context: trustedContext, args: "activate,3,10,01",
			result: ResultUnknownUser, identity: IdentityNone},
		{name: "menu through a forward: PIN first", channel: forward, context: "from-internal", args: "menu,,,1001", keys: "1234#3#",
			result: ResultSwitched, user: "alice", identity: IdentityNone, pin: true, actor: "pin:Local/*553@from-internal"},
		{name: "hot desk the user is bound to", channel: hotDesk, context: "from-internal", args: "activate,3,,1091",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityHotDesk, actor: "alice"},
		{name: "hot desk the user is bound to, another user named: PIN", channel: hotDesk, context: "from-internal", args: "activate,3*1003,,1091", keys: "4321#",
			result: ResultSwitched, user: "carol", caller: "alice", identity: IdentityHotDesk, pin: true, actor: "alice"},
		{name: "hot desk transferred to the code: not proven", channel: hotDesk, context: "from-internal", args: "activate,3,PJSIP/1002-00000009,1091",
			result: ResultUnknownUser, identity: IdentityNone},
		{name: "hot desk nobody is bound to, a user's caller ID: PIN", channel: freeDesk, context: "from-internal", args: "activate,3,,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "always_pin on the own device", channel: own, context: "from-internal", args: "activate,3,,1001", keys: "1234#", alwaysPIN: true,
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, pin: true, actor: "alice"},
		{name: "always_pin, own device without PIN", channel: bobsPhone, context: "from-internal", args: "activate,3,,1002", alwaysPIN: true,
			result: ResultSwitched, user: "bob", caller: "bob", identity: IdentityDevice, actor: "bob"},
		{name: "*76 from the own device", channel: own, context: "from-internal", args: "dnd,,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "*76 on phone PJSIP/1001"},
		{name: "*76<ext> of the own extension", channel: ownMobile, context: "from-internal", args: "dnd,1001,,1001",
			result: ResultSwitched, user: "alice", caller: "alice", identity: IdentityDevice, actor: "*76 on phone PJSIP/1001-mobile"},
		{name: "*76<ext> of another user: PIN", channel: bobsPhone, context: "from-internal", args: "dnd,1001,,1002", keys: "1234#",
			result: ResultSwitched, user: "alice", caller: "bob", identity: IdentityDevice, pin: true, actor: "*76 on phone PJSIP/1002"},
		{name: "*76<ext> of another user without PIN: denied", channel: own, context: "from-internal", args: "dnd,1002,,1001",
			result: ResultDenied, user: "bob", caller: "alice", identity: IdentityDevice, pin: true},
		{name: "*76 through a forward: PIN", channel: forward, context: "from-internal", args: "dnd,,,1001", keys: "1234#",
			result: ResultSwitched, user: "alice", identity: IdentityNone, pin: true, actor: "pin:Local/*553@from-internal"},
		{name: "*76 transferred from the own device: PIN", channel: own, context: "from-internal", args: "dnd,,PJSIP/1002-00000009,1001",
			result: ResultTimeout, user: "alice", identity: IdentityNone, pin: true},
		{name: "*76<ext> of nobody", channel: own, context: "from-internal", args: "dnd,1999,,1001",
			result: ResultUnknownUser, caller: "alice", identity: IdentityDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testRedis(t), Options{AlwaysPIN: tc.alwaysPIN,
				FirstDigitTimeout: 200 * time.Millisecond, DigitTimeout: 200 * time.Millisecond})
			defer h.stop()
			h.send(testCall{id: "c1", channel: tc.channel, context: tc.context, callerID: "1001", args: args(tc.args), keys: tc.keys})
			o := h.outcome(t, "c1", 5*time.Second)
			if o.Result != tc.result || o.User != tc.user || o.Caller != tc.caller || o.Identity != tc.identity || o.PIN != tc.pin {
				t.Errorf("outcome %s user %q caller %q identity %s pin %v (%v); want %s %q %q %s %v",
					o.Result, o.User, o.Caller, o.Identity, o.PIN, o.Err, tc.result, tc.user, tc.caller, tc.identity, tc.pin)
			}
			if o.Context != tc.context {
				t.Errorf("context %q, want %q", o.Context, tc.context)
			}
			if asked := h.askedPIN("c1"); asked != (tc.pin && tc.result != ResultDenied) {
				t.Errorf("PIN prompt played %v, want %v (media %q)", asked, tc.pin && tc.result != ResultDenied, h.channels.media("c1"))
			}
			switches := h.engine.taken()
			if tc.result != ResultSwitched {
				if len(switches) != 0 {
					t.Errorf("switched %+v on a call that ended %s", switches, o.Result)
				}
				return
			}
			if len(switches) != 1 {
				t.Fatalf("switches %+v, want one", switches)
			}
			if s := switches[0]; s.User != tc.user || s.Actor != tc.actor || o.Actor != tc.actor || s.Source != presence.SourceFeatureCode {
				t.Errorf("switch %+v (outcome actor %q), want user %s actor %q", s, o.Actor, tc.user, tc.actor)
			}
		})
	}
}

// TestKeyedEntries: what collect makes of the keys: other keys than 0-9 and # are ignored, an
// entry of more than 16 digits is refused at its '#' (one wrong PIN, or an unknown profile in
// the menu), and keys after a '#' go to the next prompt.
func TestKeyedEntries(t *testing.T) {
	const forward = "Local/*553@from-internal-00000004;2"
	for _, tc := range []struct {
		name, channel, args, keys string
		result                    Result
		pinFailures               int
	}{
		{name: "star and letters ignored in a PIN", channel: forward, args: "activate,3,,1001", keys: "1*2A34D#", result: ResultSwitched},
		{name: "too long a PIN is one wrong PIN", channel: forward, args: "activate,3,,1001", keys: "12345678901234567#", result: ResultTimeout, pinFailures: 1},
		{name: "too long, then the PIN", channel: forward, args: "activate,3,,1001", keys: "99999999999999999999#1234#", result: ResultSwitched},
		{name: "three wrong PINs", channel: forward, args: "activate,3,,1001", keys: "1#22#333#", result: ResultBadPIN, pinFailures: 3},
		{name: "too long a menu number", channel: "PJSIP/1001-00000001", args: "menu,,,1001", keys: "12345678901234567#", result: ResultUnknownProfile},
		{name: "menu number with a star", channel: "PJSIP/1001-00000001", args: "menu,,,1001", keys: "*3#", result: ResultSwitched},
		{name: "menu: # alone", channel: "PJSIP/1001-00000001", args: "menu,,,1001", keys: "#", result: ResultNoChange},
		{name: "menu: type-ahead after the PIN", channel: forward, args: "menu,,,1001", keys: "1234#3#", result: ResultSwitched},
		{name: "hangup before the #", channel: forward, args: "activate,3,,1001", keys: "12h", result: ResultHangup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := testRedis(t)
			h := newHarness(t, rdb, Options{FirstDigitTimeout: 200 * time.Millisecond, DigitTimeout: 200 * time.Millisecond})
			defer h.stop()
			h.send(testCall{id: "c1", channel: tc.channel, context: "from-internal", callerID: "1001", args: args(tc.args), keys: tc.keys})
			if o := h.outcome(t, "c1", 5*time.Second); o.Result != tc.result {
				t.Errorf("result %s (%v), want %s", o.Result, o.Err, tc.result)
			}
			n, _ := rdb.Get(context.Background(), PINFailureKey("", "alice")).Int()
			if n != tc.pinFailures {
				t.Errorf("PIN failures counted %d, want %d", n, tc.pinFailures)
			}
		})
	}
}

// TestSwitchDoesNotWaitForTheAnswer: a number dialled whole is switched while Asterisk is still
// answering the channel (slow under a burst of calls); nothing is played, and no digits are
// asked for, before the channel is answered.
func TestSwitchDoesNotWaitForTheAnswer(t *testing.T) {
	h := newHarness(t, testRedis(t), Options{})
	defer h.stop()
	h.channels.gate = make(chan struct{})
	// bob on his own phone: no PIN, switched before the answer.
	h.send(testCall{id: "direct", channel: "PJSIP/1002-00000001", context: "from-internal", args: args("activate,3,,1002")})
	// bob's phone switching alice: her PIN is asked for, after the answer.
	h.send(testCall{id: "pin", channel: "PJSIP/1002-00000002", context: "from-internal", args: args("activate,3*1001,,1002"), keys: "1234#"})
	deadline := time.Now().Add(5 * time.Second)
	var switched []presence.SwitchRequest
	for len(switched) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no switch while the channel was being answered")
		}
		time.Sleep(5 * time.Millisecond)
		switched = h.engine.taken()
	}
	if len(switched) != 1 || switched[0].User != "bob" {
		t.Fatalf("switched before the answer: %+v, want bob only", switched)
	}
	time.Sleep(50 * time.Millisecond)
	if h.askedPIN("pin") || len(h.engine.taken()) != 0 {
		t.Fatal("the PIN call went on before its channel was answered")
	}
	close(h.channels.gate)
	for _, id := range []string{"direct", "pin"} {
		// 15 s: the PIN's hash (argon2) is slow on two cores busy with the whole suite
		if o := h.outcome(t, id, 15*time.Second); o.Result != ResultSwitched {
			t.Errorf("call %s: %s (%v), want switched", id, o.Result, o.Err)
		}
	}
	if !h.askedPIN("pin") || !slices.Contains(h.channels.media("direct"), soundConfirm) {
		t.Errorf("prompts: direct %v, pin %v", h.channels.media("direct"), h.channels.media("pin"))
	}
	h.channels.mu.Lock()
	defer h.channels.mu.Unlock()
	if len(h.channels.unanswered) != 0 {
		t.Errorf("played before the answer: %v", h.channels.unanswered)
	}
}
