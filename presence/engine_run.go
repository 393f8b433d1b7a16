package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// workKind is what a key of the engine's work queue names.
type workKind uint8

const (
	workUser   workKind = iota // one user's PBX state
	workGlobal                 // the Asterisk-wide state presenced owns (EngineOptions.Globals)
	workAll                    // every user: one bulk read, then a pass over each who needs one
	workReload                 // the users a configuration reload may concern (reload.go)
)

// workKey is a key of the engine's work queue.
type workKey struct {
	kind workKind
	user UserID
}

var (
	globalKey = workKey{kind: workGlobal}
	allKey    = workKey{kind: workAll}
	reloadKey = workKey{kind: workReload}
)

// globalUserID stands for the Asterisk-wide state where concerns and reads take a user; user
// ids cannot start with '*'.
const globalUserID UserID = "*asterisk"

// request is what a caller waiting for a pass over a user asked for.
type request struct {
	// version is the state version the pass must apply (a switch); 0 for any. event is the
	// switch, for the journal when a later switch supersedes it before a pass applied it.
	version int64
	event   SwitchEvent
	// force makes the pass apply everything whatever the policies say, without waiting for a
	// call to end (Reconcile); actor is who asked, for the journal.
	force bool
	actor string
	// hooks are a switch's webhooks, called once by the pass that covers the request, with
	// hookEvent as their payload.
	hooks     []Webhook
	hookEvent *SwitchEvent
}

// pending is a request waiting for the pass that covers it: the first pass over its user that
// starts after it was made.
type pending struct {
	req  request
	done chan passResult // buffered: the pass never blocks on a caller that gave up
}

type passResult struct {
	res *SwitchResult
	err error
}

// term is one run of Run: the work queue, its workers and what they share. When Run returns,
// the term is over and everything waiting in it answers ErrNotRunning.
type term struct {
	e   *Engine
	ctx context.Context
	q   *workQueue[workKey]
	reg *trackingRegisterer

	mu         sync.Mutex
	waiting    map[UserID][]*pending // requests not covered by a pass yet
	lastSwitch map[UserID]*SwitchResult
	seen       map[UserID]*observed   // what a full check read, for the next pass of the user
	changed    map[UserID]time.Time   // when a pass last changed the user's PBX state
	flaps      map[UserID][]time.Time // repairs that changed the PBX, within the flap window
	flapped    map[UserID]bool        // reported as flapping in this window
	expect     map[UserID]*expectation
	// The DND key (dndkey.go): users whose switch is under way, changes that switched nobody,
	// and until when a user's switches are past the limit (warned once).
	dndPending   map[UserID]bool
	dndDeclined  map[UserID]dndDeclined
	dndFlapUntil map[UserID]time.Time
	allWaiting   []chan allResult
	allWhy       []string
	over         bool

	wg sync.WaitGroup
}

// observed is what a full check read of one user's PBX state, for the state version it read
// it for, with when the read started.
type observed struct {
	version int64
	have    *Target
	at      time.Time
}

type allResult struct {
	sum RepairSummary
	err error
}

// term returns the running term, or nil.
func (e *Engine) term() *term {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	return e.run
}

// awaitTerm returns the running term, waiting up to EngineOptions.RunWait for the engine to run
// (an instance that is being elected leader, or one that just started); ErrNotRunning after.
// With a Relay it does not wait: nil, nil means the request goes to the instance that runs.
func (e *Engine) awaitTerm(ctx context.Context) (*term, error) {
	if t := e.term(); t != nil || e.opts.Relay != nil {
		return t, nil
	}
	deadline := time.NewTimer(e.opts.RunWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotRunning, ctx.Err())
		case <-deadline.C:
			return nil, ErrNotRunning
		case <-tick.C:
			if t := e.term(); t != nil {
				return t, nil
			}
		}
	}
}

// Running reports whether the engine runs (this instance writes to Asterisk).
func (e *Engine) Running() bool { return e.term() != nil }

