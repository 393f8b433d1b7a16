package presence

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// UserStatus is everything about one user's presence: the active profile and why, what the PBX
// should show, what it shows, and the difference.
type UserStatus struct {
	User     *User     `json:"user"`
	State    UserState `json:"state"`
	Switched bool      `json:"switched"` // false for a user presenced has never switched
	Desired  *Desired  `json:"desired,omitempty"`
	Observed *Target   `json:"observed,omitempty"`
	// Drift lists the operations that would bring the PBX in line; empty when in sync.
	Drift []Op `json:"drift"`
	// Differences says the same in words, with the policy that applies to each.
	Differences []Difference `json:"differences"`
	// Warnings are what the user should know: their device status does not match their
	// profile, or a device they use will not ring in it.
	Warnings []Warning `json:"warnings"`
	// Pending lists the queue changes waiting for the user's call to end.
	Pending []Op `json:"pending"`
	// OnCall names the user's device that is in a call, if one is.
	OnCall string `json:"on_call,omitempty"`
	// ObserveError says why the PBX could not be read (then Observed and Drift are empty).
	ObserveError string `json:"observe_error,omitempty"`
	// RepairDue is when the next repair runs, after a failure.
	RepairDue     *time.Time `json:"repair_due,omitempty"`
	RepairAttempt int        `json:"repair_attempt,omitempty"`
}

// StatusOptions refines Status.
type StatusOptions struct {
	// Device is the device the asking client runs on (e.g. "PJSIP/1001"): the status warns when
	// the active profile does not ring it. Empty means every device of the user's that the PBX
	// reports reachable.
	Device string
}

// Status reads the user's state and the PBX and reports the drift between them.
func (e *Engine) Status(ctx context.Context, id UserID) (*UserStatus, error) {
	return e.StatusWith(ctx, id, StatusOptions{})
}

