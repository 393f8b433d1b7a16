package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"
)

// passUser is one pass over a user: it takes the requests waiting, checks the user, and
// answers them.
func (t *term) passUser(key workKey) {
	t.mu.Lock()
	covered := t.waiting[key.user]
	delete(t.waiting, key.user)
	seen := t.seen[key.user]
	delete(t.seen, key.user)
	if seen != nil && !t.untouchedSince(key.user, seen.mark) {
		seen = nil // an event or a pass since the read: look again
	}
	t.mu.Unlock()

	var m passMode
	for _, p := range covered {
		if p.req.enforce {
			m.enforced, m.actor = true, p.req.actor
		}
		if p.req.version > 0 {
			m.switched = true
			m.switches = append(m.switches, p.req)
			if p.req.handoff != nil && p.req.version > m.wantVersion {
				m.handoff, m.wantVersion = p.req.handoff, p.req.version
			}
		}
		if len(p.req.hooks) > 0 {
			m.hooks = append(m.hooks, p)
		}
	}
	res, retry, err := t.e.pass(t.ctx, t, key.user, m, seen)
	switch {
	case errors.Is(err, ErrUnknownUser):
		t.q.Forget(key) // nothing to retry: a CheckSoon of a user the catalog does not know
	case err != nil:
		t.e.log.Warn("pass over a user failed", "user", key.user, "err", err)
		t.q.AddRateLimited(key)
	case retry:
		t.q.AddRateLimited(key)
	default:
		t.q.Forget(key)
	}
	if err == nil {
		if rerr := t.record(key, res); rerr != nil {
			// The record still names the last version recorded: the next pass finds the switch
			// not yet recorded and journals it then. Nobody is told it is done before it is.
			t.q.AddRateLimited(key)
			if res.journal != nil {
				err = fmt.Errorf("presence: %s of %s: the PBX is done, but the journal entry was not written (the next pass writes it): %w",
					res.journal.Kind, key.user, rerr)
			}
		}
	}
	t.mu.Lock()
	// What was read or loaded before this pass (the PBX, the user's record) no longer stands.
	t.touchLocked(key.user)
	last := t.lastSwitch[key.user]
	t.mu.Unlock()
	for _, p := range covered {
		r := passResult{res: res, err: err}
		// The switch was applied by a pass that started between its save and its request
		// (which found this one with nothing to do): answer with that pass's outcomes.
		if err == nil && p.req.version > 0 && res.State.Version <= last.version() && last != res {
			c := *last
			c.Outcomes = append(slices.Clone(last.Outcomes), webhookOutcomes(res)...)
			r.res = &c
		}
		p.done <- r
	}
}

func (r *SwitchResult) version() int64 {
	if r == nil {
		return 0
	}
	return r.State.Version
}

// webhookOutcomes are the outcomes of the webhooks among a pass's.
func webhookOutcomes(res *SwitchResult) []Outcome {
	var out []Outcome
	for _, o := range res.Outcomes {
		if !o.Op.Kind.ChangesPBX() {
			out = append(out, o)
		}
	}
	return out
}

// passMode is what the requests a pass covers ask of it.
type passMode struct {
	enforced bool   // Enforce: whatever the policies say, without waiting for a call
	actor    string // who asked to enforce
	switched bool   // a switch of this instance waits for the pass
	switches []request
	hooks    []*pending
	// handoff is what the latest switch among them handed its pass, of wantVersion: the pass
	// uses its read and state, or reads the PBX for its desired state while it loads the state.
	handoff     *handoff
	wantVersion int64
}

