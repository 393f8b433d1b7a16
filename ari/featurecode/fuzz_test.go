package featurecode

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fuzz targets of the DTMF side of feature codes: what the dialplan passes (parseArgs),
// what the caller keys in (collect), and whole calls through the App (identification, PIN,
// hangups). Their seed corpora are under testdata/fuzz/<target>; run one with e.g.
//
//	go test ./ari/featurecode -run '^$' -fuzz '^FuzzCollect$' -fuzztime 60s

// FuzzParseArgs checks parseArgs on the argument lists Stasis() makes of the shipped
// dialplan's (<mode>,<n>[*<ext>],<transferred by>,<caller>, and dnd,[<ext>],… for *76) and an older one's
// (<mode>,<n>[*<ext>],<caller>): never a panic; what it accepts is well-formed and bounded; the
// caller number, which a caller may choose, never causes an error and never shifts the
// arguments before it.
func FuzzParseArgs(f *testing.F) {
	for _, s := range [][4]string{
		{"activate", "3", "", "1001"},
		{"activate", "3*1003", "", "1001"},
		{"activate", "12", "PJSIP/1002-00000007", "1001"},
		{"menu", "", "", "1001"},
		{"menu", "", "", "10,01"},
		{"activate", "3", "", `"\,`},
		{"activate", "12345678901234567", "", ""},
		{"activate", "1*123456789012345678901", "", "1"},
		{"dance", "", "", ""},
		{"dnd", "", "", "1001"},
		{"dnd", "1003", "PJSIP/1002-00000007", "1001"},
		{"dnd", "3*1003", "", "1001"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, mode, number, transfer, callerNum string) {
		fields := strings.Split(mode+","+number+","+transfer+","+callerNum, ",")
		r, err := parseArgs(fields)
		checkRequest(t, fields, r, err)
		clean := !strings.Contains(mode+number+transfer, ",")
		if clean {
			if err == nil && (r.transfer != transfer || r.caller != callerNum || r.legacy) {
				t.Errorf("parseArgs(%q) = %+v: transfer %q and caller %q shifted", fields, r, transfer, callerNum)
			}
			// The caller number never decides whether the arguments are accepted.
			_, errNoCaller := parseArgs(strings.Split(mode+","+number+","+transfer+",", ","))
			if (err == nil) != (errNoCaller == nil) {
				t.Errorf("parseArgs(%q) error %v, but %v without the caller number", fields, err, errNoCaller)
			}
		}
		// The older dialplan's list.
		legacy := strings.Split(mode+","+number+","+callerNum, ",")
		r, err = parseArgs(legacy)
		checkRequest(t, legacy, r, err)
		if err == nil && !strings.Contains(mode+number+callerNum, ",") && (!r.legacy || r.caller != callerNum || r.transfer != "") {
			t.Errorf("parseArgs(%q) = %+v, want the older list with caller %q", legacy, r, callerNum)
		}
	})
}

// checkRequest checks what parseArgs accepted.
func checkRequest(t *testing.T, args []string, r request, err error) {
	t.Helper()
	if err != nil {
		return
	}
	switch r.mode {
	case modeMenu:
		if r.number != "" || r.ext != "" {
			t.Errorf("parseArgs(%q) = %+v: a menu with a number", args, r)
		}
	case modeActivate:
		if !isDigits(r.number) || len(r.number) > maxDigits {
			t.Errorf("parseArgs(%q) = %+v: activation number not 1-%d digits", args, r, maxDigits)
		}
		if r.ext != "" && (!isDigits(r.ext) || len(r.ext) > maxExtensionDigits) {
			t.Errorf("parseArgs(%q) = %+v: extension not 1-%d digits", args, r, maxExtensionDigits)
		}
	case modeDND:
		if r.number != "" || r.ext != "" && (!isDigits(r.ext) || len(r.ext) > maxExtensionDigits) {
			t.Errorf("parseArgs(%q) = %+v: *76 with a number, or an extension not 1-%d digits", args, r, maxExtensionDigits)
		}
	default:
		t.Errorf("parseArgs(%q) = %+v: mode %q accepted", args, r, r.mode)
	}
	if r.legacy != (len(args) < 4) {
		t.Errorf("parseArgs(%q) = %+v: legacy %v for %d arguments", args, r, r.legacy, len(args))
	}
}

