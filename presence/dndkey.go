package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The DND key of a phone (reconcile.policy.dnd: switch). A user who presses the DND key of
// their phone (FreePBX's *76, *78 and *79 writing DND/<ext>, or a BLF key toggling the lamp
// Custom:DND<ext>) changes their DND on the PBX away from what their profile says. Under the
// drift policy switch, the engine's pass over the user finds that difference like any other
// drift and, instead of putting it back, switches the user: DND on to their DND profile, DND
// off back to the profile before. The switch is an ordinary one (source phone, journaled,
// applied by a pass of its own), so queues, presence and lamps follow the key.
//
// Only a change away from what the PBX last showed in step with the desired state counts
// (Record.DND): a desired state that changed under the PBX (a reload, a personal profile
// edited, an operation that failed) is put back as the astdb and lamp policies say, never
// taken for a key pressed. A user switched by their DND key DNDKeyOptions.Switches times within
// DNDKeyOptions.Window is not switched again until the oldest of those switches is that old:
// meanwhile the DND key is dealt with as DNDKeyOptions.Fallback says, and the outcomes say why.

// Defaults of DNDKeyOptions.
const (
	DefaultDNDKeySwitches = 6
	DefaultDNDKeyWindow   = 10 * time.Minute
)

// DNDKeyOptions configure the drift policy switch of the user's DND.
type DNDKeyOptions struct {
	// Profile is where DND on takes users without a DNDProfile of their own; empty means
	// ProfileDND.
	Profile string
	// DefaultProfile is where DND off takes users when the profile before would leave DND on
	// (or there is none): the user's DefaultProfile, else this, else ProfileAvailable
	// (Catalog.HomeProfile with this as the fallback).
	DefaultProfile string
	// Switches by the DND key of one user within Window are the most presenced follows; zero
	// means DefaultDNDKeySwitches and DefaultDNDKeyWindow.
	Switches int
	Window   time.Duration
	// Fallback is what becomes of the DND key's changes past that, or when no profile fits:
	// PolicyEnforce (the default: DND is put back as the profile says) or PolicyReport (left as
	// it is, the status warns).
	Fallback Policy
}

// Validate names what is wrong with the options, with the configuration's keys under prefix
// (e.g. "dnd_key"), and with the users' dnd_profile: every DND profile must be a system-wide
// profile that turns DND on.
func (o DNDKeyOptions) Validate(prefix string, cat *Catalog) error {
	var p problems
	if o.Switches < 0 {
		p.add(prefix+".switches", "%d is negative", o.Switches)
	}
	if o.Window < 0 {
		p.add(prefix+".window", "%v is negative", o.Window)
	}
	switch o.Fallback {
	case "", PolicyEnforce, PolicyReport:
	default:
		p.add(prefix+".fallback", "%q is not enforce or report", o.Fallback)
	}
	if cat != nil {
		if o.Profile != "" {
			checkDNDProfile(&p, cat, prefix+".profile", o.Profile)
		}
		if o.DefaultProfile != "" {
			if _, ok := cat.Profile(o.DefaultProfile); !ok {
				p.add(prefix+".default_profile", "%q is not a system-wide profile", o.DefaultProfile)
			}
		}
		for i, u := range cat.Users {
			if u.DNDProfile != "" {
				checkDNDProfile(&p, cat, fmt.Sprintf("users[%d] (%s).dnd_profile", i, u.ID), u.DNDProfile)
			}
		}
	}
	return p.err()
}

func checkDNDProfile(p *problems, cat *Catalog, key, id string) {
	pr, ok := cat.Profile(id)
	switch {
	case !ok:
		p.add(key, "%q is not a system-wide profile", id)
	case !turnsDNDOn(pr):
		p.add(key, "profile %q does not turn DND on (its on_enter has no {action: dnd})", id)
	}
}

// turnsDNDOn reports whether entering p turns DND on: the last dnd action of its on_enter
// that runs does.
func turnsDNDOn(p *Profile) bool {
	on := false
	for _, a := range p.OnEnter {
		if a.Kind == ActionDND && !a.Disabled {
			on = a.On == nil || *a.On
		}
	}
	return on
}

// dndSwitch reports whether the DND key switches profiles (reconcile.policy.dnd: switch).
func (e *Engine) dndSwitch() bool { return e.opts.Policies[DriftDND] == PolicySwitch }

// dndKeys are the names of u's DND: the astdb key DND/<ext> and the lamp Custom:DND<ext>.
func (n Naming) dndKeys(u *User) (key, lamp string) {
	return n.DNDFamily + "/" + u.Extension, n.DNDLampOf(u)
}