// Run makes the engine work until ctx ends: a fixed pool of EngineOptions.Workers takes keys
// off the work queue, the watchers report PBX events, and every CheckInterval everyone is
// checked. It starts by putting back the Asterisk-wide state and checking everyone, since
// nobody wrote to Asterisk while it was not running (a new leader takes over). When ctx ends
// the passes under way are cancelled and the callers still waiting get ErrNotRunning. Only one
// Run at a time.
func (e *Engine) Run(ctx context.Context) error {
	reg := &trackingRegisterer{reg: e.opts.Registerer}
	q, err := newWorkQueue[workKey](workQueueOptions{BackoffMin: e.opts.RetryMin, BackoffMax: e.opts.RetryMax,
		BackoffJitter: 0.5, Registerer: reg.registerer(), Now: e.opts.Now})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &term{e: e, ctx: ctx, q: q, reg: reg, waiting: map[UserID][]*pending{}, lastSwitch: map[UserID]*SwitchResult{},
		seen: map[UserID]*observed{}, changed: map[UserID]time.Time{}, flaps: map[UserID][]time.Time{}, flapped: map[UserID]bool{},
		expect: map[UserID]*expectation{}, dndPending: map[UserID]bool{}, dndDeclined: map[UserID]dndDeclined{},
		dndFlapUntil: map[UserID]time.Time{}}
	e.runMu.Lock()
	if e.run != nil {
		e.runMu.Unlock()
		q.ShutDown()
		reg.unregister()
		return errors.New("presence: the engine is already running")
	}
	e.run = t
	// Nobody wrote to Asterisk while the engine did not run (a new leader takes over, or the
	// daemon just started): what drifted meanwhile is put back by a full check, asked for
	// before anyone sees the engine run, so that whatever they ask for comes with it or after.
	ready := t.askReady()
	// A reload while this instance did not lead: the leader then may not have dealt with it.
	t.q.Add(reloadKey, priorityHigh)
	e.runMu.Unlock()
	e.metrics.running.Set(1)
	e.log.Info("engine running: this instance writes to Asterisk", "workers", e.opts.Workers)

	for range e.opts.Workers {
		t.wg.Go(t.work)
	}
	if e.opts.Relay != nil {
		t.wg.Go(func() { e.opts.Relay.serve(ctx, e) })
	}
	watch := Watch{Catalog: e.Catalog, Naming: e.opts.Naming, Changed: t.touch, Saw: t.saw,
		All: func(why string) { t.checkAll(why, nil) }, BoundTo: e.BoundTo}
	for _, w := range e.opts.Watchers {
		t.wg.Go(func() {
			if err := w.Watch(ctx, watch); err != nil && ctx.Err() == nil {
				e.log.Error("a watcher stopped; PBX events it saw are missed until the next full check", "err", err)
			}
		})
	}
	if e.opts.CheckInterval > 0 {
		t.wg.Go(func() {
			tick := time.NewTicker(e.opts.CheckInterval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					t.checkAll("periodic", nil)
				}
			}
		})
	}
	t.wg.Go(func() { t.afterReady(ctx, ready) })

	<-ctx.Done()
	e.runMu.Lock()
	e.run = nil
	e.runMu.Unlock()
	t.end()
	e.metrics.running.Set(0)
	e.log.Info("engine stopped")
	return nil
}

// end stops the term: no new work, the queue's waiting keys dropped, the workers and watchers
// gone, every caller still waiting answered.
func (t *term) end() {
	t.mu.Lock()
	t.over = true
	t.mu.Unlock()
	t.q.ShutDown()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ps := range t.waiting {
		for _, p := range ps {
			p.done <- passResult{err: ErrNotRunning}
		}
	}
	t.waiting = nil
	for _, ch := range t.allWaiting {
		ch <- allResult{err: ErrNotRunning}
	}
	t.allWaiting = nil
	t.reg.unregister()
}

// work takes keys off the queue until it shuts down.
func (t *term) work() {
	for {
		key, ok := t.q.Get()
		if !ok {
			return
		}
		switch key.kind {
		case workUser:
			t.passUser(key)
		case workGlobal:
			t.passGlobal()
		case workAll:
			t.passAll()
		case workReload:
			t.passReload()
		}
		t.q.Done(key)
	}
}

// touch asks for a pass over a user (a PBX event concerning them, a profile edited).
func (t *term) touch(id UserID) { t.q.Add(workKey{user: id}, priorityLow) }