// check compares one user's PBX state with their desired state and deals with the
// differences; it reports whether the pass must be retried (an operation failed). seen, when
// set, is what a full check read for the user: used instead of a new read when the state is
// still the version it was read for.
func (e *Engine) pass(ctx context.Context, t *term, id UserID, m passMode, seen *observed) (*SwitchResult, bool, error) {
	var torn []Outcome
	reloaded := false
	if r, ok := e.retireeOf(id); ok {
		// A failed teardown fails the pass (finish): the next one tries again.
		res, out, done, retry, err := e.retire(ctx, id, r)
		if done {
			return res, retry, err
		}
		torn, reloaded = out, true
	}
	u, ok := e.Catalog().User(id)
	if !ok {
		return nil, false, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	// A switch's pass uses the read of the PBX the switch started before it saved the state,
	// if nothing happened about the user since; otherwise it reads the PBX for the state the
	// switch saved while it loads the state. Either read is used only if the state loaded
	// wants exactly that, as it does unless another switch came in between.
	var early *observeBatch
	untouched := false // nothing happened about the user since the switch loaded their state
	h := m.handoff
	if seen == nil && h != nil {
		if t != nil {
			early = t.expectingEarly(u.ID, h.want, h)
			untouched = early != nil
		}
		if early == nil {
			early = e.obs.start(u.ID, h.want)
		}
	}
	var (
		st        UserState
		found     bool
		profiles  []*Profile
		err, perr error
	)
	if untouched && h.catalog == e.Catalog() {
		// The switch saved this version (Save's compare-and-set: nobody saved in between),
		// and no pass, event or profile edit about the user came since it loaded the state it
		// started from: what Redis holds is what it saved.
		st, found, profiles = h.state, true, h.profiles
	} else {
		st, found, profiles, err, perr = e.loadUser(ctx, u)
	}
	if early != nil && (err != nil || !found || perr != nil) && t != nil {
		t.expected(u.ID, false)
	}
	if err != nil {
		return nil, false, err
	}
	if !found {
		// Never switched: nothing desired, nothing to do.
		ev := SwitchEvent{User: u.ID, Extension: u.Extension, Source: SourceSystem, Actor: m.actor, At: e.now()}
		if m.enforced {
			ev.Source = SourceAPI
		}
		return &SwitchResult{SwitchEvent: ev, Outcomes: []Outcome{}, InSync: true}, false, nil
	}
	if perr != nil {
		return nil, false, perr
	}
	want := e.compile(u, st, profiles)
	if early != nil && (st.Version != m.wantVersion || !reflect.DeepEqual(h.want, &want.Target)) {
		early = nil // read again, for what the state loaded wants
	}
	if t != nil && early == nil {
		t.expecting(u.ID, &want.Target)
	}
	// A state version the record has not seen applied (the first state of a user comes with a
	// record of version 0: StateStore.Save) is a switch: applied whatever the policies say, and
	// journaled as a switch, whichever pass gets to it first (one of the instance that saved
	// it, or of the next leader). A switch a person asked for just now (the API, a feature
	// code) applies during a call; the others wait for it to end.
	switched := (st.Record != nil && st.Version > st.Record.Version) || (st.Record == nil && m.switched)
	mode := applyMode{policies: !switched && !m.enforced, waitForCall: !m.enforced && !(switched && st.Source.Manual())}
	kind := JournalRepair
	ev := SwitchEvent{User: u.ID, Extension: u.Extension, From: st.Profile, To: st.Profile, Info: st.Info,
		Source: SourceSystem, Actor: m.actor, At: e.now()}
	switch {
	case switched:
		kind, ev = JournalSwitch, st.event(u)
	case m.enforced:
		kind, ev.Source = JournalReconcile, SourceAPI
	case reloaded:
		kind, ev.Actor = JournalReload, reloadActor
	}
	res := &SwitchResult{SwitchEvent: ev, State: st, Outcomes: slices.Clone(torn)}
	if res.Outcomes == nil {
		res.Outcomes = []Outcome{}
	}
	if switched {
		e.journalSuperseded(ctx, t, u, st, m.switches)
	}
	var have *Target
	switch {
	case seen != nil && seen.version == st.Version:
		have = seen.have
	case early != nil:
		have, err = early.wait(ctx, u.ID)
	case m.enforced: // a reconcile someone asked for reads the PBX
		have, err = e.obs.observeNow(ctx, u.ID, &want.Target)
	default:
		have, err = e.obs.observe(ctx, u.ID, &want.Target)
	}
	if err == nil {
		// The hot desk the user holds is their phone while bound: a call on it is their call.
		u = u.withHotDesk(BoundDesk(want, have, e.opts.Naming, u))
	}
	if err != nil {
		res.Outcomes = append(res.Outcomes, ObserveError(err))
	} else if ops := Plan(want, have); len(ops) > 0 {
		if mode.policies && t.flapping(u.ID) {
			for _, op := range ops {
				res.Outcomes = append(res.Outcomes, Outcome{Op: op, Result: ResultReported,
					Note: fmt.Sprintf("not repaired: changed back %d times within %v", e.opts.FlapLimit, e.opts.FlapWindow)})
			}
		} else {
			var dnd *dndDecision
			if mode.policies && !reloaded && t != nil && e.dndSwitch() {
				dnd = t.dndKey(ctx, u, st, &want.Target, have, ops)
			}
			res.Outcomes = append(res.Outcomes, e.decideAndApply(ctx, u, st, ops, have, mode, dnd)...)
			if mode.policies && slices.ContainsFunc(res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }) {
				t.repaired(u.ID)
			}
		}
	}
	for _, p := range m.hooks {
		for _, h := range p.req.hooks {
			op := Op{Kind: OpWebhook, Webhook: &h, Event: p.req.hookEvent}
			res.Outcomes = append(res.Outcomes, e.apply(ctx, u, []Op{op})...)
		}
	}
	res.InSync = inSync(res.Outcomes)
	res.dnd = e.dndInStep(u, st, &want.Target, err == nil, res.Outcomes)
	if t != nil {
		t.expected(u.ID, leftAsWanted(res.Outcomes))
	}
	retry := e.finish(ctx, u, kind, res)
	if switched && t != nil {
		t.mu.Lock()
		t.lastSwitch[u.ID] = res
		t.mu.Unlock()
	}
	return res, retry, nil
}

