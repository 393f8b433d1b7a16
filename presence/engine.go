package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors the engine returns; the API maps them to HTTP statuses.
var (
	ErrUnknownUser    = errors.New("unknown user")
	ErrUnknownProfile = errors.New("unknown profile")
	ErrProfileActive  = errors.New("profile is active")
	ErrSystemProfile  = errors.New("system-wide profile")
)

// EngineOptions configures an Engine.
type EngineOptions struct {
	Catalog  *Catalog
	Naming   Naming
	States   *StateStore
	Concerns []Concern // applied in this order
	// ObserveTimeout bounds one batched read of the PBX; zero means 10 s.
	ObserveTimeout time.Duration
	// RetryMin and RetryMax bound the backoff of repairs after a failed apply; zero means
	// 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// NudgeDelay is how long a repair asked for by a PBX event waits, so that a burst of events
	// makes one repair; zero means 200 ms.
	NudgeDelay time.Duration
	// FlapLimit repairs of one user that changed the PBX within FlapWindow mean someone keeps
	// changing it back: further nudges are reported, not acted on, until the window has
	// passed. Zero means 5 and 1 minute.
	FlapLimit  int
	FlapWindow time.Duration
	// OwnChangeQuiet is how long after presenced changed a user's PBX state the PBX's reports
	// of changes to that user are taken for the echo of presenced's own actions and ignored;
	// zero means 1 s. A change by hand inside it is found by the next periodic check.
	OwnChangeQuiet time.Duration
	// Policies says, per kind of state, what a repair does about drift: enforce (put it back),
	// report (warn) or adopt (accept the PBX's value). Nil enforces everything.
	Policies Policies
	// Devices reports the state of the users' own devices. A user on a call keeps their queue
	// state until the call ends (repairs and automatic switches wait, visibly), and the status
	// warns about a device in use that the profile does not ring. Nil: nobody is on a call.
	Devices DeviceStates
	// RoundTrips, when set, counts the AMI actions sent so far; RepairAll reports how many it
	// took.
	RoundTrips func() uint64
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine switches users between profiles and keeps the PBX in line with what they chose.
// One user's switches and repairs run one at a time; different users run in parallel.
type Engine struct {
	opts    EngineOptions
	log     *slog.Logger
	metrics *engineMetrics
	obs     *observer
	byKind  map[OpKind]Concern
	now     func() time.Time

	locksMu sync.Mutex
	locks   map[UserID]*userLock

	retryMu   sync.Mutex
	retries   map[UserID]*retry
	nudges    map[UserID]*nudge
	drift     map[UserID]*driftRecord // drift left on the PBX: reported, or waiting for a call's end
	outOfSync map[UserID]bool         // users whose last switch or repair left them out of sync
	closed    bool

	ctx    context.Context // repairs run in it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

// nudge is the event-driven repair state of one user.
type nudge struct {
	applied  time.Time // when presenced last changed the user's PBX state
	pending  bool
	repairs  []time.Time // repairs that changed the PBX, within the flap window
	reported bool        // the flapping was reported in this window
}

// driftRecord is the drift a user's last switch or repair left on the PBX on purpose.
type driftRecord struct {
	reported []Op // under the report policy
	deferred []Op // queue changes waiting for the user's call to end
}

type retry struct {
	attempt int
	timer   *time.Timer
	due     time.Time
}

// NewEngine checks the options and returns an engine. Close stops its pending repairs.
func NewEngine(opts EngineOptions) (*Engine, error) {
	if opts.Catalog == nil || opts.States == nil {
		return nil, errors.New("presence: EngineOptions.Catalog and States are required")
	}
	if err := opts.Naming.Validate(); err != nil {
		return nil, err
	}
	if opts.ObserveTimeout == 0 {
		opts.ObserveTimeout = 10 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 500 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.NudgeDelay == 0 {
		opts.NudgeDelay = 200 * time.Millisecond
	}
	if opts.FlapLimit == 0 {
		opts.FlapLimit = 5
	}
	if opts.FlapWindow == 0 {
		opts.FlapWindow = time.Minute
	}
	if opts.OwnChangeQuiet == 0 {
		opts.OwnChangeQuiet = time.Second
	}
	e := &Engine{
		opts:      opts,
		log:       opts.Logger,
		metrics:   newEngineMetrics(opts.Registerer),
		byKind:    map[OpKind]Concern{},
		now:       opts.Now,
		locks:     map[UserID]*userLock{},
		retries:   map[UserID]*retry{},
		nudges:    map[UserID]*nudge{},
		drift:     map[UserID]*driftRecord{},
		outOfSync: map[UserID]bool{},
	}
	if err := opts.Policies.Validate(); err != nil {
		return nil, err
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	for _, c := range opts.Concerns {
		for _, k := range c.Kinds() {
			if other, dup := e.byKind[k]; dup {
				return nil, fmt.Errorf("presence: operation %s is applied by both %s and %s", k, other.Name(), c.Name())
			}
			e.byKind[k] = c
		}
	}
	e.obs = &observer{concerns: opts.Concerns, timeout: opts.ObserveTimeout, onBatch: e.metrics.observed}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// Close cancels pending repairs and waits for running ones.
func (e *Engine) Close() {
	e.retryMu.Lock()
	e.closed = true
	for id, r := range e.retries {
		if r.timer.Stop() {
			e.wg.Done()
		}
		delete(e.retries, id)
	}
	e.retryMu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// Catalog is the engine's users and system-wide profiles.
func (e *Engine) Catalog() *Catalog { return e.opts.Catalog }

// lock serialises the work on one user and returns its unlock.
func (e *Engine) lock(id UserID) func() {
	e.locksMu.Lock()
	l := e.locks[id]
	if l == nil {
		l = &userLock{}
		e.locks[id] = l
	}
	l.refs++
	e.locksMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		e.locksMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(e.locks, id)
		}
		e.locksMu.Unlock()
	}
}

// SwitchRequest asks to put a user in a profile.
type SwitchRequest struct {
	User    UserID
	Profile string
	Info    string
	Source  Source
	Actor   string
	// Until, when set, is when the profile is meant to end; it is recorded in the state for
	// the "why" (package trigger schedules the return).
	Until time.Time
	// Guard, when set, is called with the user's current state under the user's lock, before
	// anything is written; an error abandons the switch and is returned. With the versioned
	// save it makes "switch only if nothing changed since I looked" atomic across instances.
	Guard func(current UserState) error
}

// SwitchResult is what a switch (or a preview, or a repair) did.
type SwitchResult struct {
	SwitchEvent
	Outcomes []Outcome `json:"outcomes"`
	// InSync is true when every PBX operation succeeded (a failed webhook does not count).
	InSync  bool `json:"in_sync"`
	Preview bool `json:"preview,omitempty"`
	// State is the state the switch saved (with its new version); not encoded.
	State UserState `json:"-"`
}

// Switch puts the user in the requested profile: it records the new desired state in Redis
// first (so a crash is repaired on restart), then reads the PBX, applies only what differs,
// journals every operation's outcome, and schedules repairs if anything failed.
func (e *Engine) Switch(ctx context.Context, req SwitchRequest) (*SwitchResult, error) {
	return e.switchUser(ctx, req, false)
}

// Preview says what Switch would do, changing nothing.
func (e *Engine) Preview(ctx context.Context, req SwitchRequest) (*SwitchResult, error) {
	return e.switchUser(ctx, req, true)
}

func (e *Engine) switchUser(ctx context.Context, req SwitchRequest, preview bool) (*SwitchResult, error) {
	start := e.now()
	u, ok := e.opts.Catalog.User(req.User)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	if err := e.opts.Catalog.ValidateInfo(req.Info); err != nil {
		return nil, err
	}
	unlock := e.lock(u.ID)
	defer unlock()

	var (
		st       UserState
		profiles []*Profile
		to       *Profile
		hooks    []Webhook
	)
	for attempt := 0; ; attempt++ {
		prev, _, err := e.opts.States.Load(ctx, u.ID)
		var corrupt *CorruptError
		if errors.As(err, &corrupt) {
			// Nothing is lost: the unreadable record stays for an admin to look at until this
			// switch replaces it, and the switch starts from a clean slate.
			e.log.Error("user state unreadable; switching from an empty state", "user", u.ID, "err", err)
			prev = UserState{}
			prev.Version, err = e.opts.States.Version(ctx, u.ID)
		}
		if err != nil {
			return nil, err
		}
		if req.Guard != nil {
			if err := req.Guard(prev); err != nil {
				return nil, err
			}
		}
		profiles, err = e.profilesOf(ctx, u)
		if err != nil {
			return nil, err
		}
		to = findProfile(profiles, req.Profile)
		if to == nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownProfile, req.Profile)
		}
		from := findProfile(profiles, prev.Profile)
		allow := e.allow(u)
		steps := prev.lineage()
		if from != nil {
			steps = append(steps, Step{Profile: from.ID, Exit: true, Info: req.Info})
		}
		steps = CompactSteps(u, append(steps, Step{Profile: to.ID, Info: req.Info}), profiles, allow)
		hooks = switchWebhooks(u, from, to, req.Info, allow)
		st = UserState{
			Profile: to.ID, Previous: prev.Profile, Since: e.now(), Source: req.Source, Actor: req.Actor,
			Info: req.Info, Sticky: to.Sticky, Steps: steps, Version: prev.Version,
		}
		if !req.Until.IsZero() {
			until := req.Until
			st.Until = &until
		}
		if preview {
			break
		}
		st, err = e.opts.States.Save(ctx, u.ID, st)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue // another instance switched this user meanwhile: start over from its state
		}
		if err != nil {
			return nil, err
		}
		break
	}

	ev := SwitchEvent{User: u.ID, Extension: u.Extension, From: st.Previous, To: st.Profile, Info: st.Info,
		Source: st.Source, Actor: st.Actor, At: st.Since}
	want := Compile(u, e.intentOf(u, st, profiles), Active{Profile: to, Info: st.Info}, profiles, e.opts.Naming)
	have, err := e.obs.observe(ctx, u.ID, want)
	var ops []Op
	if err == nil {
		ops = Plan(want, have)
	}
	hookEvent := privateRedacted(ev, findProfile(profiles, st.Previous), to)
	for _, h := range hooks {
		ops = append(ops, Op{Kind: OpWebhook, Webhook: &h, Event: &hookEvent})
	}
	res := &SwitchResult{SwitchEvent: ev, Preview: preview, State: st}
	if err != nil {
		// The desired state is saved: the repair loop applies it once the PBX answers.
		res.Outcomes = []Outcome{{Op: Op{Kind: "observe"}, Result: ResultFailed, Error: err.Error()}}
	} else if preview {
		for _, op := range ops {
			res.Outcomes = append(res.Outcomes, Outcome{Op: op, Result: ResultPlanned})
		}
	} else {
		res.Outcomes = e.decideAndApply(ctx, u, st, ops, nil, !req.Source.Manual(), false)
	}
	res.InSync = inSync(res.Outcomes)
	if preview {
		return res, nil
	}
	e.finish(u, "switch", res)
	e.metrics.switched(req.Source, res.InSync, e.now().Sub(start))
	e.log.Info("switched", "user", u.ID, "from", ev.From, "to", ev.To, "source", ev.Source,
		"ops", len(res.Outcomes), "in_sync", res.InSync)
	return res, nil
}

// privateRedacted is a switch as the admin's webhooks see it: a user's own private profile is
// not named, nor the info of a switch into one (webhooks feed chat and wallboard tools that
// colleagues see).
func privateRedacted(ev SwitchEvent, from, to *Profile) SwitchEvent {
	if from != nil && from.Personal() && from.Visibility == VisibilityPrivate {
		ev.From = ""
	}
	if to.Personal() && to.Visibility == VisibilityPrivate {
		ev.To, ev.Info = "", ""
	}
	return ev
}

// Repair checks the user's PBX state against their desired state and deals with every
// difference as the policy of its kind says: enforced drift is put back through the same plan
// and apply as a switch, reported drift is recorded (the status warns), adopted drift becomes
// the desired state until the next switch. Queue changes for a user on a call wait until the
// call ends.
func (e *Engine) Repair(ctx context.Context, id UserID) (*SwitchResult, error) {
	return e.repair(ctx, id, false, "", nil)
}

// Reconcile puts the user's whole desired state back on the PBX now, whatever the policies
// say: the one-call fix for reported drift and for changes waiting for a call to end. actor
// (who asked) is journaled.
func (e *Engine) Reconcile(ctx context.Context, id UserID, actor string) (*SwitchResult, error) {
	return e.repair(ctx, id, true, actor, nil)
}

// observed is what a full reconcile read of one user's PBX state, for the state version it
// read it for.
type observed struct {
	version int64
	have    *Target
}

// repair checks one user. seen, when set, is what a full reconcile read for the user: it is
// used instead of a new read when the user's state is still the version it was read for
// (nothing was switched since; a change by hand meanwhile makes an event and another check).
func (e *Engine) repair(ctx context.Context, id UserID, force bool, actor string, seen *observed) (*SwitchResult, error) {
	u, ok := e.opts.Catalog.User(id)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	unlock := e.lock(u.ID)
	defer unlock()
	st, found, err := e.opts.States.Load(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if !found {
		e.clearRetry(u.ID)
		return &SwitchResult{SwitchEvent: SwitchEvent{User: u.ID, Extension: u.Extension}, InSync: true}, nil
	}
	want, err := e.desired(ctx, u, st)
	if err != nil {
		return nil, err
	}
	src := SourceSystem
	if force {
		src = SourceAPI
	}
	ev := SwitchEvent{User: u.ID, Extension: u.Extension, From: st.Profile, To: st.Profile, Info: st.Info,
		Source: src, Actor: actor, At: e.now()}
	res := &SwitchResult{SwitchEvent: ev, State: st}
	var have *Target
	if seen != nil && seen.version == st.Version {
		have = seen.have
	} else {
		have, err = e.obs.observe(ctx, u.ID, want)
	}
	if err != nil {
		res.Outcomes = []Outcome{{Op: Op{Kind: "observe"}, Result: ResultFailed, Error: err.Error()}}
	} else if ops := Plan(want, have); len(ops) > 0 {
		res.Outcomes = e.decideAndApply(ctx, u, st, ops, have, !force, !force)
	}
	res.InSync = inSync(res.Outcomes)
	kind := "repair"
	if force {
		kind = "reconcile"
	}
	e.finish(u, kind, res)
	return res, nil
}

// decideAndApply applies ops, except that with policies (a repair) reported and adopted drift
// is recorded instead, and with waitCall queue operations wait while the user is on a call.
// have is the observed state (for adopting). Outcomes are in the order of ops.
func (e *Engine) decideAndApply(ctx context.Context, u *User, st UserState, ops []Op, have *Target, waitCall, policies bool) []Outcome {
	out := make([]Outcome, len(ops))
	var (
		apply   []Op
		at      []int
		adopted *Target
		adopts  []int
	)
	device, busy := "", false
	if waitCall {
		device, busy = onCall(e.opts.Devices, u)
	}
	for i, op := range ops {
		pol := PolicyEnforce
		if policies && KindOf(op.Kind) != "" {
			pol = e.opts.Policies.Of(KindOf(op.Kind))
		}
		switch {
		case pol == PolicyReport:
			out[i] = Outcome{Op: op, Result: ResultReported, Note: "left as it is: the " + string(KindOf(op.Kind)) + " policy is report"}
		case pol == PolicyAdopt && have != nil:
			if adopted == nil {
				adopted = NewTarget()
				if st.Adopted != nil {
					overlayInto(adopted, st.Adopted)
				}
			}
			adopt(adopted, op, have)
			adopts = append(adopts, i)
			out[i] = Outcome{Op: op, Result: ResultAdopted, Note: "the PBX's value is now the desired state, until the next switch"}
		case busy && isQueueOp(op.Kind):
			out[i] = Outcome{Op: op, Result: ResultDeferred, Note: "waiting for the call on " + device + " to end"}
		default:
			apply = append(apply, op)
			at = append(at, i)
		}
	}
	if adopted != nil {
		if err := e.opts.States.SaveAdopted(ctx, u.ID, st.Version, adopted); err != nil {
			for _, i := range adopts {
				out[i] = Failed(out[i].Op, fmt.Errorf("adopt: %w", err))
			}
		}
	}
	for k, o := range e.apply(ctx, u, apply) {
		out[at[k]] = o
	}
	return out
}

func isQueueOp(k OpKind) bool {
	switch k {
	case OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty:
		return true
	}
	return false
}

// desired compiles a user's stored state into the PBX state it means.
func (e *Engine) desired(ctx context.Context, u *User, st UserState) (*Target, error) {
	profiles, err := e.profilesOf(ctx, u)
	if err != nil {
		return nil, err
	}
	return e.compile(u, st, profiles), nil
}

// compile is the PBX state a user's stored state means, with what it adopted from the PBX.
func (e *Engine) compile(u *User, st UserState, profiles []*Profile) *Target {
	t := Compile(u, e.intentOf(u, st, profiles), Active{Profile: findProfile(profiles, st.Profile), Info: st.Info}, profiles, e.opts.Naming)
	overlay(t, st.Adopted)
	return t
}

// intentOf is what a user's stored state means in the model's terms: the fold of their
// lineage, with the actions their personal profiles may no longer run left out.
func (e *Engine) intentOf(u *User, st UserState, profiles []*Profile) Intent {
	return FoldSteps(u, st.lineage(), profiles, e.allow(u))
}

// allow says which actions of a profile run for u: every action of a system-wide profile,
// and the actions of u's personal profiles that the catalog's rules allow now (a profile may
// have been stored under looser rules, or by a presenced that had none).
func (e *Engine) allow(u *User) func(*Profile, *Action) bool {
	return func(p *Profile, a *Action) bool {
		if !p.Personal() {
			return true
		}
		if err := e.opts.Catalog.CheckPersonalAction(u, *a); err != nil {
			e.metrics.refusedActions.Inc()
			e.log.Debug("action of a personal profile refused", "user", u.ID, "profile", p.ID, "action", a.String(), "err", err)
			return false
		}
		return true
	}
}

// finish records what a switch, repair or reconcile left on the PBX, journals it when it did
// something or found something new, counts it, and schedules a repair when an operation
// failed.
func (e *Engine) finish(u *User, kind string, res *SwitchResult) {
	var reported, deferred []Op
	failed, changed := false, false
	for _, o := range res.Outcomes {
		switch o.Result {
		case ResultReported:
			reported = append(reported, o.Op)
		case ResultDeferred:
			deferred = append(deferred, o.Op)
		case ResultFailed:
			failed = failed || o.Op.Kind != OpWebhook
			changed = true
		case ResultApplied, ResultAdopted:
			changed = true
		}
	}
	e.retryMu.Lock()
	prev := e.drift[u.ID]
	if prev == nil {
		prev = &driftRecord{}
	}
	newReported, newDeferred := newOps(prev.reported, reported), newOps(prev.deferred, deferred)
	settled := len(prev.reported)+len(prev.deferred) > 0 && len(reported)+len(deferred) == 0
	if len(reported)+len(deferred) == 0 {
		delete(e.drift, u.ID)
	} else {
		e.drift[u.ID] = &driftRecord{reported: reported, deferred: deferred}
	}
	if res.InSync {
		delete(e.outOfSync, u.ID)
	} else {
		e.outOfSync[u.ID] = true
	}
	e.metrics.outOfSync.Set(float64(len(e.outOfSync)))
	e.retryMu.Unlock()

	if kind != "switch" {
		e.metrics.drift(res.Outcomes, newReported, newDeferred)
	}
	if kind == "switch" || changed || len(newReported)+len(newDeferred) > 0 || settled {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := e.opts.States.AppendJournal(ctx, u.ID, JournalEntry{SwitchEvent: res.SwitchEvent, Kind: kind,
			Outcomes: res.Outcomes, InSync: res.InSync}); err != nil {
			e.log.Error("journal not written", "user", u.ID, "err", err)
		}
		cancel()
	}
	for _, o := range res.Outcomes {
		e.metrics.op(o)
		switch o.Result {
		case ResultFailed:
			e.log.Warn("operation failed", "user", u.ID, "op", o.Op.String(), "err", o.Error)
		case ResultAdopted:
			e.log.Info("drift adopted", "user", u.ID, "op", o.Op.String())
		}
	}
	for _, op := range newReported {
		e.log.Warn("drift reported, not repaired (policy report)", "user", u.ID, "op", op.String())
	}
	for _, op := range newDeferred {
		e.log.Info("queue change waits for the user's call to end", "user", u.ID, "op", op.String())
	}
	if failed {
		e.scheduleRetry(u.ID)
	} else {
		e.clearRetry(u.ID)
	}
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

// apply hands each concern its operations, concern by concern in the order the plan names
// them, and returns the outcomes in plan order.
func (e *Engine) apply(ctx context.Context, u *User, ops []Op) []Outcome {
	if len(ops) > 0 {
		e.retryMu.Lock()
		n := e.nudges[u.ID]
		if n == nil {
			n = &nudge{}
			e.nudges[u.ID] = n
		}
		n.applied = e.now()
		e.retryMu.Unlock()
	}
	outcomes := make([]Outcome, len(ops))
	for i := 0; i < len(ops); {
		c := e.byKind[ops[i].Kind]
		j := i + 1
		for j < len(ops) && e.byKind[ops[j].Kind] == c {
			j++
		}
		if c == nil {
			for k := i; k < j; k++ {
				outcomes[k] = Outcome{Op: ops[k], Result: ResultFailed, Error: "no concern applies " + string(ops[k].Kind)}
			}
		} else {
			got := c.Apply(ctx, u, ops[i:j])
			for k := i; k < j; k++ {
				if k-i < len(got) {
					outcomes[k] = got[k-i]
				} else {
					outcomes[k] = Outcome{Op: ops[k], Result: ResultFailed, Error: c.Name() + " reported no outcome"}
				}
			}
		}
		i = j
	}
	return outcomes
}

// inSync reports whether the PBX matches the desired state after these outcomes: nothing
// failed (but a webhook), was only reported, or waits for a call to end.
func inSync(outcomes []Outcome) bool {
	for _, o := range outcomes {
		switch {
		case o.Result == ResultFailed && o.Op.Kind != OpWebhook, o.Result == ResultReported, o.Result == ResultDeferred:
			return false
		}
	}
	return true
}

func (e *Engine) scheduleRetry(id UserID) {
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if e.closed {
		return
	}
	r := e.retries[id]
	if r == nil {
		r = &retry{}
		e.retries[id] = r
	} else if r.timer != nil && r.timer.Stop() {
		e.wg.Done() // the stopped timer will not run
	}
	delay := e.opts.RetryMin << min(r.attempt, 16)
	if delay > e.opts.RetryMax || delay <= 0 {
		delay = e.opts.RetryMax
	}
	delay = delay/2 + rand.N(delay/2+1) // jitter: a fleet of failed users does not retry in step
	r.attempt++
	r.due = e.now().Add(delay)
	e.metrics.pendingRetries.Set(float64(len(e.retries)))
	// Counted while scheduled (not when it fires), so Close never waits while a timer adds.
	e.wg.Add(1)
	r.timer = time.AfterFunc(delay, func() {
		defer e.wg.Done()
		if e.ctx.Err() != nil {
			return
		}
		if _, err := e.Repair(e.ctx, id); err != nil {
			e.log.Warn("repair failed", "user", id, "err", err)
			e.scheduleRetry(id)
		}
	})
}

func (e *Engine) clearRetry(id UserID) {
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if r := e.retries[id]; r != nil {
		if r.timer.Stop() {
			e.wg.Done()
		}
		delete(e.retries, id)
		e.metrics.pendingRetries.Set(float64(len(e.retries)))
	}
}

// nextRetry reports when a repair of the user is due, if one is.
func (e *Engine) nextRetry(id UserID) (time.Time, int, bool) {
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if r := e.retries[id]; r != nil {
		return r.due, r.attempt, true
	}
	return time.Time{}, 0, false
}

// profilesOf lists the user's profiles: system-wide ones, then personal ones.
func (e *Engine) profilesOf(ctx context.Context, u *User) ([]*Profile, error) {
	personal, err := e.opts.States.PersonalProfiles(ctx, u.ID)
	var corrupt *CorruptError
	if err != nil && !errors.As(err, &corrupt) {
		return nil, err
	}
	if err != nil {
		e.log.Error("personal profile unreadable, left out", "user", u.ID, "err", err)
	}
	return append(slices.Clone(e.opts.Catalog.Profiles), personal...), nil
}

func findProfile(profiles []*Profile, id string) *Profile {
	for _, p := range profiles {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func sortProfiles(ps []*Profile) {
	slices.SortFunc(ps, func(a, b *Profile) int { return cmp.Compare(a.ID, b.ID) })
}

// RepairSummary is what RepairAll did.
type RepairSummary struct {
	Users      int           // users presenced has switched, all checked
	Drifted    int           // users whose PBX state differed from their desired state
	Repaired   int           // users whose PBX state had drifted and was put back
	Failed     int           // users still out of sync (a repair is scheduled for each)
	Took       time.Duration // from start to the last repair done
	RoundTrips uint64        // AMI actions sent meanwhile (EngineOptions.RoundTrips), reads and repairs
}

// RepairAll is the full reconcile: it checks every user presenced has switched against the PBX
// and deals with whatever drifted as the policies say, through the same plan and apply as a
// switch. It runs after Asterisk became ready (a restart forgets dynamic queue members without
// persistentmembers, a reload can drop them), at startup (the PBX may have changed while
// presenced was down) and periodically (astdb changes have no events).
//
// One bulk read of the PBX serves every user: its round trips do not grow with the number of
// users. Only the users found drifted (or with drift on record) are then repaired one by one,
// under their lock, at most parallel at a time: from that read when their state did not change
// since, else on a fresh one.
func (e *Engine) RepairAll(ctx context.Context, parallel int) (RepairSummary, error) {
	start := e.now()
	var rt0 uint64
	if e.opts.RoundTrips != nil {
		rt0 = e.opts.RoundTrips()
	}
	users := e.opts.Catalog.Users
	ids := make([]UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	states, err := e.opts.States.LoadMany(ctx, ids)
	var corrupt *CorruptError
	if err != nil && !errors.As(err, &corrupt) {
		return RepairSummary{}, err
	}
	if err != nil {
		e.log.Error("some user states are unreadable; those users are not repaired", "err", err)
	}
	switched := make([]UserID, 0, len(states))
	for _, id := range ids {
		if _, ok := states[id]; ok {
			switched = append(switched, id)
		}
	}
	personal, err := e.opts.States.PersonalProfilesMany(ctx, switched)
	if err != nil && !errors.As(err, &corrupt) {
		return RepairSummary{}, err
	}
	if err != nil {
		e.log.Error("some personal profiles are unreadable, left out", "err", err)
	}
	want := make(map[UserID]*Target, len(switched))
	for _, id := range switched {
		u, _ := e.opts.Catalog.User(id)
		want[id] = e.compile(u, states[id], append(slices.Clone(e.opts.Catalog.Profiles), personal[id]...))
	}
	have, err := e.obs.read(want)
	if err != nil {
		return RepairSummary{Users: len(switched)}, fmt.Errorf("presence: repair all: %w", err)
	}
	sum := RepairSummary{Users: len(switched)}
	var check []UserID
	e.retryMu.Lock()
	for _, id := range switched {
		drifted := len(Plan(want[id], have[id])) > 0
		if drifted {
			sum.Drifted++
		}
		// Users with drift or a failure on record are checked again too, so that what
		// settled meanwhile is cleared under their lock.
		if drifted || e.drift[id] != nil || e.outOfSync[id] || e.retries[id] != nil {
			check = append(check, id)
		}
	}
	e.retryMu.Unlock()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, max(parallel, 1))
	)
	for _, id := range check {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return sum, fmt.Errorf("presence: repair all: %w", ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := e.repair(ctx, id, false, "", &observed{version: states[id].Version, have: have[id]})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				sum.Failed++
				e.log.Warn("repair failed", "user", id, "err", err)
			case !res.InSync:
				sum.Failed++
			case slices.ContainsFunc(res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }):
				sum.Repaired++
			}
		})
	}
	wg.Wait()
	sum.Took = e.now().Sub(start)
	if e.opts.RoundTrips != nil {
		sum.RoundTrips = e.opts.RoundTrips() - rt0
	}
	e.metrics.reconciled(sum)
	return sum, nil
}

// DeviceChanged tells the engine that one of the user's devices changed state. When the user's
// call ended and queue changes were waiting for it, they are made now.
func (e *Engine) DeviceChanged(id UserID) bool {
	u, ok := e.opts.Catalog.User(id)
	if !ok {
		return false
	}
	if _, busy := onCall(e.opts.Devices, u); busy {
		return false
	}
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if e.closed || e.drift[id] == nil || len(e.drift[id].deferred) == 0 {
		return false
	}
	e.wg.Go(func() {
		if _, err := e.Repair(e.ctx, id); err != nil {
			e.log.Warn("repair after a call ended failed", "user", id, "err", err)
		}
	})
	return true
}

// Nudge asks for a repair of the user soon, because the PBX reported a change of their state
// (a queue member paused or removed by hand, say). Reports within OwnChangeQuiet of presenced
// changing the user's state are its own actions' echo and ignored. Nudges within NudgeDelay
// make one repair; a
// repair that finds nothing to do costs one read. A user whose state keeps being changed back
// (FlapLimit repairs that changed the PBX within FlapWindow) is reported once and not repaired
// again by nudges until the window has passed: presenced does not fight forever. It reports
// whether a repair was scheduled.
func (e *Engine) Nudge(id UserID) bool {
	if _, ok := e.opts.Catalog.User(id); !ok {
		return false
	}
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if e.closed {
		return false
	}
	n := e.nudges[id]
	if n == nil {
		n = &nudge{}
		e.nudges[id] = n
	}
	now := e.now()
	if now.Sub(n.applied) < e.opts.OwnChangeQuiet {
		return false // the echo of presenced's own change
	}
	n.repairs = slices.DeleteFunc(n.repairs, func(t time.Time) bool { return now.Sub(t) > e.opts.FlapWindow })
	if len(n.repairs) == 0 {
		n.reported = false
	}
	if len(n.repairs) >= e.opts.FlapLimit {
		if !n.reported {
			n.reported = true
			e.metrics.flapping.Inc()
			e.log.Warn("the PBX keeps changing this user's state back; reported, not repaired again for now",
				"user", id, "repairs", len(n.repairs), "window", e.opts.FlapWindow)
		}
		return false
	}
	if n.pending {
		return false
	}
	n.pending = true
	e.wg.Add(1)
	time.AfterFunc(e.opts.NudgeDelay, func() {
		defer e.wg.Done()
		e.retryMu.Lock()
		n.pending = false
		e.retryMu.Unlock()
		if e.ctx.Err() != nil {
			return
		}
		res, err := e.Repair(e.ctx, id)
		if err != nil {
			e.log.Warn("repair after a PBX change failed", "user", id, "err", err)
			return
		}
		if slices.ContainsFunc(res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }) {
			e.metrics.driftRepairs.Inc()
			e.retryMu.Lock()
			n.repairs = append(n.repairs, e.now())
			e.retryMu.Unlock()
		}
	})
	return true
}