// expectation is the desired state a pass over a user set out to apply: while the pass runs,
// and after it if it left the PBX so, events showing the PBX as it says need no pass of their
// own (Watch.Saw). It lives in the term's memory only: a new leader starts without any, and
// then every event is looked at.
type expectation struct {
	want    *Target
	passing bool // a pass is applying want now
	// let is set when an event that agreed with want was let go during the pass: if the pass
	// then does not leave the PBX as want says, the user is looked at again.
	let bool
}

// saw is Watch.Saw: a pass over the user unless the expectation agrees with the event.
func (t *term) saw(id UserID, agrees func(want *Target) bool) {
	t.mu.Lock()
	x := t.expect[id]
	ok := x != nil && agrees(x.want)
	if ok && x.passing {
		x.let = true
	}
	t.mu.Unlock()
	if ok {
		t.e.metrics.eventsAgreed.Inc()
		return
	}
	t.touch(id)
}

// expecting records that a pass over the user is about to apply want.
func (t *term) expecting(id UserID, want *Target) {
	t.mu.Lock()
	t.expect[id] = &expectation{want: want, passing: true}
	t.mu.Unlock()
}

// expected ends the pass's expectation: it stays for the events to come when the pass left the
// PBX as it wanted (clean); otherwise it is dropped, and a user whose events were let go during
// the pass is looked at again.
func (t *term) expected(id UserID, clean bool) {
	t.mu.Lock()
	x := t.expect[id]
	again := false
	if x != nil {
		x.passing = false
		if !clean {
			delete(t.expect, id)
			again = x.let
		}
		x.let = false
	}
	t.mu.Unlock()
	if again {
		t.touch(id)
	}
}

// leftAsWanted reports whether a pass's outcomes leave the PBX as its desired state says: every
// operation on the PBX applied or found done already (webhooks are not PBX state).
func leftAsWanted(outcomes []Outcome) bool {
	for _, o := range outcomes {
		if o.Op.Kind == OpWebhook {
			continue
		}
		if o.Result != ResultApplied && o.Result != ResultUnchanged {
			return false
		}
	}
	return true
}

// await asks for a pass over a user and waits for the one that covers req.
func (t *term) await(ctx context.Context, key workKey, prio workPriority, req request) (*SwitchResult, error) {
	p := &pending{req: req, done: make(chan passResult, 1)}
	t.mu.Lock()
	if t.over {
		t.mu.Unlock()
		return nil, ErrNotRunning
	}
	t.waiting[key.user] = append(t.waiting[key.user], p)
	t.mu.Unlock()
	t.q.Add(key, prio)
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("presence: waiting for the pass over %s: %w", key.user, ctx.Err())
	}
}

// Touch asks for a pass over the user soon, without waiting: something may have changed their
// PBX state or their desired state. It does nothing while the engine does not run.
func (e *Engine) Touch(id UserID) {
	if t := e.term(); t != nil {
		t.touch(id)
	} else if e.opts.Relay != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := e.opts.Relay.call(ctx, relayRequest{Op: relayTouch, User: id}, e.opts.RunWait); err != nil {
			e.log.Warn("cannot ask the leader to look at a user", "user", id, "err", err)
		}
	}
}

// Repair checks the user's PBX state against their desired state and deals with every
// difference as the policy of its kind says: enforced drift is put back through the same plan
// and apply as a switch, reported drift is recorded (the status warns), adopted drift becomes
// the desired state until the next switch. Queue changes for a user on a call wait until the
// call ends. It waits for the pass.
func (e *Engine) Repair(ctx context.Context, id UserID) (*SwitchResult, error) {
	if _, ok := e.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	t, err := e.awaitTerm(ctx)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return e.opts.Relay.call(ctx, relayRequest{Op: relayRepair, User: id}, e.opts.RunWait)
	}
	return t.await(ctx, workKey{user: id}, priorityLow, request{})
}

// Reconcile puts the user's whole desired state back on the PBX now, whatever the policies
// say: the one-call fix for reported drift and for changes waiting for a call to end. actor
// (who asked) is journaled.
func (e *Engine) Reconcile(ctx context.Context, id UserID, actor string) (*SwitchResult, error) {
	if _, ok := e.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	t, err := e.awaitTerm(ctx)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return e.opts.Relay.call(ctx, relayRequest{Op: relayReconcile, User: id, Actor: actor}, e.opts.RunWait)
	}
	return t.await(ctx, workKey{user: id}, priorityHigh, request{force: true, actor: actor})
}

