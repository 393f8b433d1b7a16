package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
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
	// enforce makes the pass apply everything whatever the policies say, without waiting for a
	// call to end (Enforce); actor is who asked, for the journal.
	enforce bool
	actor   string
	// hooks are a switch's webhooks, called once by the pass that covers the request, with
	// hookEvent as their payload.
	hooks     []Webhook
	hookEvent *SwitchEvent
	// handoff, for a switch, is what it hands its pass (nil for other requests).
	handoff *handoff
}

// handoff is what a switch hands its pass: the desired state it compiled; the read of the PBX
// it started for it, with the mark taken before it loaded the user's state; and the state as
// it stored it (with the record it found), the profiles it was decided among and the catalog
// they came from. The pass uses the read and the state only if nothing happened about the
// user since the mark (term.untouchedSince), and the read only if the state it then has, of
// the same version, compiles to the same desired state (pass).
type handoff struct {
	want     *Target
	read     *observeBatch
	mark     uint64
	state    UserState
	profiles []*Profile
	catalog  *Catalog
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
	seen       map[UserID]*observed // what a full check read, for the next pass of the user
	// A read of the PBX made before a pass (a full check's, a switch's early read) stands for
	// the PBX only while nothing about the user happened since it started: touched is the
	// sequence number (seq) of the last event or pass concerning the user, allTouched of the
	// last event concerning everyone (term.untouchedSince).
	seq        uint64
	touched    map[UserID]uint64
	allTouched uint64
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
// it for, with the mark taken before the read started (term.mark).
type observed struct {
	version int64
	have    *Target
	mark    uint64
}

type allResult struct {
	sum CheckSummary
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
		seen: map[UserID]*observed{}, touched: map[UserID]uint64{}, flaps: map[UserID][]time.Time{}, flapped: map[UserID]bool{},
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
	watch := Watch{Catalog: e.Catalog, Naming: e.opts.Naming, Changed: t.queueCheck, Saw: t.saw,
		All: func(why string) { t.queueCheckAll(why, nil) }, BoundTo: e.BoundTo}
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
					t.queueCheckAll("periodic", nil)
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

// queueCheck asks for a pass over a user (a PBX event concerning them, a profile edited).
func (t *term) queueCheck(id UserID) {
	t.mu.Lock()
	t.touchLocked(id)
	t.mu.Unlock()
	t.q.Add(workKey{user: id}, priorityLow)
}

// mark returns the sequence number a read of the PBX that starts now is checked against
// (untouchedSince).
func (t *term) mark() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// touchLocked notes that something happened about the user (an event, a pass): a read that
// started before it no longer stands for their PBX state. The caller holds t.mu.
func (t *term) touchLocked(id UserID) {
	t.seq++
	t.touched[id] = t.seq
}

// untouchedSince reports whether nothing happened about the user since mark was taken: no
// event concerning them or everyone, no pass over them. The caller holds t.mu.
func (t *term) untouchedSince(id UserID, mark uint64) bool {
	return t.touched[id] <= mark && t.allTouched <= mark
}

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
	t.touchLocked(id)
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
	t.queueCheck(id)
}

// expecting records that a pass over the user is about to apply want.
func (t *term) expecting(id UserID, want *Target) {
	t.mu.Lock()
	t.expect[id] = &expectation{want: want, passing: true}
	t.mu.Unlock()
}

// expectingEarly is expecting, and returns the read the switch started (h.read) if nothing
// happened about the user since its mark; nil if there is no handoff or if something did.
// Both under one lock: an event about the user comes either before (the read is not used) or
// after (the expectation deals with it, as with any read the pass makes).
func (t *term) expectingEarly(id UserID, want *Target, h *handoff) *observeBatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expect[id] = &expectation{want: want, passing: true}
	if h == nil || !t.untouchedSince(id, h.mark) {
		return nil
	}
	return h.read
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
		t.queueCheck(id)
	}
}

// leftAsWanted reports whether a pass's outcomes leave the PBX as its desired state says: every
// operation on the PBX applied or found done already (webhooks are not PBX state).
func leftAsWanted(outcomes []Outcome) bool {
	for _, o := range outcomes {
		if !o.Op.Kind.ChangesPBX() {
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

// CheckSoon asks for a Check of the user soon, without waiting: something may have changed
// their PBX state or their desired state. It does nothing while the engine does not run.
func (e *Engine) CheckSoon(id UserID) {
	if t := e.term(); t != nil {
		t.queueCheck(id)
	} else if e.opts.Relay != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := e.opts.Relay.call(ctx, relayRequest{Op: relayCheckSoon, User: id}, e.opts.RunWait); err != nil {
			e.log.Warn("cannot ask the leader to look at a user", "user", id, "err", err)
		}
	}
}

// Check checks the user's PBX state against their desired state and deals with every
// difference as the policy of its kind says: enforced drift is put back through the same plan
// and apply as a switch, reported drift is recorded (the status warns), adopted drift becomes
// the desired state until the next switch. Queue changes for a user on a call wait until the
// call ends. It waits for the pass.
func (e *Engine) Check(ctx context.Context, id UserID) (*SwitchResult, error) {
	if _, ok := e.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	t, err := e.awaitTerm(ctx)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return e.opts.Relay.call(ctx, relayRequest{Op: relayCheck, User: id}, e.opts.RunWait)
	}
	return t.await(ctx, workKey{user: id}, priorityLow, request{})
}

// Enforce puts the user's whole desired state back on the PBX now, whatever the policies say
// and without waiting for a call to end: the one-call fix for reported drift and for changes
// waiting for a call. actor (who asked) is journaled; the journal and the API call it a
// reconcile (JournalReconcile, POST /users/{id}/reconcile).
func (e *Engine) Enforce(ctx context.Context, id UserID, actor string) (*SwitchResult, error) {
	if _, ok := e.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	t, err := e.awaitTerm(ctx)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return e.opts.Relay.call(ctx, relayRequest{Op: relayEnforce, User: id, Actor: actor}, e.opts.RunWait)
	}
	return t.await(ctx, workKey{user: id}, priorityHigh, request{enforce: true, actor: actor})
}