// journalSuperseded journals the switches that a later one superseded before a pass applied
// them (switches saved one after the other faster than passes run): every switch is journaled,
// in the order they were saved, with no operations of their own.
func (e *Engine) journalSuperseded(ctx context.Context, t *term, u *User, st UserState, switches []request) {
	var done int64
	if t != nil {
		t.mu.Lock()
		done = t.lastSwitch[u.ID].version()
		t.mu.Unlock()
	}
	slices.SortFunc(switches, func(a, b request) int { return cmp.Compare(a.version, b.version) })
	for _, r := range switches {
		if r.version >= st.Version || r.version <= done {
			continue
		}
		jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, err := e.opts.States.AppendJournal(jctx, u.ID, JournalEntry{SwitchEvent: r.event, Kind: JournalSwitch,
			Outcomes: []Outcome{}, InSync: true, SupersededBy: st.Version}); err != nil {
			e.log.Error("journal not written", "user", u.ID, "err", err)
		}
		cancel()
	}
}

// finish journals a pass when it did something or found something new, counts it, logs what
// failed, was reported or waits, and writes the user's record; it reports whether an
// operation failed (the pass is retried).
func (e *Engine) finish(ctx context.Context, u *User, kind JournalKind, res *SwitchResult) bool {
	var reported, deferred []Op
	var failed []Outcome
	changed := false
	for _, o := range res.Outcomes {
		switch o.Result {
		case ResultReported:
			reported = append(reported, o.Op)
		case ResultDeferred:
			deferred = append(deferred, o.Op)
		case ResultFailed:
			if o.Op.Kind.ChangesPBX() {
				failed = append(failed, o)
			}
			changed = true
		case ResultApplied, ResultAdopted:
			changed = true
		}
	}
	prev := res.State.Record
	if prev == nil {
		prev = &Record{}
	}
	newReported, newDeferred := newOps(prev.Reported, reported), newOps(prev.Deferred, deferred)
	settled := len(prev.Reported)+len(prev.Deferred) > 0 && len(reported)+len(deferred) == 0

	if kind != JournalSwitch {
		e.metrics.drift(res.Outcomes, newReported, newDeferred)
	}
	if kind == JournalSwitch || changed || len(newReported)+len(newDeferred) > 0 || settled {
		// written with the record, in one round trip (term.record)
		res.journal = &JournalEntry{SwitchEvent: res.SwitchEvent, Kind: kind, Outcomes: res.Outcomes, InSync: res.InSync}
	}
	for _, o := range res.Outcomes {
		e.metrics.op(e.concernOf(o.Op.Kind), o)
		switch o.Result {
		case ResultFailed:
			e.log.Warn("operation failed", "user", u.ID, "op", o.Op.String(), "err", o.Error)
		case ResultAdopted:
			e.log.Info("drift adopted", "user", u.ID, "op", o.Op.String())
		case ResultApplied:
			if kind != JournalSwitch {
				e.log.Info("drift repaired", "user", u.ID, "op", o.Op.String(), "kind", string(kind))
			}
		}
	}
	for _, op := range newReported {
		e.log.Warn("drift reported, not repaired", "user", u.ID, "op", op.String())
	}
	for _, op := range newDeferred {
		e.log.Info("queue change waits for the user's call to end", "user", u.ID, "op", op.String())
	}
	if kind == JournalSwitch {
		e.log.Info("switched", "user", u.ID, "from", res.From, "to", res.To, "source", res.Source,
			"ops", len(res.Outcomes), "in_sync", res.InSync)
	}
	device, _ := onCall(e.opts.Devices, u)
	res.State.Record = &Record{Checked: e.now(), Version: res.State.Version, InSync: res.InSync, Reported: reported,
		Deferred: deferred, OnCall: device, Failed: failed, Phones: phones(e.opts.Devices, u), DND: res.dnd}
	return len(failed) > 0
}