// FuzzCollect runs collect on the keys a caller presses (queued before it reads them, the
// prompt finishing or not, the caller hanging up or not): never a panic or a hang, the result
// is one of collect's, digits beyond maxDigits are refused, and an entry is accepted only at
// a '#', as the digits 0-9 keyed before it (other keys ignored).
func FuzzCollect(f *testing.F) {
	for _, s := range []string{"", "#", "1234#", "12*34#", "4#3#", "1", "A1B2C3D#", "12345678901234567#",
		"1234567890123456#", "99999999999999999999999999999999999999999999999999999999999999999999#"} {
		f.Add(s, true, false)
	}
	f.Add("3#", false, false)
	f.Add("3#", true, true)
	f.Fuzz(func(t *testing.T, keys string, promptEnds, hangup bool) {
		queued := []rune(keys)
		if len(queued) > digitBuffer {
			queued = queued[:digitBuffer] // the call's buffer is full: the App drops what follows
		}
		entry, complete := firstEntry(string(queued))
		// The keys are all queued before collect reads them: an entry with its '#' never
		// waits for a timer, one without ends by a short one.
		timeout := time.Minute
		if !complete {
			timeout = 2 * time.Millisecond
		}
		a := &App{opts: Options{Channels: &fakeChannels{played: map[string][]string{}}, MaxCallDuration: timeout,
			FirstDigitTimeout: timeout, DigitTimeout: timeout, RequestTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
		c := newCall(a, "c1", "PJSIP/1001-00000001", "from-internal", "1001", nil, time.Now())
		for _, k := range queued {
			c.digit(string(k))
		}
		if hangup {
			c.hungUp("test")
		}
		if promptEnds {
			c.playbackFinished("c1-fc1") // the ID of the call's first playback
		}
		got, _, r := c.collect(context.Background(), []string{soundPIN})
		if !slices.Contains([]Result{"", resultTooLong, ResultTimeout, ResultHangup}, r) {
			t.Fatalf("collect(%q) result %q", keys, r)
		}
		switch {
		case r == "" && (!complete || got != entry || len(got) > maxDigits):
			t.Errorf("collect(%q) = %q accepted, want %q (complete entry %v)", keys, got, entry, complete)
		case r == resultTooLong && (!complete || len(entry) <= maxDigits):
			t.Errorf("collect(%q) refused entry %q as too long", keys, entry)
		case r != "" && got != "":
			t.Errorf("collect(%q) = %q with result %s", keys, got, r)
		case !hangup && complete && len(entry) <= maxDigits && r != "":
			t.Errorf("collect(%q) = %s, want the entry %q", keys, r, entry)
		case !hangup && complete && len(entry) > maxDigits && r != resultTooLong:
			t.Errorf("collect(%q) = %s, want %s", keys, r, resultTooLong)
		case !hangup && !complete && r != ResultTimeout:
			t.Errorf("collect(%q) without '#' = %s, want %s", keys, r, ResultTimeout)
		}
		if left := appGoroutines(); left != "" {
			t.Fatalf("goroutines of the package left after collect returned:\n%s", left)
		}
	})
}

// firstEntry is what a caller keyed up to the first '#': the digits 0-9 before it, and whether
// there was a '#'.
func firstEntry(keys string) (string, bool) {
	before, _, complete := strings.Cut(keys, "#")
	var b strings.Builder
	for _, k := range before {
		if k >= '0' && k <= '9' {
			b.WriteRune(k)
		}
	}
	return b.String(), complete
}

// FuzzCall drives whole calls through the App: any Stasis() arguments, channel, context and
// keys (digits; 'h' hangs up; 'p' is a stray playback event). Never a panic or a hang; the
// result is one of Results(); a switch happens exactly when the result says so, for the
// outcome's user, and only if the call was proven to come from that user or someone keyed in
// that user's PIN; the journal's actor names only a proven caller; when Run returns no call
// and no goroutine is left.
func FuzzCall(f *testing.F) {
	for _, s := range [][4]string{
		{"activate,3,,1001", "PJSIP/1001-00000001", "from-internal", ""},
		{"activate,3,,1001", "Local/*553@from-internal-00000004;2", "from-internal", ""},
		{"activate,3,,1001", "Local/*553@from-internal-00000004;2", "from-internal", "1234#"},
		{"activate,3*1003,,1002", "PJSIP/1002-00000003", "from-internal", "4321#"},
		{"activate,3,,1001", "PJSIP/1009-00000006", trustedContext, ""},
		{"activate,3,,1001", "Local/*553@x-1;2", trustedContext, "1234#"},
		{"activate,3,PJSIP/1002-00000009,1001", "PJSIP/1001-00000001", "from-internal", "1111#2222#1234#"},
		{"menu,,,1001", "PJSIP/1001-00000001", "from-internal", "3#"},
		{"menu,,,1001", "Local/*55@from-internal-1;2", "from-internal", "1234#4#"},
		{"menu,,,1001", "PJSIP/1001-00000001", "from-internal", "12345678901234567#"},
		{"menu,,,1001", "PJSIP/1001-00000001", "from-internal", "3h"},
		{"activate,3,1001", "PJSIP/trunk-00000005", "from-trunk", "p1234#"},
		{"activate,4,,1002", "Local/*554@from-internal-2;2", "from-internal", ""},
		{"dance", "PJSIP/1001-00000001", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	rdb := testRedis(f)
	f.Fuzz(func(t *testing.T, stasisArgs, channel, dialplanContext, keys string) {
		if len(keys) > 200 {
			keys = keys[:200]
		}
		ctx := context.Background()
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, rdb, Options{FirstDigitTimeout: 5 * time.Millisecond, DigitTimeout: 5 * time.Millisecond,
			MaxCallDuration: time.Second, SwitchTimeout: time.Second, RequestTimeout: time.Second})
		var fields []string
		if stasisArgs != "" {
			fields = strings.Split(stasisArgs, ",")
		}
		h.send(testCall{id: "c1", channel: channel, context: dialplanContext, callerID: "1001", args: fields, keys: keys})
		o := h.outcome(t, "c1", 5*time.Second)
		h.stop()
		if !slices.Contains(Results(), o.Result) {
			t.Fatalf("result %q is none of Results()", o.Result)
		}
		switches := h.engine.taken()
		if (len(switches) == 1) != (o.Result == ResultSwitched) || len(switches) > 1 {
			t.Fatalf("result %s with switches %+v", o.Result, switches)
		}
		if o.Result == ResultSwitched {
			s := switches[0]
			if s.User != o.User {
				t.Errorf("switched %s, outcome says %s", s.User, o.User)
			}
			if o.Caller != o.User || o.Identity == IdentityNone {
				u, _ := h.engine.cat.User(s.User)
				if u.PIN == "" || !keyedEntry(keys, u.PIN) {
					t.Errorf("switched %s without the PIN (identity %s, caller %q, keys %q)", s.User, o.Identity, o.Caller, keys)
				}
			}
			if o.Caller != "" && s.Actor != string(o.Caller) || o.Caller == "" && !strings.HasPrefix(s.Actor, "pin:") {
				t.Errorf("actor %q for proven caller %q", s.Actor, o.Caller)
			}
		}
		switch o.Identity {
		case IdentityDevice:
			if u, ok := userOfDevice(h.engine.cat, channel); !ok || u.ID != o.Caller {
				t.Errorf("identity device for %s, caller %q", channel, o.Caller)
			}
		case IdentityTrustedContext:
			if dialplanContext != trustedContext || isLocal(channel) {
				t.Errorf("trusted a call in %q on %s", dialplanContext, channel)
			}
		case IdentityNone:
			if o.Caller != "" {
				t.Errorf("caller %q without identity", o.Caller)
			}
		default:
			t.Errorf("identity %q", o.Identity)
		}
		h.app.mu.Lock()
		n := len(h.app.calls)
		h.app.mu.Unlock()
		if n != 0 {
			t.Errorf("%d calls left after Run returned", n)
		}
		if left := appGoroutines(); left != "" {
			t.Fatalf("goroutines of the App left after Run returned:\n%s", left)
		}
	})
}

// appGoroutines returns the stacks of the goroutines other than the caller's that run the
// package's methods (the App's Run, a call, a resync) or the harness, waiting a moment for those
// that are returning. (The number of goroutines proves nothing here: miniredis and the fuzzing
// engine start and end their own.)
func appGoroutines() string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		var left []string
		for _, g := range stacks[1:] { // the first is the caller's
			if strings.Contains(g, "presenced/ari/featurecode.(*") || strings.Contains(g, "presenced/ari/featurecode.newHarness") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(time.Millisecond)
	}
}

// keyedEntry reports whether the caller keyed pin as an entry ending in '#' (digits only; other
// keys are ignored by collect).
func keyedEntry(keys, pin string) bool {
	for {
		entry, complete := firstEntry(keys)
		if !complete {
			return false
		}
		if entry == pin {
			return true
		}
		_, keys, _ = strings.Cut(keys, "#")
	}
}