// StatusWith is Status with options.
func (e *Engine) StatusWith(ctx context.Context, id UserID, opts StatusOptions) (*UserStatus, error) {
	u, ok := e.Catalog().User(id)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	st, found, err := e.opts.States.Load(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	s := &UserStatus{User: u, State: st, Switched: found, Drift: []Op{}, Differences: []Difference{},
		Warnings: []Warning{}, Pending: []Op{}}
	// What the last pass found is in Redis: every instance answers the same.
	rec := st.Record
	if rec != nil {
		if rec.RetryAt != nil {
			due := *rec.RetryAt
			s.RepairDue, s.RepairAttempt = &due, rec.Attempts
		}
		s.OnCall = rec.OnCall
		s.Pending = append(s.Pending, rec.Deferred...)
	}
	if !found {
		return s, nil
	}
	s.Desired, err = e.desired(ctx, u, st)
	if err != nil {
		return nil, err
	}
	devices := online(rec, u)
	if opts.Device != "" {
		devices = []string{opts.Device}
	}
	if quiet := notRinging(&s.Desired.Target, e.opts.Naming, u, devices); len(quiet) > 0 {
		s.Warnings = append(s.Warnings, willNotRingWarning(quiet))
	}
	s.Observed, err = e.obs.observeNow(ctx, u.ID, &s.Desired.Target)
	if err != nil {
		s.ObserveError = err.Error()
		return s, nil
	}
	if ops := Plan(s.Desired, s.Observed); ops != nil {
		s.Drift = ops
		for _, op := range ops {
			d := describe(op, s.Observed, e.opts.Naming, u.Extension)
			d.Policy, _ = e.policyOf(op, u)
			if pol := e.opts.Policies[DriftDND]; pol == PolicySwitch && e.isDNDOp(op, u) {
				d.Policy = pol
			}
			s.Differences = append(s.Differences, d)
		}
		s.Warnings = append([]Warning{mismatchWarning(s.Differences)}, s.Warnings...)
	}
	return s, nil
}

// PresenceEntry is what colleagues see of a user. For a user whose active profile is private
// (or cannot be found), colleagues see only Presence, Label (the state's neutral text,
// PresenceLabel) and Since; the user themselves and admins see everything.
type PresenceEntry struct {
	User      UserID `json:"user"`
	Name      string `json:"name"`
	Extension string `json:"extension"`
	Profile   string `json:"profile,omitempty"`
	// Label is the profile's name, or the presence state's neutral text when the viewer may not
	// see the profile.
	Label    string    `json:"label,omitempty"`
	Colour   string    `json:"colour,omitempty"`
	Icon     string    `json:"icon,omitempty"`
	Presence string    `json:"presence,omitempty"`
	Info     string    `json:"info,omitempty"`
	Since    time.Time `json:"since,omitempty"`
	// Private tells a viewer who sees everything (the user, an admin) that colleagues see only
	// the presence state and its neutral text.
	Private bool `json:"private,omitempty"`
	// OnCall is true while one of the user's devices is in a call (as the last look at the
	// PBX found).
	OnCall bool `json:"on_call,omitempty"`
}

// EveryoneOptions says who asks for everyone's presence.
type EveryoneOptions struct {
	// Viewer is the user asking: their own entry is complete. Empty when no user asks.
	Viewer UserID
	// Admin sees every entry complete.
	Admin bool
}

// Everyone returns every user's presence, in configuration order, as opts's viewer may see it:
// one Redis round trip for all states and one for all personal profiles. A user whose record
// cannot be read is left out (the StateStore logs the key once and counts it); the others are
// answered.
func (e *Engine) Everyone(ctx context.Context, opts EveryoneOptions) ([]PresenceEntry, error) {
	users := e.Catalog().Users
	ids := make([]UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	states, err := e.opts.States.LoadMany(ctx, ids)
	if err != nil && !corruptOnly(err) {
		return nil, err
	}
	unreadable := map[string]bool{}
	for _, c := range corruptErrors(err) {
		unreadable[c.Key] = true
	}
	switched := make([]UserID, 0, len(states))
	for _, id := range ids {
		if _, ok := states[id]; ok {
			switched = append(switched, id)
		}
	}
	// Unreadable personal profiles are left out, as everywhere: the active profile not found
	// shows as private.
	personal, err := e.opts.States.PersonalProfilesMany(ctx, switched)
	if err != nil && !corruptOnly(err) {
		return nil, err
	}
	out := make([]PresenceEntry, 0, len(users))
	for _, u := range users {
		st, ok := states[u.ID]
		switch {
		case ok:
			profiles := e.Catalog().Profiles
			if own := personal[u.ID]; len(own) > 0 {
				profiles = append(slices.Clone(profiles), own...)
			}
			out = append(out, e.presenceEntry(u, st, profiles, opts.Admin || opts.Viewer == u.ID))
		case !unreadable[e.opts.States.userKey(u.ID)]:
			out = append(out, PresenceEntry{User: u.ID, Name: u.DisplayName(), Extension: u.Extension}) // never switched
		}
	}
	return out, nil
}

// presenceEntry is what a viewer sees of a switched user; full is for the user themselves and
// admins. Colleagues see a private profile, or one that cannot be found, as its presence state
// only.
func (e *Engine) presenceEntry(u *User, st UserState, profiles []*Profile, full bool) PresenceEntry {
	pe := PresenceEntry{User: u.ID, Name: u.DisplayName(), Extension: u.Extension, Since: st.Since,
		OnCall: st.Record != nil && st.Record.OnCall != ""}
	if pv := e.presenceOf(u, st, profiles); pv != nil {
		pe.Presence = pv.State
	}
	p := FindProfile(profiles, st.Profile)
	private := p == nil || p.Visibility == VisibilityPrivate
	if private && !full {
		pe.Label = PresenceLabel(pe.Presence)
		return pe
	}
	pe.Profile, pe.Info, pe.Private = st.Profile, st.Info, private
	if p != nil {
		pe.Label, pe.Colour, pe.Icon = p.Name, p.Colour, p.Icon
	} else {
		pe.Label = PresenceLabel(pe.Presence)
	}
	return pe
}

// PresenceOf is one user's entry of Everyone, as opts's viewer may see it: what a live view
// sends when the user's state or record changes (StateStore.Changes).
func (e *Engine) PresenceOf(ctx context.Context, id UserID, opts EveryoneOptions) (PresenceEntry, error) {
	u, ok := e.Catalog().User(id)
	if !ok {
		return PresenceEntry{}, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	st, found, err := e.opts.States.Load(ctx, u.ID)
	if err != nil {
		return PresenceEntry{}, err
	}
	if !found {
		return PresenceEntry{User: u.ID, Name: u.DisplayName(), Extension: u.Extension}, nil
	}
	profiles, err := e.profilesOf(ctx, u)
	if err != nil {
		return PresenceEntry{}, err
	}
	return e.presenceEntry(u, st, profiles, opts.Admin || opts.Viewer == u.ID), nil
}

// presenceOf is the presence state the user's stored state means, given their profiles
// (system-wide, then personal).
func (e *Engine) presenceOf(u *User, st UserState, profiles []*Profile) *PresenceValue {
	return e.intentOf(u, st, profiles).Presence
}

// Profiles lists the profiles the user may switch to: system-wide, then personal.
func (e *Engine) Profiles(ctx context.Context, id UserID) ([]*Profile, error) {
	u, ok := e.Catalog().User(id)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	return e.profilesOf(ctx, u)
}

// SaveProfile creates or replaces one of the user's personal profiles. System-wide profiles
// cannot be changed (ErrSystemProfile), nor the active profile (ErrProfileActive).
func (e *Engine) SaveProfile(ctx context.Context, id UserID, p *Profile) error {
	u, err := e.personalOwner(id, p)
	if err != nil {
		return err
	}
	unlock := e.lock(u.ID)
	defer unlock()
	if err := e.notActive(ctx, u, p.ID); err != nil {
		return err
	}
	if err := e.checkProfile(ctx, u, p); err != nil {
		return err
	}
	p.Owner = u.ID
	if err := e.opts.States.SavePersonalProfile(ctx, u.ID, p); err != nil {
		return err
	}
	e.profileChanged(u.ID)
	return nil
}

// CheckProfile checks one of the user's personal profiles as SaveProfile does before it stores
// it (whether it is active aside), storing nothing: a *ValidationError naming every problem,
// ErrSystemProfile for the id of a system-wide profile.
func (e *Engine) CheckProfile(ctx context.Context, id UserID, p *Profile) error {
	u, err := e.personalOwner(id, p)
	if err != nil {
		return err
	}
	return e.checkProfile(ctx, u, p)
}

// personalOwner returns the user id names, if p may be one of their personal profiles: not a
// system-wide profile's id (ErrSystemProfile).
func (e *Engine) personalOwner(id UserID, p *Profile) (*User, error) {
	u, ok := e.Catalog().User(id)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	if _, system := e.Catalog().Profile(p.ID); system {
		return nil, fmt.Errorf("%w %q cannot be changed by a user", ErrSystemProfile, p.ID)
	}
	return u, nil
}

// checkProfile validates p against the catalog beside the user's other personal profiles.
func (e *Engine) checkProfile(ctx context.Context, u *User, p *Profile) error {
	others, err := e.opts.States.PersonalProfiles(ctx, u.ID)
	if err != nil {
		return err
	}
	var rest []*Profile
	for _, o := range others {
		if o.ID != p.ID {
			rest = append(rest, o)
		}
	}
	return e.Catalog().ValidateProfile(u, p, rest)
}

// profileChanged asks for a pass over the user after one of their personal profiles changed
// or went: their desired state is compiled from their profiles, so what the old version put
// there and the new one does not is no longer desired, and what the new one says is.
func (e *Engine) profileChanged(id UserID) { e.CheckSoon(id) }

// DeleteProfile removes one of the user's personal profiles.
func (e *Engine) DeleteProfile(ctx context.Context, id UserID, pid string) error {
	u, ok := e.Catalog().User(id)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	if _, system := e.Catalog().Profile(pid); system {
		return fmt.Errorf("%w %q cannot be deleted by a user", ErrSystemProfile, pid)
	}
	unlock := e.lock(u.ID)
	defer unlock()
	if err := e.notActive(ctx, u, pid); err != nil {
		return err
	}
	deleted, err := e.opts.States.DeletePersonalProfile(ctx, u.ID, pid)
	if err != nil {
		return err
	}
	if !deleted {
		return fmt.Errorf("%w %q", ErrUnknownProfile, pid)
	}
	e.profileChanged(u.ID)
	return nil
}

func (e *Engine) notActive(ctx context.Context, u *User, pid string) error {
	st, _, err := e.opts.States.Load(ctx, u.ID)
	if err != nil {
		return err
	}
	if st.Profile == pid {
		return fmt.Errorf("%w: %q is %s's active profile; switch to another one first", ErrProfileActive, pid, u.ID)
	}
	return nil
}

// Journal returns up to n of the user's newest switches and repairs, newest first.
func (e *Engine) Journal(ctx context.Context, id UserID, n int64) ([]JournalEntry, error) {
	if _, ok := e.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUser, id)
	}
	return e.opts.States.Journal(ctx, id, n)
}

// UserSummary is one user on an admin's overview: their whole presence entry and what the
// engine's last look at their PBX state found.
type UserSummary struct {
	PresenceEntry
	// Checked is false until the engine has looked at the user's PBX state.
	Checked bool `json:"checked"`
	// InSync is false while something failed, was only reported, or waits for a call.
	InSync bool `json:"in_sync"`
	// Reported, Deferred and Failed count the differences left under the report policy, the
	// queue changes waiting for a call to end, and the operations that failed.
	Reported int `json:"reported"`
	Deferred int `json:"deferred"`
	Failed   int `json:"failed"`
}

// Overview returns every user's summary, in configuration order, for admins: one read of
// everyone's presence (Everyone) and one of their records.
func (e *Engine) Overview(ctx context.Context) ([]UserSummary, error) {
	all, err := e.Everyone(ctx, EveryoneOptions{Admin: true})
	if err != nil {
		return nil, err
	}
	ids := make([]UserID, len(all))
	for i, pe := range all {
		ids[i] = pe.User
	}
	states, err := e.opts.States.LoadMany(ctx, ids)
	if err != nil && !corruptOnly(err) {
		return nil, err
	}
	out := make([]UserSummary, len(all))
	for i, pe := range all {
		s := UserSummary{PresenceEntry: pe, InSync: true}
		if rec := states[pe.User].Record; rec != nil {
			s.Checked, s.InSync = true, rec.InSync
			s.Reported, s.Deferred, s.Failed = len(rec.Reported), len(rec.Deferred), len(rec.Failed)
		}
		out[i] = s
	}
	return out, nil
}

// Matches reports whether the summary passes an overview filter: "" (everyone),
// "out_of_sync", "reported" (drift left under the report policy) or "on_call".
func (s UserSummary) Matches(filter string) bool {
	switch filter {
	case "":
		return true
	case "out_of_sync":
		return !s.InSync
	case "reported":
		return s.Reported > 0
	case "on_call":
		return s.OnCall
	}
	return false
}