// isDNDOp reports whether op changes u's DND key or DND lamp.
func (e *Engine) isDNDOp(op Op, u *User) bool {
	key, lamp := e.opts.Naming.dndKeys(u)
	switch op.Kind {
	case OpDBPut, OpDBDel:
		return op.Key == key
	case OpDeviceState:
		return op.Key == lamp
	}
	return false
}

// policyOf is the policy a repair applies to op of u's, and the kind it is the policy of:
// the dnd policy for u's DND key and lamp when it is set (the switch policy is dealt with
// before, in the pass: what is left of it follows the astdb and lamp policies), else the
// policy of the op's kind.
func (e *Engine) policyOf(op Op, u *User) (Policy, DriftKind) {
	if pol := e.opts.Policies[DriftDND]; pol != "" && pol != PolicySwitch && e.isDNDOp(op, u) {
		return pol, DriftDND
	}
	k := KindOf(op.Kind)
	return e.opts.Policies.Of(k), k
}

// withDNDOff makes, under the switch policy, DND off the desired state of a user whose
// lineage says nothing of DND: their DND key is then watched like anyone's.
func (e *Engine) withDNDOff(u *User, t *Target) {
	if !e.dndSwitch() {
		return
	}
	key, lamp := e.opts.Naming.dndKeys(u)
	if _, ok := t.AstDB[key]; ok {
		return
	}
	t.AstDB[key] = nil
	t.Devices[lamp] = e.opts.Naming.LampOff
}

// dndWanted is the DND the desired state want says; ok is false when it says nothing of DND.
func (e *Engine) dndWanted(u *User, want *Target) (on, ok bool) {
	key, _ := e.opts.Naming.dndKeys(u)
	v, ok := want.AstDB[key]
	return ok && v != nil && *v == "YES", ok
}

// lampDND reads a DND lamp's state: on or off, or not known (a lamp never set, UNKNOWN).
func lampDND(state string) (on, known bool) {
	switch strings.ToUpper(state) {
	case "BUSY", "INUSE", "RINGING", "RINGINUSE", "ONHOLD":
		return true, true
	case "NOT_INUSE", "INVALID", "UNAVAILABLE":
		return false, true
	}
	return false, false
}

// dndSeen compares u's DND on the PBX (have) with the desired state (want): the DND the PBX
// shows is the opposite of the desired one when the key or the lamp shows it (what names which
// and how), else the desired one. ok is false when want says nothing of DND.
func (e *Engine) dndSeen(u *User, want, have *Target) (wantOn, seenOn bool, what string, ok bool) {
	wantOn, ok = e.dndWanted(u, want)
	if !ok {
		return false, false, "", false
	}
	key, lamp := e.opts.Naming.dndKeys(u)
	if v := have.AstDB[key]; (v != nil && *v == "YES") != wantOn {
		what = "astdb " + key + " not set"
		if v != nil {
			what = fmt.Sprintf("astdb %s = %s", key, *v)
		}
		return wantOn, !wantOn, what, true
	}
	if _, managed := want.Devices[lamp]; managed {
		state := have.Devices[lamp]
		if on, known := lampDND(state); known && on != wantOn {
			return wantOn, !wantOn, "lamp " + lamp + " " + state, true
		}
	}
	return wantOn, wantOn, "", true
}

// dndInStep is what the record keeps of u's DND after a pass (Record.DND): the desired DND
// when the pass leaves the PBX showing it, else what the record kept before.
func (e *Engine) dndInStep(u *User, st UserState, want *Target, observed bool, outcomes []Outcome) *bool {
	var prev *bool
	if st.Record != nil {
		prev = st.Record.DND
	}
	on, ok := e.dndWanted(u, want)
	if !ok || !observed {
		return prev
	}
	for _, o := range outcomes {
		if e.isDNDOp(o.Op, u) && o.Result != ResultApplied && o.Result != ResultUnchanged {
			return prev
		}
	}
	return &on
}

// dndDecision is what a pass does with the DND key's change: the DND operations become
// ResultSwitching (switching), or follow policy (the fallback) with note.
type dndDecision struct {
	switching bool
	policy    Policy
	note      string
}

