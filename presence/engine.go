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
	// RunWait is how long a Switch, Enforce or Check waits for the engine to run (an
	// instance being elected leader) before it fails with ErrNotRunning, or, with a Relay,
	// for some instance to lead before it fails with ErrNoLeader; zero means 10 s.
	RunWait time.Duration
	// Relay, when set, carries the Switch, Enforce, Check and CheckSoon calls asked of this
	// instance while its engine does not run to the one that runs (the leader), and serves
	// those of the others while it runs. Without it they wait for this instance's engine to run.
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
	// RoundTrips, when set, counts the AMI actions sent so far; CheckAll reports how many it
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
//
// Besides Switch, the calls that ask for passes say by their names what they do:
//
//   - Check: one pass over a user, as the policies say (enforce, report, adopt per kind of
//     state; queue changes wait for a call to end); it waits for the pass. The journal calls
//     such a pass a repair.
//   - Enforce: one pass over a user that puts their whole desired state back, whatever the
//     policies say and without waiting for a call; it waits. The journal and the API call it
//     a reconcile.
//   - CheckAll: the full check, every user at once from one bulk read of the PBX, each user
//     found drifted then Checked; it waits and returns a CheckSummary.
//   - CheckSoon and CheckAllSoon: Check and CheckAll asked for without waiting (an event, an
//     edited profile, the periodic timer, lost events).
//   - AsteriskReady: what follows Asterisk becoming ready: the Asterisk-wide state, then
//     CheckAll as if nobody were on a call.
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

// desired compiles a user's stored state into the PBX state it means.
func (e *Engine) desired(ctx context.Context, u *User, st UserState) (*Desired, error) {
	profiles, err := e.profilesOf(ctx, u)
	if err != nil {
		return nil, err
	}
	return e.compile(u, st, profiles), nil
}

// compile is the PBX state a user's stored state means, with what it adopted from the PBX.
func (e *Engine) compile(u *User, st UserState, profiles []*Profile) *Desired {
	t := Compile(u, e.intentOf(u, st, profiles), Active{Profile: FindProfile(profiles, st.Profile), Info: st.Info}, profiles, e.opts.Naming)
	e.withDNDOff(u, &t.Target)
	e.Catalog().unclaimPhones(t, e.opts.Naming)
	overlay(&t.Target, st.Adopted)
	return t
}

// unclaimPhones takes out of t the claims of device map entries of users' own phones: a
// location naming another user's phone rings it, but it stays that user's phone.
func (c *Catalog) unclaimPhones(t *Desired, n Naming) {
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
	// Nobody is bound to a phone no location action can name (a user's own phone, a trunk in
	// a trusted context): the PBX is not asked. Under a burst of calls through a trunk, the
	// read would wait behind every switch's.
	cat := e.Catalog()
	if !cat.IsHotDesk(device) {
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