// passUser is one pass over a user: it takes the requests waiting, checks the user, and
// answers them.
func (t *term) passUser(key workKey) {
	t.mu.Lock()
	covered := t.waiting[key.user]
	delete(t.waiting, key.user)
	seen := t.seen[key.user]
	delete(t.seen, key.user)
	if seen != nil && !t.changed[key.user].Before(seen.at) {
		seen = nil // a pass changed the PBX since the read: look again
	}
	t.mu.Unlock()

	var m passMode
	for _, p := range covered {
		if p.req.force {
			m.forced, m.actor = true, p.req.actor
		}
		if p.req.version > 0 {
			m.switched = true
			m.switches = append(m.switches, p.req)
		}
		if len(p.req.hooks) > 0 {
			m.hooks = append(m.hooks, p)
		}
	}
	res, retry, err := t.e.check(t.ctx, t, key.user, m, seen)
	switch {
	case errors.Is(err, ErrUnknownUser):
		t.q.Forget(key) // nothing to retry: a touch of a user the catalog does not know
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
		if slices.ContainsFunc(res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }) {
			t.mu.Lock()
			t.changed[key.user] = t.e.now()
			t.mu.Unlock()
		}
	}
	t.mu.Lock()
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
		if o.Op.Kind == OpWebhook {
			out = append(out, o)
		}
	}
	return out
}

// passMode is what the requests a pass covers ask of it.
type passMode struct {
	forced   bool   // a reconcile: whatever the policies say, without waiting for a call
	actor    string // who asked for the reconcile
	switched bool   // a switch of this instance waits for the pass
	switches []request
	hooks    []*pending
}