// dndKey looks at the DND operations of a repair of u under the switch policy: when the PBX's
// DND changed away from what it last showed in step with the desired state, it starts the
// switch (off the worker: the switch waits for a pass over the same user) or says why not. It
// returns nil when the operations are no change of DND: they then follow the astdb and lamp
// policies.
func (t *term) dndKey(ctx context.Context, u *User, st UserState, want, have *Target, ops []Op) *dndDecision {
	e := t.e
	if !slices.ContainsFunc(ops, func(op Op) bool { return e.isDNDOp(op, u) }) {
		return nil
	}
	wantOn, seenOn, what, ok := e.dndSeen(u, want, have)
	if !ok || seenOn == wantOn {
		return nil
	}
	if st.Record != nil && st.Record.DND != nil && *st.Record.DND == seenOn {
		return nil // the PBX did not move: the desired state did
	}
	fallback := e.opts.DNDKey.Fallback
	t.mu.Lock()
	pending := t.dndPending[u.ID]
	declined, wasDeclined := t.dndDeclined[u.ID]
	t.mu.Unlock()
	if pending {
		return &dndDecision{switching: true, note: "the DND key of a phone: the switch is under way"}
	}
	if wasDeclined && declined.version == st.Version {
		return &dndDecision{policy: fallback, note: declined.note}
	}
	direction := "off"
	if seenOn {
		direction = "on"
	}
	// Counted once per change: a change refused for now is looked at again at later passes.
	counted := func(result string) {
		e.metrics.dndChanges.WithLabelValues(direction).Inc()
		e.metrics.dndSwitches.WithLabelValues(result).Inc()
	}
	decline := func(result, note string) *dndDecision {
		counted(result)
		t.mu.Lock()
		t.dndDeclined[u.ID] = dndDeclined{version: st.Version, note: note}
		t.mu.Unlock()
		return &dndDecision{policy: fallback, note: note}
	}
	target, err := e.dndTarget(ctx, u, st, seenOn)
	if err != nil {
		e.log.Warn("the DND key of a phone changed DND, but no profile fits; dealt with as the fallback says",
			"user", u.ID, "seen", what, "fallback", fallback, "err", err)
		return decline("skipped", fmt.Sprintf("the DND key (%s) switches nobody: %v; policy %s instead", what, err, fallback))
	}
	now := e.now()
	allowed, n, oldest, err := e.opts.States.countDNDSwitch(ctx, u.ID, now, e.opts.DNDKey.Window, e.opts.DNDKey.Switches,
		strconv.FormatInt(st.Version, 10))
	if err != nil {
		counted("failed")
		return &dndDecision{policy: PolicyReport, note: "the DND key's switches cannot be counted: " + err.Error()}
	}
	if !allowed {
		until := oldest.Add(e.opts.DNDKey.Window)
		note := fmt.Sprintf("the DND key (%s) switched %s %d times within %v: not followed until %s; policy %s instead",
			what, u.ID, n, e.opts.DNDKey.Window, until.Format(time.TimeOnly), fallback)
		t.mu.Lock()
		warned := !t.dndFlapUntil[u.ID].Before(until)
		t.dndFlapUntil[u.ID] = until
		t.mu.Unlock()
		if !warned {
			counted("refused")
			e.log.Warn("the DND key of a phone switches this user too often; not followed for now", "user", u.ID,
				"switches", n, "window", e.opts.DNDKey.Window, "until", until, "fallback", fallback)
			// Looked at again when the window has passed: the key may still differ then.
			t.q.AddAfter(workKey{user: u.ID}, priorityLow, until.Sub(now)+time.Millisecond)
		}
		return &dndDecision{policy: fallback, note: note}
	}
	actor := "DND key off (" + what + ")"
	if seenOn {
		actor = "DND key on (" + what + ")"
	}
	e.metrics.dndChanges.WithLabelValues(direction).Inc()
	t.mu.Lock()
	t.dndPending[u.ID] = true
	t.mu.Unlock()
	expect := &Expectation{Version: st.Version, Since: st.Since}
	t.wg.Go(func() {
		defer func() {
			t.mu.Lock()
			delete(t.dndPending, u.ID)
			t.mu.Unlock()
		}()
		_, err := e.Switch(t.ctx, SwitchRequest{User: u.ID, Profile: target, Source: SourcePhone, Actor: actor, Expect: expect})
		switch {
		case errors.Is(err, ErrStateChanged):
			// Someone else switched the user meanwhile: that switch decides; looked at again.
			e.metrics.dndSwitches.WithLabelValues("skipped").Inc()
			t.queueCheck(u.ID)
		case err != nil:
			e.metrics.dndSwitches.WithLabelValues("failed").Inc()
			if t.ctx.Err() == nil {
				e.log.Warn("switch by the DND key of a phone failed; looked at again", "user", u.ID, "profile", target, "err", err)
				t.q.AddRateLimited(workKey{user: u.ID})
			}
		default:
			e.metrics.dndSwitches.WithLabelValues("switched").Inc()
			e.log.Info("switched by the DND key of a phone", "user", u.ID, "profile", target, "seen", what)
		}
	})
	return &dndDecision{switching: true, note: "the DND key of a phone (" + what + "): switching to " + target}
}

// dndDeclined is a change of a user's DND that switched nobody, for the state version it was
// seen in: later passes over that version apply the fallback without asking again.
type dndDeclined struct {
	version int64
	note    string
}

