package presence

import (
	"context"
	"strings"
	"sync"
)

// Concern is one part of the PBX presenced manages: queue membership (package queue), astdb
// keys and globals (package astdb), lamps and presence (package blf), webhooks. The engine
// observes through every concern at once, plans with Plan, and hands each concern the
// operations of the kinds it applies. Concerns speak AMI; presence does not.
type Concern interface {
	// Name names the concern in logs, metrics and the journal.
	Name() string
	// Kinds lists the operation kinds the concern applies.
	Kinds() []OpKind
	// Observe reads what the PBX holds for everything the wanted targets name that the concern
	// owns, and records it in have (one entry per user of want, already made). Its cost must
	// not grow with the number of users beyond a constant number of round trips to Asterisk
	// (bulk lists such as QueueStatus, DBGetTree, DeviceStateList, PresenceStateList); for a few
	// users it may read what is theirs alone where that costs Asterisk less. It records absent
	// state as nil entries for the keys want names. A concern that follows its part of the
	// PBX through events (its Watcher) may answer from what it knows instead of reading,
	// where that is as current as a read; never when ReadNow(ctx) says the caller wants the
	// PBX read (a full check, a reconcile, a status query).
	Observe(ctx context.Context, want map[UserID]*Target, have map[UserID]*Target) error
	// Apply performs one user's operations and reports one outcome per operation, in the
	// same order. The operations of one plan name distinct things (a queue, an astdb key, a
	// device, a variable, each once), so a concern may send them all at once (ApplyAll) rather
	// than one after the other. Idempotent answers ("Already there", "Not there") are
	// ResultUnchanged.
	Apply(ctx context.Context, u *User, ops []Op) []Outcome
}

// Surveyor is implemented by a Concern that can read what it owns on the PBX before the
// desired states are known. A full check (Engine.CheckAll) surveys while it loads every
// user's state from Redis and compiles it, then has the survey fill each user's observation:
// the PBX is read beside the engine's own work instead of after it. The engine guards against
// what a survey cannot know: a pass that changed a user's PBX state after the survey began
// makes that user's pass look again.
type Surveyor interface {
	// Survey reads, for a check of every user, what the last full check's desired states
	// needed (whole lists: every queue member, whole astdb families, every lamp). It may
	// read nothing (the first time, or when per-user reads are cheaper); Fill then reads.
	Survey(ctx context.Context) (Survey, error)
}

// Survey is what a Surveyor read. Fill records in have what the PBX holds for everything
// want names, as Concern.Observe would, from the survey where it covers it and from a read
// now where it does not.
type Survey interface {
	Fill(ctx context.Context, want, have map[UserID]*Target) error
}

// Result is what became of one operation.
type Result string

// The results.
const (
	ResultApplied   Result = "applied"   // the PBX changed
	ResultUnchanged Result = "unchanged" // the PBX already was so (e.g. "Already there")
	ResultFailed    Result = "failed"    // the operation failed; Error says why
	ResultPlanned   Result = "planned"   // a preview: nothing was done
	ResultReported  Result = "reported"  // drift left as it is under the report policy
	ResultAdopted   Result = "adopted"   // drift accepted as the desired state under the adopt policy
	ResultDeferred  Result = "deferred"  // a queue change waiting for the user's call to end
	// ResultSwitching is drift of the user's DND turned into a profile switch (the drift policy
	// switch: the DND key of their phone); the switch follows as a pass of its own.
	ResultSwitching Result = "switching"
)

// Outcome is the result of one operation.
type Outcome struct {
	Op     Op     `json:"op"`
	Result Result `json:"result"`
	Error  string `json:"error,omitempty"`
	// Note says why an operation was reported, adopted or deferred.
	Note string `json:"note,omitempty"`
}

// opObserve is the kind under which the journal and the API show an ObserveError: no
// operation of the plan, but the reading of the PBX every plan starts from.
const opObserve OpKind = "observe"

// ObserveError is the outcome of a pass (or a preview) that could not read the PBX, and so
// planned nothing: Error says why. It is shown as a failed operation of kind "observe" (an Op
// with that Kind alone), as the journal, the API and the operations counter always showed it.
func ObserveError(err error) Outcome {
	return Outcome{Op: Op{Kind: opObserve}, Result: ResultFailed, Error: err.Error()}
}