// check compares one user's PBX state with their desired state and deals with the
// differences; it reports whether the pass must be retried (an operation failed). seen, when
// set, is what a full check read for the user: used instead of a new read when the state is
// still the version it was read for.
func (e *Engine) check(ctx context.Context, t *term, id UserID, m passMode, seen *observed) (*SwitchResult, bool, error) {
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
	st, found, profiles, err, perr := e.loadUser(ctx, u)
	if err != nil {
		return nil, false, err
	}
	if !found {
		// Never switched: nothing desired, nothing to do.
		ev := SwitchEvent{User: u.ID, Extension: u.Extension, Source: SourceSystem, Actor: m.actor, At: e.now()}
		if m.forced {
			ev.Source = SourceAPI
		}
		return &SwitchResult{SwitchEvent: ev, Outcomes: []Outcome{}, InSync: true}, false, nil
	}
	if perr != nil {
		return nil, false, perr
	}
	want := e.compile(u, st, profiles)
	if t != nil {
		t.expecting(u.ID, want)
	}
	// A state version the record has not seen applied (the first state of a user comes with a
	// record of version 0: StateStore.Save) is a switch: applied whatever the policies say, and
	// journaled as a switch, whichever pass gets to it first (one of the instance that saved
	// it, or of the next leader). A switch a person asked for just now (the API, a feature
	// code) applies during a call; the others wait for it to end.
	switched := (st.Record != nil && st.Version > st.Record.Version) || (st.Record == nil && m.switched)
	policies := !switched && !m.forced
	waitCall := !m.forced && !(switched && st.Source.Manual())
	kind := "repair"
	ev := SwitchEvent{User: u.ID, Extension: u.Extension, From: st.Profile, To: st.Profile, Info: st.Info,
		Source: SourceSystem, Actor: m.actor, At: e.now()}
	switch {
	case switched:
		kind, ev = "switch", st.event(u)
	case m.forced:
		kind, ev.Source = "reconcile", SourceAPI
	case reloaded:
		kind, ev.Actor = journalReload, reloadActor
	}
	res := &SwitchResult{SwitchEvent: ev, State: st, Outcomes: slices.Clone(torn)}
	if res.Outcomes == nil {
		res.Outcomes = []Outcome{}
	}
	if switched {
		e.journalSuperseded(ctx, t, u, st, m.switches)
	}
	var have *Target
	if seen != nil && seen.version == st.Version {
		have = seen.have
	} else {
		have, err = e.obs.observe(ctx, u.ID, want)
	}
	if err == nil {
		// The hot desk the user holds is their phone while bound: a call on it is their call.
		u = u.withHotDesk(BoundDesk(want, have, e.opts.Naming, u))
	}
	if err != nil {
		res.Outcomes = append(res.Outcomes, observeFailed(err))
	} else if ops := Plan(want, have); len(ops) > 0 {
		if policies && t.flapping(u.ID) {
			for _, op := range ops {
				res.Outcomes = append(res.Outcomes, Outcome{Op: op, Result: ResultReported,
					Note: fmt.Sprintf("not repaired: changed back %d times within %v", e.opts.FlapLimit, e.opts.FlapWindow)})
			}
		} else {
			var dnd *dndDecision
			if policies && !reloaded && t != nil && e.dndSwitch() {
				dnd = t.dndKey(ctx, u, st, want, have, ops)
			}
			res.Outcomes = append(res.Outcomes, e.decideAndApply(ctx, u, st, ops, have, waitCall, policies, dnd)...)
			if policies && slices.ContainsFunc(res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }) {
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
	res.dnd = e.dndInStep(u, st, want, err == nil, res.Outcomes)
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
		if _, err := e.opts.States.AppendJournal(jctx, u.ID, JournalEntry{SwitchEvent: r.event, Kind: "switch",
			Outcomes: []Outcome{}, InSync: true, SupersededBy: st.Version}); err != nil {
			e.log.Error("journal not written", "user", u.ID, "err", err)
		}
		cancel()
	}
}

// finish journals a pass when it did something or found something new, counts it, logs what
// failed, was reported or waits, and writes the user's record; it reports whether an
// operation failed (the pass is retried).
func (e *Engine) finish(ctx context.Context, u *User, kind string, res *SwitchResult) bool {
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
			if o.Op.Kind != OpWebhook {
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

	if kind != "switch" {
		e.metrics.drift(res.Outcomes, newReported, newDeferred)
	}
	if kind == "switch" || changed || len(newReported)+len(newDeferred) > 0 || settled {
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
			if kind != "switch" {
				e.log.Info("drift repaired", "user", u.ID, "op", o.Op.String(), "kind", kind)
			}
		}
	}
	for _, op := range newReported {
		e.log.Warn("drift reported, not repaired", "user", u.ID, "op", op.String())
	}
	for _, op := range newDeferred {
		e.log.Info("queue change waits for the user's call to end", "user", u.ID, "op", op.String())
	}
	if kind == "switch" {
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
	want := NewTarget()
	for name, v := range e.opts.Globals {
		want.Globals[name] = &v
	}
	have, err := e.obs.observe(t.ctx, globalUserID, want)
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

// RepairSummary is what a full check did.
type RepairSummary struct {
	Users      int           // users presenced has switched, all checked
	Drifted    int           // users whose PBX state differed from their desired state
	Repaired   int           // users whose PBX state had drifted and was put back
	Failed     int           // users still out of sync (a retry is scheduled for each)
	Took       time.Duration // from start to the last pass done
	RoundTrips uint64        // AMI actions sent meanwhile (EngineOptions.RoundTrips), reads and repairs
}

// RepairAll is the full check: it checks every user presenced has switched (and the
// Asterisk-wide state) against the PBX and deals with whatever drifted as the policies say,
// and waits until that is done. See CheckAll.
func (e *Engine) RepairAll(ctx context.Context) (RepairSummary, error) {
	t := e.term()
	if t == nil && e.opts.Relay == nil {
		var err error
		if t, err = e.awaitTerm(ctx); err != nil {
			return RepairSummary{}, err
		}
	}
	if t == nil {
		return RepairSummary{}, ErrNotRunning // the full check is the leader's own
	}
	ch := make(chan allResult, 1)
	t.checkAll("asked", ch)
	select {
	case r := <-ch:
		return r.sum, r.err
	case <-ctx.Done():
		return RepairSummary{}, fmt.Errorf("presence: waiting for the full check: %w", ctx.Err())
	}
}

// AsteriskReady checks everything after Asterisk became ready (every AMI connect, once it is
// fully booted): the Asterisk-wide state first (a restart forgets globals, and the feature
// codes need it), then every user as if nobody were on a call (a restart ends every call, and
// reading every phone's state is slow on a large PBX: DeviceStateList lists every queue
// member's pause device too), then the phones' states are read again (PhoneStates). It waits
// for the check; it does nothing while the engine does not run.
func (e *Engine) AsteriskReady(ctx context.Context) {
	t := e.term()
	if t == nil {
		return
	}
	t.afterReady(ctx, t.askReady())
}

// askReady asks for the checks of AsteriskReady: the Asterisk-wide state, then everyone, with
// the phones' states forgotten. It returns where the full check answers.
func (t *term) askReady() chan allResult {
	t.q.Add(globalKey, priorityHigh)
	if ps, ok := t.e.opts.Devices.(PhoneStates); ok {
		ps.Reset()
	}
	done := make(chan allResult, 1)
	t.checkAll("asterisk ready", done)
	return done
}

// afterReady waits for the full check askReady asked for, then reads the phones' states again.
func (t *term) afterReady(ctx context.Context, done chan allResult) {
	select {
	case r := <-done:
		if r.err != nil {
			t.e.log.Warn("the check after Asterisk became ready failed; it is retried", "err", r.err)
		}
	case <-ctx.Done():
		return
	}
	if ps, ok := t.e.opts.Devices.(PhoneStates); ok {
		if err := ps.Reload(ctx); err != nil {
			t.e.log.Warn("cannot read the phones' states; calls in progress are not known until their next change", "err", err)
		}
	}
}

// CheckAll asks for a full check soon, without waiting: after Asterisk became ready (a restart
// forgets dynamic queue members without persistentmembers), periodically (astdb changes have
// no events), when events were lost or a module reloaded. Checks asked for while one waits
// make one. It does nothing while the engine does not run.
func (e *Engine) CheckAll(why string) {
	if t := e.term(); t != nil {
		t.checkAll(why, nil)
	}
}

func (t *term) checkAll(why string, done chan allResult) {
	t.mu.Lock()
	if t.over {
		t.mu.Unlock()
		if done != nil {
			done <- allResult{err: ErrNotRunning}
		}
		return
	}
	t.allWhy = append(t.allWhy, why)
	if done != nil {
		t.allWaiting = append(t.allWaiting, done)
	}
	t.mu.Unlock()
	t.q.Add(allKey, priorityLow)
	t.q.Add(globalKey, priorityLow)
}

// passAll is the full check. One bulk read of the PBX serves every user: its round trips do
// not grow with the number of users. Only the users found drifted (or whose record says they
// are not settled) get a pass of their own, through the queue, from that read when their state
// did not change since. The passes are waited for off the worker, then the summary is logged
// and the callers of RepairAll answered.
func (t *term) passAll() {
	e := t.e
	t.mu.Lock()
	why, waiting := t.allWhy, t.allWaiting
	t.allWhy, t.allWaiting = nil, nil
	t.mu.Unlock()
	start := e.now()
	var rt0 uint64
	if e.opts.RoundTrips != nil {
		rt0 = e.opts.RoundTrips()
	}
	answer := func(sum RepairSummary, err error) {
		for _, ch := range waiting {
			ch <- allResult{sum: sum, err: err}
		}
		if err != nil {
			if t.ctx.Err() == nil {
				e.log.Error("full check failed", "why", why, "err", err)
			}
			return
		}
		e.metrics.reconciled(sum)
		e.log.Info("full check: every user checked", "why", why, "users", sum.Users, "drifted", sum.Drifted,
			"repaired", sum.Repaired, "out_of_sync", sum.Failed, "round_trips", sum.RoundTrips,
			"took", sum.Took.Round(time.Millisecond))
	}
	check, sum, err := e.readAll(t.ctx, start)
	if err != nil {
		answer(sum, err)
		// Nothing was checked: try again (the PBX or the store may be coming back).
		t.mu.Lock()
		t.allWhy = append(t.allWhy, "retry after a failed full check")
		t.mu.Unlock()
		t.q.AddRateLimited(allKey)
		return
	}
	t.q.Forget(allKey)
	// Each check gets a request of its own, so that its result is known; the read is handed
	// to its pass.
	results := make([]*pending, 0, len(check))
	t.mu.Lock()
	for id, seen := range check {
		t.seen[id] = seen
		p := &pending{done: make(chan passResult, 1)}
		t.waiting[id] = append(t.waiting[id], p)
		results = append(results, p)
	}
	t.mu.Unlock()
	for id := range check {
		t.q.Add(workKey{user: id}, priorityLow)
	}
	t.wg.Go(func() {
		for _, p := range results {
			select {
			case r := <-p.done:
				switch {
				case r.err != nil:
					sum.Failed++
				case !r.res.InSync:
					sum.Failed++
				case slices.ContainsFunc(r.res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }):
					sum.Repaired++
				}
			case <-t.ctx.Done():
				answer(sum, ErrNotRunning)
				return
			}
		}
		sum.Took = e.now().Sub(start)
		if e.opts.RoundTrips != nil {
			sum.RoundTrips = e.opts.RoundTrips() - rt0
		}
		answer(sum, nil)
	})
}

// readAll reads every switched user's PBX state at once and returns the users that need a
// pass, with what was read for them.
func (e *Engine) readAll(ctx context.Context, start time.Time) (map[UserID]*observed, RepairSummary, error) {
	cat := e.Catalog()
	users := cat.Users
	ids := make([]UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	states, err := e.opts.States.LoadMany(ctx, ids)
	if err != nil && !corruptOnly(err) {
		return nil, RepairSummary{}, err
	}
	if err != nil {
		e.log.Error("some user states are unreadable; those users are not checked", "err", err)
	}
	switched := make([]UserID, 0, len(states))
	for _, id := range ids {
		if _, ok := states[id]; ok {
			switched = append(switched, id)
		}
	}
	personal, err := e.opts.States.PersonalProfilesMany(ctx, switched)
	if err != nil && !corruptOnly(err) {
		return nil, RepairSummary{}, err
	}
	if err != nil {
		e.log.Error("some personal profiles are unreadable, left out", "err", err)
	}
	// Compiling and planning are pure and per user: spread over the cores (10,000 users take
	// a tenth of a second of CPU each way).
	wants := make([]*Target, len(switched))
	inParallel(len(switched), func(i int) {
		u, _ := cat.User(switched[i])
		wants[i] = e.compile(u, states[switched[i]], append(slices.Clone(cat.Profiles), personal[switched[i]]...))
	})
	want := make(map[UserID]*Target, len(switched))
	for i, id := range switched {
		want[id] = wants[i]
	}
	sum := RepairSummary{Users: len(switched)}
	have, err := e.obs.read(want)
	if err != nil {
		return nil, sum, fmt.Errorf("presence: full check: %w", err)
	}
	drifted := make([]bool, len(switched))
	inParallel(len(switched), func(i int) {
		drifted[i] = len(Plan(wants[i], have[switched[i]])) > 0
	})
	check := map[UserID]*observed{}
	for i, id := range switched {
		st := states[id]
		if drifted[i] {
			sum.Drifted++
		}
		// Users whose record is not settled are checked again too, so that what settled
		// meanwhile is cleared, and a switch never applied (its record is older) is applied.
		if drifted[i] || !st.Record.settled() || st.Record == nil || st.Version > st.Record.Version {
			check[id] = &observed{version: st.Version, have: have[id], at: start}
		}
	}
	return check, sum, nil
}

// inParallel calls f(0) … f(n-1), spread over GOMAXPROCS goroutines in contiguous ranges, and
// returns when every call has returned.
func inParallel(n int, f func(i int)) {
	parts := min(runtime.GOMAXPROCS(0), max(n/256, 1))
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				f(i)
			}
		})
	}
	wg.Wait()
}

// trackingRegisterer registers a term's metrics and unregisters them when the term ends, so
// that the next term (a leader again) can register its own.
type trackingRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (r *trackingRegisterer) registerer() prometheus.Registerer {
	if r.reg == nil {
		return nil
	}
	return r
}

func (r *trackingRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *trackingRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

func (r *trackingRegisterer) unregister() {
	if r.reg == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cs {
		r.reg.Unregister(c)
	}
	r.cs = nil
}