// dndTarget is where u goes when their DND turns on (their DND profile) or off (the profile
// before, else their default profile), as long as the switch leaves DND so; an error says why
// none fits.
func (e *Engine) dndTarget(ctx context.Context, u *User, st UserState, on bool) (string, error) {
	var candidates []string
	if on {
		candidates = []string{cmp.Or(u.DNDProfile, e.opts.DNDKey.Profile, ProfileDND)}
	} else {
		candidates = []string{st.Previous, e.Catalog().HomeProfile(u, e.opts.DNDKey.DefaultProfile)}
	}
	var tried []string
	for _, c := range candidates {
		if c == "" || slices.Contains(tried, c) {
			continue
		}
		tried = append(tried, c)
		next, _, _, profiles, _, err := e.next(ctx, u, SwitchRequest{User: u.ID, Profile: c}, nil)
		if errors.Is(err, ErrUnknownProfile) {
			continue
		}
		if err != nil {
			return "", err
		}
		got, _ := e.dndWanted(u, &e.compile(u, next, profiles).Target)
		if got == on {
			return c, nil
		}
	}
	state := "off"
	if on {
		state = "on"
	}
	return "", fmt.Errorf("no profile leaves DND %s (tried %s)", state, strings.Join(tried, ", "))
}

// DNDRequest asks to switch a user's DND as the DND key of their phone does: on to their
// DND profile, off back to the profile before (or their default profile).
type DNDRequest struct {
	User UserID
	// On is the DND wanted; nil toggles the DND the user's desired state says.
	On     *bool
	Source Source
	Actor  string
}

// SwitchDND switches the user's DND as DNDRequest says, through Switch; it returns the
// switch's result and the DND it switched to. A user whose state changed while it decided is
// decided for again.
func (e *Engine) SwitchDND(ctx context.Context, req DNDRequest) (*SwitchResult, bool, error) {
	u, ok := e.Catalog().User(req.User)
	if !ok {
		return nil, false, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	for attempt := 0; ; attempt++ {
		st, _, profiles, err, perr := e.loadUser(ctx, u)
		if err == nil {
			err = perr
		}
		if err != nil {
			return nil, false, err
		}
		on := false
		if req.On != nil {
			on = *req.On
		} else {
			cur, _ := e.dndWanted(u, &e.compile(u, st, profiles).Target)
			on = !cur
		}
		target, err := e.dndTarget(ctx, u, st, on)
		if err != nil {
			return nil, on, err
		}
		res, err := e.Switch(ctx, SwitchRequest{User: u.ID, Profile: target, Source: req.Source, Actor: req.Actor,
			Expect: &Expectation{Version: st.Version, Since: st.Since}})
		if errors.Is(err, ErrStateChanged) && attempt < 3 {
			continue
		}
		return res, on, err
	}
}

// dndKeyScript counts a switch by the DND key of a user's phone (member ARGV[4]) at ARGV[1]
// (Unix ms) in the sorted set KEYS[1], unless the set holds ARGV[3] switches within the window
// ARGV[2] (ms) already. It answers whether it counted it, how many the window holds, and the
// time of the oldest of them (ms).
const dndKeyScript = `
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local oldest = ARGV[1]
if first[2] then oldest = first[2] end
if n >= limit then return {0, n, oldest} end
redis.call('ZADD', KEYS[1], now, ARGV[4] .. '@' .. ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return {1, n + 1, oldest}
`

func (s *StateStore) dndKeyKey(id UserID) string { return s.userKey(id) + ":dndkey" }

// countDNDSwitch counts a switch of the user by their DND key, unless limit switches were
// counted within window before now; it answers whether it counted it, how many the window
// holds, and when the oldest of them was. The count lives in Redis, so that a new leader
// goes on counting; it is written under the store's fence (only the leader switches).
func (s *StateStore) countDNDSwitch(ctx context.Context, id UserID, now time.Time, window time.Duration, limit int, member string) (bool, int, time.Time, error) {
	key := s.dndKeyKey(id)
	vals, err := s.run(ctx, s.rdb, s.dndKey, []string{key}, now.UnixMilli(), window.Milliseconds(), limit, member).Slice()
	if err != nil {
		return false, 0, time.Time{}, s.fail(err, "count the DND key's switches", key)
	}
	if len(vals) != 3 {
		return false, 0, time.Time{}, fmt.Errorf("presence: count the DND key's switches of %s: %d values", id, len(vals))
	}
	counted, _ := vals[0].(int64)
	n, _ := vals[1].(int64)
	ms, err := strconv.ParseFloat(fmt.Sprint(vals[2]), 64)
	if err != nil {
		return false, 0, time.Time{}, fmt.Errorf("presence: count the DND key's switches of %s: %w", id, err)
	}
	return counted == 1, int(n), time.UnixMilli(int64(ms)), nil
}