// ObserveFailed reports whether o is an ObserveError rather than the outcome of an operation.
func (o Outcome) ObserveFailed() bool { return o.Op.Kind == opObserve }

// Failed builds a failed outcome for op.
func Failed(op Op, err error) Outcome {
	return Outcome{Op: op, Result: ResultFailed, Error: err.Error()}
}

// Watcher is a concern that watches the PBX for changes of the state it applies and says whose
// state they touch. An event is a reason to look, never a verdict: a Watcher does not decide
// what changed, the engine compares the desired state with what the PBX shows again (and the
// echo of presenced's own change finds nothing to do).
type Watcher interface {
	// Watch reports through w until ctx ends (then it returns nil) or it cannot go on.
	Watch(ctx context.Context, w Watch) error
}

// Watch is what a Watcher needs to know and whom it tells.
type Watch struct {
	// Catalog and Naming say whose queue member, lamp or device an event names. Catalog
	// returns the catalog in force, which a reload may replace while the watcher runs.
	Catalog func() *Catalog
	Naming  Naming
	// Changed says that user id's PBX state (or call state) may have changed.
	Changed func(id UserID)
	// All says that anyone's PBX state may have changed and the concern cannot tell whose:
	// events were lost, a module was reloaded. why is logged.
	All func(why string)
	// Saw says that an event showed part of user id's PBX state; agrees tells whether a
	// desired Target agrees with what the event showed. The user gets a pass, as with
	// Changed, unless the desired state the engine last set out to apply for them (and then
	// applied in full) agrees: such an event shows the PBX as presenced wants it (most often
	// presenced's own change arriving), and there is nothing to look at. agrees must only
	// read the Target.
	Saw func(id UserID, agrees func(want *Target) bool)
	// BoundTo returns the user bound to a hot desk (a phone that is no user's own) who holds
	// it (Engine.BoundTo); nil when the watcher's engine cannot tell.
	BoundTo func(ctx context.Context, device string) (*User, bool, error)
}

// ApplyAll performs ops with apply and returns the outcomes in the order of ops. Operations on
// different things (a queue, an astdb key, a device, a variable) run at once, each in its own
// goroutine: over one AMI session their actions go out back to back and their answers come
// back together, one round trip for all instead of one each. Operations on the same thing
// (which one plan never holds, but a caller may) run one after the other, in order.
func ApplyAll(ops []Op, apply func(Op) Outcome) []Outcome {
	out := make([]Outcome, len(ops))
	if len(ops) == 1 {
		out[0] = apply(ops[0])
		return out
	}
	chains := map[string][]int{}
	var order []string
	for i, op := range ops {
		k := op.Queue + "\x00" + op.Key
		if _, ok := chains[k]; !ok {
			order = append(order, k)
		}
		chains[k] = append(chains[k], i)
	}
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Go(func() {
			for _, i := range chains[k] {
				out[i] = apply(ops[i])
			}
		})
	}
	wg.Wait()
	return out
}

// UserIndex maps names (a member interface, a lamp, a device: whatever a watcher finds in
// events) to the user they belong to, built from the catalog in force and built again when a
// reload replaced it. Not safe for concurrent use: one per watcher's event loop.
type UserIndex struct {
	catalog func() *Catalog
	names   func(u *User) []string
	built   *Catalog
	index   map[string]UserID
}

// NewUserIndex indexes the users of catalog() by names(u), lower case.
func NewUserIndex(catalog func() *Catalog, names func(u *User) []string) *UserIndex {
	return &UserIndex{catalog: catalog, names: names}
}

// User returns the user name (any case) belongs to in the catalog in force.
func (x *UserIndex) User(name string) (UserID, bool) {
	if c := x.catalog(); c != x.built {
		x.index = map[string]UserID{}
		for _, u := range c.Users {
			for _, n := range x.names(u) {
				x.index[strings.ToLower(n)] = u.ID
			}
		}
		x.built = c
	}
	id, ok := x.index[strings.ToLower(name)]
	return id, ok
}
