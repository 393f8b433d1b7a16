package presence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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
	sv, err := e.save(ctx, t, req)
	if err != nil {
		return nil, err
	}
	u, st := sv.user, sv.state
	hooks := switchWebhooks(u, sv.from, sv.to, req.Info, e.allow(u))
	ev := privateRedacted(st.event(u), sv.from, sv.to)
	res, err := t.await(ctx, workKey{user: u.ID}, priorityHigh, request{version: st.Version, event: st.event(u),
		hooks: hooks, hookEvent: &ev, handoff: sv.handoff})
	if err != nil {
		return nil, err
	}
	out := *res
	out.SwitchEvent, out.State = st.event(u), st
	e.metrics.switched(req.Source, out.InSync, e.now().Sub(start))
	return &out, nil
}

// saved is what a switch saved: the user's new state, with the profiles it switched from
// and to, and what the switch hands its pass.
type saved struct {
	user     *User
	state    UserState
	from, to *Profile
	handoff  *handoff
}

// save writes the state req asks for and returns it with what it was made of; the caller
// holds the user's lock. Before it writes the state, it starts reading the PBX for the desired
// state it compiles to (on t, the running term): the read and the write to Redis go on at
// once. If nothing happened about the user from before the switch loaded their state until
// its pass starts (no event, no pass, no profile edited here: term.untouchedSince), the pass
// uses that read and the state as saved, instead of reading both again.
func (e *Engine) save(ctx context.Context, t *term, req SwitchRequest) (saved, error) {
	u, ok := e.Catalog().User(req.User)
	if !ok {
		return saved{}, fmt.Errorf("%w %q", ErrUnknownUser, req.User)
	}
	if err := e.Catalog().ValidateInfo(req.Info); err != nil {
		return saved{}, err
	}
	for attempt := 0; ; attempt++ {
		h := &handoff{catalog: e.Catalog(), mark: t.mark()}
		st, from, to, profiles, prev, err := e.next(ctx, u, req, nil)
		if err != nil {
			return saved{}, err
		}
		h.want = &e.compile(u, st, profiles).Target
		h.read = e.obs.start(u.ID, h.want)
		st, err = e.opts.States.Save(ctx, u.ID, st)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue // another instance switched this user meanwhile: start over from its state
		}
		if err != nil {
			return saved{}, err
		}
		h.state, h.profiles = st, profiles
		h.state.Record = prev.Record
		if h.state.Record == nil {
			h.state.Record = &Record{} // what Save writes for a user's first state
		}
		return saved{user: u, state: st, from: from, to: to, handoff: h}, nil
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
	have, err := e.obs.observe(ctx, u.ID, &want.Target)
	if err != nil {
		res.Outcomes = []Outcome{ObserveError(err)}
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
