package presence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors the engine returns; the API maps them to HTTP statuses.
var (
	ErrUnknownUser    = errors.New("unknown user")
	ErrUnknownProfile = errors.New("unknown profile")
	ErrProfileActive  = errors.New("profile is active")
	ErrSystemProfile  = errors.New("system-wide profile")
	// ErrNotRunning means the engine is not the one writing to Asterisk (Run is not running):
	// a standby, or a daemon shutting down.
	ErrNotRunning = errors.New("presence: the engine is not running")
	// ErrStateChanged means a switch's Expect did not hold: the user's state changed since.
	ErrStateChanged = errors.New("presence: the user's state changed meanwhile")
)

// EngineOptions configures an Engine.
type EngineOptions struct {
	Catalog  *Catalog
	Naming   Naming
	States   *StateStore
	Concerns []Concern // applied in this order
	// Watchers report PBX events that concern users (see Watcher): the concerns that watch
	// their own events, the users' phones. Run runs them.
	Watchers []Watcher
	// Workers is how many keys (users) the engine works on at once; zero means
	// DefaultWorkers. A worker mostly waits for Redis and Asterisk (the concerns bound the AMI
	// actions in flight), and the PBX reads of the users being worked on share batches: the
	// more work at once, the fewer and larger the reads.
	Workers int
	// RunWait is how long a switch, a reconcile or a repair waits for the engine to run (an
	// instance being elected leader) before it fails with ErrNotRunning, or, with a Relay,
	// for some instance to lead before it fails with ErrNoLeader; zero means 10 s.
	RunWait time.Duration
	// Relay, when set, carries the switches, reconciles and repairs asked of this instance
	// while its engine does not run to the one that runs (the leader), and serves those of the
	// others while it runs. Without it they wait for this instance's engine to run.
	Relay *Relay
	// CheckInterval is how often Run checks every user against the PBX (astdb changes send no
	// events); zero means never (tests), the daemon sets reconcile.interval.
	CheckInterval time.Duration
	// Globals are the global variables presenced itself owns, with their values (the Stasis
	// application of this instance, which the shipped dialplan reads): the desired state of the
	// Asterisk-wide key, put back like a user's state by the instance that runs.
	Globals map[string]string
	// ObserveTimeout bounds one batched read of the PBX; zero means 10 s.
	ObserveTimeout time.Duration
	// RetryMin and RetryMax bound the backoff of repairs after a failed apply; zero means
	// 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// FlapLimit repairs of one user that changed the PBX within FlapWindow mean someone keeps
	// changing it back: the user's state is then reported, not repaired, until the window has
	// passed (a switch or a reconcile still applies). Zero means 5 and 1 minute.
	FlapLimit  int
	FlapWindow time.Duration
	// Policies says, per kind of state, what a repair does about drift: enforce (put it back),
	// report (warn) or adopt (accept the PBX's value); for the kind dnd also switch (the DND
	// key of a phone switches profiles, DNDKey). Nil enforces everything.
	Policies Policies
	// DNDKey configures the policy switch of the kind dnd (dndkey.go).
	DNDKey DNDKeyOptions
	// Devices reports the state of the users' own devices. A user on a call keeps their queue
	// state until the call ends (repairs and automatic switches wait, visibly), and the status
	// warns about a device in use that the profile does not ring. Nil: nobody is on a call.
	Devices DeviceStates
	// ArchiveKeys, when set, names the keys of other packages that belong to a user (their
	// trigger records, personal schedule): they are archived with the user's state when a
	// reload removed the user (StateStore.Archive).
	ArchiveKeys func(UserID) []string
	// RoundTrips, when set, counts the AMI actions sent so far; RepairAll reports how many it
	// took.
	RoundTrips func() uint64
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine switches users between profiles and keeps the PBX in line with what they chose.
//
// All work on the PBX goes through one keyed, level-triggered work queue, while Run runs: a
// switch, a reconcile, a PBX event, a retry, the periodic and the Asterisk-ready checks only
// add a key (a user, the Asterisk-wide state, or everyone) and a fixed pool of workers takes
// keys off it, one worker per key at a time. A worker's pass compares the desired state with
// what the PBX shows and deals with every difference (see pass): an event is a reason to look,
// never a verdict, so the echo of presenced's own change finds nothing to do and a change by
// hand is found whenever it arrives.
type Engine struct {
	opts    EngineOptions
	log     *slog.Logger
	metrics *engineMetrics
	obs     *observer
	byKind  map[OpKind]Concern
	now     func() time.Time

	locksMu sync.Mutex
	locks   map[UserID]*userLock

	runMu sync.Mutex
	run   *term // the running term of Run; nil while not running

	// catalog is the users and system-wide profiles in force (SetCatalog replaces them).
	catalog atomic.Pointer[Catalog]
	// retireMu guards retired: the users whose PBX state a new catalog changed under them
	// (removed, redefined, or in a changed profile), as the catalog before defined them.
	retireMu sync.Mutex
	retired  map[UserID]retiree
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

// DefaultWorkers is EngineOptions.Workers when it is zero. A mass switch of 1,000 users took
// 1.5-1.9 times the naive client's time with 64 workers, 0.9-1.5 times with 1,024, its PBX read
// in 2-10 batches (docs/BENCHMARKS.md).
const DefaultWorkers = 1024

// NewEngine checks the options and returns an engine; Run makes it work.
func NewEngine(opts EngineOptions) (*Engine, error) {
	if opts.Catalog == nil || opts.States == nil {
		return nil, errors.New("presence: EngineOptions.Catalog and States are required")
	}
	if err := opts.Naming.Validate(); err != nil {
		return nil, err
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("presence: EngineOptions.Workers must not be negative, got %d", opts.Workers)
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.ObserveTimeout == 0 {
		opts.ObserveTimeout = 10 * time.Second
	}
	if opts.RunWait == 0 {
		opts.RunWait = 10 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 500 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.FlapLimit == 0 {
		opts.FlapLimit = 5
	}
	if opts.FlapWindow == 0 {
		opts.FlapWindow = time.Minute
	}
	if err := opts.Policies.Validate(); err != nil {
		return nil, err
	}
	if err := opts.DNDKey.Validate("DNDKey", nil); err != nil {
		return nil, err
	}
	if opts.DNDKey.Switches == 0 {
		opts.DNDKey.Switches = DefaultDNDKeySwitches
	}
	if opts.DNDKey.Window == 0 {
		opts.DNDKey.Window = DefaultDNDKeyWindow
	}
	if opts.DNDKey.Fallback == "" {
		opts.DNDKey.Fallback = PolicyEnforce
	}
	e := &Engine{
		opts:    opts,
		log:     opts.Logger,
		byKind:  map[OpKind]Concern{},
		now:     opts.Now,
		locks:   map[UserID]*userLock{},
		retired: map[UserID]retiree{},
	}
	e.catalog.Store(opts.Catalog)
	e.metrics = newEngineMetrics(opts.Registerer, opts.States, e.Catalog)
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
	return e, nil
}

// Catalog is the engine's users and system-wide profiles.
func (e *Engine) Catalog() *Catalog { return e.catalog.Load() }

// lock serialises the changes of one user's stored state (a switch's save, a personal
// profile's edit) and returns its unlock. The work on the PBX is serialised by the queue.
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
	User    UserID `json:"user"`
	Profile string `json:"profile"`
	Info    string `json:"info,omitempty"`
	Source  Source `json:"source"`
	Actor   string `json:"actor,omitempty"`
	// Until, when set, is when the profile is meant to end; it is recorded in the state for
	// the "why" (package trigger schedules the return).
	Until time.Time `json:"until,omitzero"`
	// Expect, when set, makes the switch happen only if the user's state is still the one
	// looked at (its version and since); otherwise it fails with ErrStateChanged and nothing is
	// written. With the versioned save it makes "switch only if nothing changed since I
	// looked" atomic across instances.
	Expect *Expectation `json:"expect,omitempty"`
}

// Expectation is the state a switch expects the user to be in (SwitchRequest.Expect).
type Expectation struct {
	Version int64     `json:"version"`
	Since   time.Time `json:"since"`
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

	journal *JournalEntry // what the pass journals, written with the record (term.record)
	dnd     *bool         // the DND the PBX showed in step with the desired state (Record.DND)
}

// Switch puts the user in the requested profile: it records the new desired state in Redis
// first (so whatever happens next, the state is repaired towards it), then hands the user to
// the work queue ahead of repairs and waits for the pass that applies it: that pass reads the
// PBX, applies only what differs, calls the switch's webhooks, and journals every operation's
// outcome, which Switch returns. A failed operation is retried with backoff.
func (e *Engine) Switch(ctx context.Context, req SwitchRequest) (*SwitchResult, error) {
	start := e.now()
	u, ok := e.Catalog().User(req.User)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	if err := e.Catalog().ValidateInfo(req.Info); err != nil {
		return nil, err
	}
	t, err := e.awaitTerm(ctx)
	if err != nil {
		return nil, err
	}
	if t == nil { // another instance runs the engine
		r := req
		return e.opts.Relay.call(ctx, relayRequest{Op: relaySwitch, Switch: &r}, e.opts.RunWait)
	}
	// One user's switches are made one after the other, each applied (and journaled) before
	// the next is saved, so that every switch has its pass and the journal their order.
	unlock := e.lock(u.ID)
	defer unlock()
	u, st, from, to, err := e.save(ctx, req)
	if err != nil {
		return nil, err
	}
	hooks := switchWebhooks(u, from, to, req.Info, e.allow(u))
	ev := privateRedacted(st.event(u), from, to)
	res, err := t.await(ctx, workKey{user: u.ID}, priorityHigh, request{version: st.Version, event: st.event(u),
		hooks: hooks, hookEvent: &ev})
	if err != nil {
		return nil, err
	}
	out := *res
	out.SwitchEvent, out.State = st.event(u), st
	e.metrics.switched(req.Source, out.InSync, e.now().Sub(start))
	return &out, nil
}

// save writes the state req asks for and returns it with what it was made of; the caller
// holds the user's lock.
func (e *Engine) save(ctx context.Context, req SwitchRequest) (u *User, st UserState, from, to *Profile, err error) {
	u, ok := e.Catalog().User(req.User)
	if !ok {
		return nil, st, nil, nil, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	if err := e.Catalog().ValidateInfo(req.Info); err != nil {
		return nil, st, nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		st, from, to, _, _, err = e.next(ctx, u, req, nil)
		if err != nil {
			return nil, st, nil, nil, err
		}
		st, err = e.opts.States.Save(ctx, u.ID, st)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue // another instance switched this user meanwhile: start over from its state
		}
		if err != nil {
			return nil, st, nil, nil, err
		}
		return u, st, from, to, nil
	}
}

// next computes the state switching u as req asks makes of the stored one (prev). A candidate
// (PreviewOptions.Candidate) stands in for the stored personal profile of its id.
func (e *Engine) next(ctx context.Context, u *User, req SwitchRequest, candidate *Profile) (st UserState, from, to *Profile, profiles []*Profile, prev UserState, err error) {
	prev, _, profiles, err, perr := e.loadUser(ctx, u)
	if candidate != nil && perr == nil {
		profiles = withCandidate(profiles, candidate)
	}
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		// Nothing is lost: the unreadable record stays for an admin to look at until this
		// switch replaces it, and the switch starts from a clean slate.
		e.log.Error("user state unreadable; switching from an empty state", "user", u.ID, "err", err)
		prev = UserState{}
		prev.Version, err = e.opts.States.Version(ctx, u.ID)
	}
	if err != nil {
		return st, nil, nil, nil, prev, err
	}
	if x := req.Expect; x != nil && (prev.Version != x.Version || !prev.Since.Equal(x.Since)) {
		return st, nil, nil, nil, prev, fmt.Errorf("%w: %s is at version %d, the switch expected %d", ErrStateChanged, u.ID, prev.Version, x.Version)
	}
	if perr != nil {
		return st, nil, nil, nil, prev, perr
	}
	to = FindProfile(profiles, req.Profile)
	if to == nil {
		return st, nil, nil, nil, prev, fmt.Errorf("%w %q", ErrUnknownProfile, req.Profile)
	}
	from = FindProfile(profiles, prev.Profile)
	allow := e.allow(u)
	steps := prev.lineage()
	if from != nil {
		steps = append(steps, Step{Profile: from.ID, Exit: true, Info: req.Info})
	}
	steps = CompactSteps(u, append(steps, Step{Profile: to.ID, Info: req.Info}), profiles, allow)
	st = UserState{
		Profile: to.ID, Previous: prev.Profile, Since: e.now(), Source: req.Source, Actor: req.Actor,
		Info: req.Info, Sticky: to.Sticky, Steps: steps, Version: prev.Version,
	}
	if !req.Until.IsZero() {
		until := req.Until
		st.Until = &until
	}
	return st, from, to, profiles, prev, nil
}

// event is the switch that made st, as the journal and webhooks report it.
func (st UserState) event(u *User) SwitchEvent {
	return SwitchEvent{User: u.ID, Extension: u.Extension, From: st.Previous, To: st.Profile, Info: st.Info,
		Source: st.Source, Actor: st.Actor, At: st.Since}
}

// Preview says what Switch would do, changing nothing: the operations a switch would apply to
// the PBX as it is now (policies and calls aside), and the webhooks it would call.
func (e *Engine) Preview(ctx context.Context, req SwitchRequest) (*SwitchResult, error) {
	return e.PreviewWith(ctx, req, PreviewOptions{})
}

// PreviewOptions refines Preview.
type PreviewOptions struct {
	// Candidate, when set, is one of the user's personal profiles as it is being edited, not
	// stored: it is checked as SaveProfile checks a profile (a *ValidationError, or
	// ErrSystemProfile for the id of a system-wide one) and, for this preview only, replaces the
	// stored personal profile of its id or joins the others. Its Owner is set to the user.
	Candidate *Profile
}

// PreviewWith is Preview with options: e.g. what switching to a profile being edited would do
// (the profile editor's Preview, before saving).
func (e *Engine) PreviewWith(ctx context.Context, req SwitchRequest, opts PreviewOptions) (*SwitchResult, error) {
	u, ok := e.Catalog().User(req.User)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	if err := e.Catalog().ValidateInfo(req.Info); err != nil {
		return nil, err
	}
	var candidate *Profile
	if opts.Candidate != nil {
		c := *opts.Candidate
		if err := e.CheckProfile(ctx, u.ID, &c); err != nil {
			return nil, err
		}
		c.Owner = u.ID
		candidate = &c
	}
	st, from, to, profiles, _, err := e.next(ctx, u, req, candidate)
	if err != nil {
		return nil, err
	}
	ev := st.event(u)
	res := &SwitchResult{SwitchEvent: ev, Preview: true, State: st}
	want := Compile(u, e.intentOf(u, st, profiles), Active{Profile: to, Info: st.Info}, profiles, e.opts.Naming)
	e.Catalog().unclaimPhones(want, e.opts.Naming)
	have, err := e.obs.observe(ctx, u.ID, want)
	if err != nil {
		res.Outcomes = []Outcome{observeFailed(err)}
		return res, nil
	}
	for _, op := range Plan(want, have) {
		res.Outcomes = append(res.Outcomes, Outcome{Op: op, Result: ResultPlanned})
	}
	hookEvent := privateRedacted(ev, from, to)
	for _, h := range switchWebhooks(u, from, to, req.Info, e.allow(u)) {
		res.Outcomes = append(res.Outcomes, Outcome{Op: Op{Kind: OpWebhook, Webhook: &h, Event: &hookEvent}, Result: ResultPlanned})
	}
	res.InSync = inSync(res.Outcomes)
	return res, nil
}

// observeFailed is the outcome of a pass that could not read the PBX.
func observeFailed(err error) Outcome {
	return Outcome{Op: Op{Kind: "observe"}, Result: ResultFailed, Error: err.Error()}
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

// decideAndApply applies ops, except that with policies (a repair) reported and adopted drift
// is recorded instead, and with waitCall queue operations wait while the user is on a call.
// have is the observed state (for adopting). Outcomes are in the order of ops.
func (e *Engine) decideAndApply(ctx context.Context, u *User, st UserState, ops []Op, have *Target, waitCall, policies bool, dnd *dndDecision) []Outcome {
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
	var notes []int // the DND key's fallback: the outcomes that say why
	for i, op := range ops {
		pol, kind := PolicyEnforce, KindOf(op.Kind)
		if policies && kind != "" {
			pol, kind = e.policyOf(op, u)
		}
		dndOp := dnd != nil && e.isDNDOp(op, u)
		if dndOp && !dnd.switching {
			pol = dnd.policy
		}
		switch {
		case dndOp && dnd.switching:
			out[i] = Outcome{Op: op, Result: ResultSwitching, Note: dnd.note}
		case dndOp && pol == PolicyReport:
			out[i] = Outcome{Op: op, Result: ResultReported, Note: "left as it is: " + dnd.note}
		case pol == PolicyReport:
			out[i] = Outcome{Op: op, Result: ResultReported, Note: "left as it is: the " + string(kind) + " policy is report"}
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
			if dndOp {
				notes = append(notes, i) // the DND key's fallback enforces: the outcome says why
			}
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
	for _, i := range notes {
		out[i].Note = strings.TrimPrefix(out[i].Note+"; "+dnd.note, "; ")
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
	t := Compile(u, e.intentOf(u, st, profiles), Active{Profile: FindProfile(profiles, st.Profile), Info: st.Info}, profiles, e.opts.Naming)
	e.withDNDOff(u, t)
	e.Catalog().unclaimPhones(t, e.opts.Naming)
	overlay(t, st.Adopted)
	return t
}

// unclaimPhones takes out of t the claims of device map entries of users' own phones: a
// location naming another user's phone rings it, but it stays that user's phone.
func (c *Catalog) unclaimPhones(t *Target, n Naming) {
	for k := range t.Claims {
		if d, ok := n.deviceOfKey(k); ok {
			if _, own := c.PhoneUser(d); own {
				delete(t.Claims, k)
				delete(t.AstDB, k)
			}
		}
	}
}

// BoundTo returns the user bound to hot desk device (a phone that is no user's own) by a
// location action, who holds it: the device map entry on the PBX names the user, and their
// desired state claims it. false when nobody is.
func (e *Engine) BoundTo(ctx context.Context, device string) (*User, bool, error) {
	n := e.opts.Naming
	key, ok := n.DeviceKey(device)
	if !ok {
		return nil, false, nil
	}
	cat := e.Catalog()
	if _, own := cat.PhoneUser(device); own {
		return nil, false, nil
	}
	probe := NewTarget()
	probe.AstDB[key] = nil
	have, err := e.obs.observe(ctx, UserID("*device:"+device), probe)
	if err != nil {
		return nil, false, fmt.Errorf("presence: read the device map entry of %s: %w", device, err)
	}
	v := have.AstDB[key]
	if v == nil {
		return nil, false, nil
	}
	ext, _, ok := ParseDeviceEntry(*v)
	if !ok {
		return nil, false, nil
	}
	u, ok := cat.UserByExtension(ext)
	if !ok {
		return nil, false, nil
	}
	st, found, err := e.opts.States.Load(ctx, u.ID)
	if err != nil || !found {
		return nil, false, err
	}
	profiles, err := e.profilesOf(ctx, u)
	if err != nil {
		return nil, false, err
	}
	want := e.compile(u, st, profiles)
	if d := BoundDesk(want, have, n, u); !strings.EqualFold(d, device) {
		return nil, false, nil
	}
	return u, true, nil
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
		if err := e.Catalog().CheckPersonalAction(u, *a); err != nil {
			e.metrics.refusedActions.Inc()
			e.log.Debug("action of a personal profile refused", "user", u.ID, "profile", p.ID, "action", a.String(), "err", err)
			return false
		}
		return true
	}
}

// apply hands each concern its operations, in plan order, to every concern at once (they change
// different things: a switch costs one round trip, not one per concern), but to the webhooks
// after the rest; it returns the outcomes in plan order.
func (e *Engine) apply(ctx context.Context, u *User, ops []Op) []Outcome {
	outcomes := make([]Outcome, len(ops))
	groups := map[Concern][]int{} // concern → its operations' indexes, in order
	var order []Concern
	for i, op := range ops {
		c := e.byKind[op.Kind]
		if c == nil {
			outcomes[i] = Outcome{Op: op, Result: ResultFailed, Error: "no concern applies " + string(op.Kind)}
			continue
		}
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], i)
	}
	run := func(c Concern) {
		idx := groups[c]
		mine := make([]Op, len(idx))
		for k, i := range idx {
			mine[k] = ops[i]
		}
		got := c.Apply(ctx, u, mine)
		for k, i := range idx {
			if k < len(got) {
				outcomes[i] = got[k]
			} else {
				outcomes[i] = Outcome{Op: ops[i], Result: ResultFailed, Error: c.Name() + " reported no outcome"}
			}
		}
	}
	// The concerns change different things: they apply at once, each its operations in
	// order. Webhooks tell others what was done, so they go after.
	webhooks := func(c Concern) bool { return ops[groups[c][0]].Kind == OpWebhook }
	var wg sync.WaitGroup
	for _, c := range order {
		if !webhooks(c) {
			wg.Go(func() { run(c) })
		}
	}
	wg.Wait()
	for _, c := range order {
		if webhooks(c) {
			run(c)
		}
	}
	return outcomes
}

// noConcern is the concern label of an operation no concern applies.
const noConcern = "none"

// concernOf names the concern that applies operations of kind k, noConcern when none does.
func (e *Engine) concernOf(k OpKind) string {
	if c := e.byKind[k]; c != nil {
		return c.Name()
	}
	return noConcern
}

// inSync reports whether the PBX matches the desired state after these outcomes: nothing
// failed (but a webhook), was only reported, or waits for a call to end.
func inSync(outcomes []Outcome) bool {
	for _, o := range outcomes {
		switch {
		case o.Result == ResultFailed && o.Op.Kind != OpWebhook, o.Result == ResultReported, o.Result == ResultDeferred,
			o.Result == ResultSwitching:
			return false
		}
	}
	return true
}

// profilesOf lists the user's profiles: system-wide ones, then personal ones.
func (e *Engine) profilesOf(ctx context.Context, u *User) ([]*Profile, error) {
	personal, err := e.opts.States.PersonalProfiles(ctx, u.ID)
	return e.withPersonal(u, personal, err)
}

// loadUser reads the user's state and profiles in one round trip (StateStore.LoadUser): the
// state and its error as StateStore.Load returns them, the profiles as profilesOf does.
func (e *Engine) loadUser(ctx context.Context, u *User) (st UserState, found bool, profiles []*Profile, stateErr, profilesErr error) {
	st, found, personal, stateErr, profilesErr := e.opts.States.LoadUser(ctx, u.ID)
	profiles, profilesErr = e.withPersonal(u, personal, profilesErr)
	return st, found, profiles, stateErr, profilesErr
}

// withPersonal is the system-wide profiles, then the personal ones read with err: profiles
// that could not be read are logged and left out; any other error is returned.
func (e *Engine) withPersonal(u *User, personal []*Profile, err error) ([]*Profile, error) {
	var corrupt *CorruptError
	if err != nil && !errors.As(err, &corrupt) {
		return nil, err
	}
	if err != nil {
		e.log.Error("personal profile unreadable, left out", "user", u.ID, "err", err)
	}
	return append(slices.Clone(e.Catalog().Profiles), personal...), nil
}

// withCandidate is profiles with c in place of the profile of its id, or after them.
func withCandidate(profiles []*Profile, c *Profile) []*Profile {
	out := slices.Clone(profiles)
	if i := slices.IndexFunc(out, func(p *Profile) bool { return p.ID == c.ID }); i >= 0 {
		out[i] = c
		return out
	}
	return append(out, c)
}

// FindProfile returns the profile of profiles (a user's, as Engine.Profiles lists them) whose
// ID is id, or nil.
func FindProfile(profiles []*Profile, id string) *Profile {
	for _, p := range profiles {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// FindActivation returns the profile of profiles whose activation number (*55<n>) is n, or
// nil; "" finds nothing.
func FindActivation(profiles []*Profile, n string) *Profile {
	if n == "" {
		return nil
	}
	for _, p := range profiles {
		if p.Activation == n {
			return p
		}
	}
	return nil
}

func sortProfiles(ps []*Profile) {
	slices.SortFunc(ps, func(a, b *Profile) int { return cmp.Compare(a.ID, b.ID) })
}