// record writes the user's record, with the retry the queue holds for them, and the pass's
// journal entry if it has one; it returns why it could not.
func (t *term) record(key workKey, res *SwitchResult) error {
	rec := res.State.Record
	if rec == nil {
		return nil
	}
	if n := t.q.NumRequeues(key); n > 0 {
		rec.Attempts = n
		due, ok := t.q.Due(key)
		if !ok {
			due = t.e.now() // its delay already ran out: due now
		}
		rec.RetryAt = &due
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	err := t.e.opts.States.SaveRecordJournal(ctx, key.user, *rec, res.journal)
	if err != nil {
		if res.journal != nil {
			t.e.log.Error("record and journal not written; the pass is retried", "user", key.user, "err", err)
		} else {
			t.e.log.Error("record not written; the pass is retried", "user", key.user, "err", err)
		}
	}
	return err
}

// newOps returns the operations of cur not in prev.
func newOps(prev, cur []Op) []Op {
	var out []Op
	for _, op := range cur {
		if !slices.ContainsFunc(prev, func(p Op) bool { return p.String() == op.String() }) {
			out = append(out, op)
		}
	}
	return out
}

// repaired notes a repair of the user that changed the PBX, for the flap protection.
func (t *term) repaired(id UserID) {
	t.e.metrics.driftRepairs.Inc()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flaps[id] = append(t.flaps[id], t.e.now())
}

// flapping reports whether the user's state was repaired FlapLimit times within FlapWindow:
// someone keeps changing it back, and presenced does not fight forever. It is reported once
// per window; the user is looked at again when the window has passed.
func (t *term) flapping(id UserID) bool {
	e := t.e
	now := e.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	recent := slices.DeleteFunc(t.flaps[id], func(at time.Time) bool { return now.Sub(at) > e.opts.FlapWindow })
	t.flaps[id] = recent
	if len(recent) < e.opts.FlapLimit {
		delete(t.flapped, id)
		return false
	}
	if !t.flapped[id] {
		t.flapped[id] = true
		e.metrics.flapping.Inc()
		e.log.Warn("the PBX keeps changing this user's state back; reported, not repaired again for now",
			"user", id, "repairs", len(recent), "window", e.opts.FlapWindow)
		t.q.AddAfter(workKey{user: id}, priorityLow, e.opts.FlapWindow-now.Sub(recent[0])+time.Millisecond)
	}
	return true
}

// passGlobal puts back the Asterisk-wide state presenced owns (EngineOptions.Globals): a
// restart of Asterisk, a dialplan reload with clearglobalvars, or another instance may have
// changed it.
func (t *term) passGlobal() {
	e := t.e
	if len(e.opts.Globals) == 0 {
		return
	}
	want := NewDesired()
	for name, v := range e.opts.Globals {
		want.Globals[name] = &v
	}
	have, err := e.obs.observe(t.ctx, globalUserID, &want.Target)
	if err != nil {
		e.log.Warn("cannot read the global variables presenced owns", "err", err)
		t.q.AddRateLimited(globalKey)
		return
	}
	ops := Plan(want, have)
	failed := false
	for _, o := range e.apply(t.ctx, &User{ID: globalUserID, Name: "Asterisk"}, ops) {
		e.metrics.op(e.concernOf(o.Op.Kind), o)
		was := have.Globals[o.Op.Key]
		switch o.Result {
		case ResultFailed:
			failed = true
			e.log.Error("cannot put back a global variable presenced owns", "variable", o.Op.Key, "err", o.Error)
		case ResultApplied:
			e.log.Info("global variable put back", "variable", o.Op.Key, "value", o.Op.Value, "was", deref(was))
		}
	}
	if failed {
		t.q.AddRateLimited(globalKey)
	} else {
		t.q.Forget(globalKey)
	}
}
