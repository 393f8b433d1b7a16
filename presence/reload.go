package presence

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"time"
)

// A configuration reload replaces the engine's catalog (SetCatalog) while it runs. What the
// PBX holds for a user is what presenced's desired state for them named (Compile); a new
// catalog can change that desired state under a user who did nothing:
//
//   - a removed user: everything presenced put on the PBX for them is taken off (their queue
//     memberships removed, their astdb keys deleted, their lamps set to naming.lamp_off, their
//     presence set to not_set, the global variables their profiles set cleared), and their
//     state, personal profiles and journal are archived in the store (StateStore.Archive);
//   - a redefined user (another extension, other devices or queues) or a user whose profile
//     changed: what the old desired state named and the new one no longer names is taken off
//     the same way, and the rest is put in line through the normal repair path, under the
//     drift policies, journaled as a "reload".
//
// The users concerned are remembered as the old catalog defined them (retired) until a pass
// over them has done so; every instance remembers them, so a standby that becomes the leader
// does what the leader before it did not finish.

// retiree is how the catalog before a reload defined a user whose desired state the reload may
// have changed.
type retiree struct {
	user     *User      // as the old catalog defined them
	profiles []*Profile // the old catalog's system-wide profiles
}

// reloadActor is the actor of the journal entries of a reload.
const reloadActor = "configuration reload"

// CatalogChanges is what a new catalog changed (Engine.SetCatalog).
type CatalogChanges struct {
	Added   []UserID `json:"users_added,omitempty"`
	Removed []UserID `json:"users_removed,omitempty"`
	// Changed are the users defined differently (extension, devices, queues, name, token...).
	Changed []UserID `json:"users_changed,omitempty"`
	// Profiles are the system-wide profiles added, removed or defined differently.
	Profiles []string `json:"profiles_changed,omitempty"`
	// Rules reports that the rules for personal profiles, the limits or the hot desks changed.
	Rules bool `json:"personal_rules_changed,omitempty"`
}

// Empty reports whether nothing changed.
func (c CatalogChanges) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.Changed)+len(c.Profiles) == 0 && !c.Rules
}

// DiffCatalogs reports what cur changes of old. It is pure.
func DiffCatalogs(old, cur *Catalog) CatalogChanges {
	var ch CatalogChanges
	for _, u := range cur.Users {
		switch o, ok := old.User(u.ID); {
		case !ok:
			ch.Added = append(ch.Added, u.ID)
		case !reflect.DeepEqual(o, u):
			ch.Changed = append(ch.Changed, u.ID)
		}
	}
	for _, u := range old.Users {
		if _, ok := cur.User(u.ID); !ok {
			ch.Removed = append(ch.Removed, u.ID)
		}
	}
	for _, p := range cur.Profiles {
		if o, ok := old.Profile(p.ID); !ok || !reflect.DeepEqual(o, p) {
			ch.Profiles = append(ch.Profiles, p.ID)
		}
	}
	for _, p := range old.Profiles {
		if _, ok := cur.Profile(p.ID); !ok {
			ch.Profiles = append(ch.Profiles, p.ID)
		}
	}
	ch.Rules = !reflect.DeepEqual(old.rules, cur.rules) || old.limits != cur.limits || !slices.Equal(old.hotDesks, cur.hotDesks)
	return ch
}

// SetCatalog puts a new catalog (a reloaded configuration, validated) in force at once and
// returns what it changed. Switches, feature codes, the API and the watchers use it from now
// on. The users whose PBX state it may change are remembered as the old catalog defined them;
// while the engine runs (this instance leads) a pass over each of them whose desired state
// did change takes off what no longer belongs (see the comment at the top of reload.go) and
// applies the rest. A standby only remembers them, for when it leads.
func (e *Engine) SetCatalog(c *Catalog) CatalogChanges {
	old := e.catalog.Swap(c)
	ch := DiffCatalogs(old, c)
	candidates := slices.Concat(ch.Removed, ch.Changed)
	if len(ch.Profiles) > 0 || ch.Rules {
		candidates = candidates[:0]
		for _, u := range old.Users {
			candidates = append(candidates, u.ID)
		}
	}
	e.retireMu.Lock()
	for _, id := range candidates {
		if _, ok := e.retired[id]; ok {
			continue // the PBX may still hold what the oldest definition put there
		}
		u, _ := old.User(id)
		e.retired[id] = retiree{user: u, profiles: old.Profiles}
	}
	e.retireMu.Unlock()
	e.log.Info("catalog replaced", "users", len(c.Users), "added", len(ch.Added), "removed", len(ch.Removed),
		"changed", len(ch.Changed), "profiles_changed", ch.Profiles, "personal_rules_changed", ch.Rules)
	if t := e.term(); t != nil && len(candidates) > 0 {
		t.q.Add(reloadKey, priorityHigh)
	}
	return ch
}

// retireeOf returns how the catalog before a reload defined the user, if a pass over them
// has still to deal with the reload.
func (e *Engine) retireeOf(id UserID) (retiree, bool) {
	e.retireMu.Lock()
	defer e.retireMu.Unlock()
	r, ok := e.retired[id]
	return r, ok
}

// retired forgets the user's old definition once a pass dealt with it, unless a later reload
// replaced it meanwhile.
func (e *Engine) forgetRetiree(id UserID, r retiree) {
	e.retireMu.Lock()
	defer e.retireMu.Unlock()
	if cur, ok := e.retired[id]; ok && cur.user == r.user {
		delete(e.retired, id)
	}
}

// passReload sorts the users a reload may concern: those whose desired state the new catalog
// changes (read from the store, compiled under both catalogs, without a look at the PBX) get a
// pass; the others are forgotten.
func (t *term) passReload() {
	e := t.e
	e.retireMu.Lock()
	ids := slices.Sorted(maps.Keys(e.retired))
	e.retireMu.Unlock()
	if len(ids) == 0 {
		t.q.Forget(reloadKey)
		return
	}
	states, err := e.opts.States.LoadMany(t.ctx, ids)
	if err != nil && !corruptOnly(err) {
		e.log.Warn("cannot read the states of the users a reload concerns; tried again", "err", err)
		t.q.AddRateLimited(reloadKey)
		return
	}
	personal, err := e.opts.States.PersonalProfilesMany(t.ctx, ids)
	if err != nil && !corruptOnly(err) {
		e.log.Warn("cannot read the personal profiles of the users a reload concerns; tried again", "err", err)
		t.q.AddRateLimited(reloadKey)
		return
	}
	t.q.Forget(reloadKey)
	cat := e.Catalog()
	passes := 0
	for _, id := range ids {
		r, ok := e.retireeOf(id)
		if !ok {
			continue
		}
		u, present := cat.User(id)
		st, found := states[id]
		if present && !found {
			e.forgetRetiree(id, r) // never switched: presenced put nothing on the PBX for them
			continue
		}
		if present {
			before := e.compile(r.user, st, slices.Concat(r.profiles, personal[id]))
			after := e.compile(u, st, slices.Concat(cat.Profiles, personal[id]))
			if reflect.DeepEqual(before, after) {
				e.forgetRetiree(id, r)
				continue
			}
		}
		passes++
		t.q.Add(workKey{user: id}, priorityHigh)
	}
	e.log.Info("configuration reload: users whose PBX state changes", "users", passes, "looked_at", len(ids))
}

// Teardown is the desired state that takes off what old names and keep does not: queue
// memberships old wants (not those it leaves optional) removed, astdb keys deleted (a claimed
// one only while it holds old's entry), lamps set to lampOff, presence set to not_set, global
// variables cleared. It is pure.
func Teardown(old, keep *Desired, lampOff string) *Desired {
	t := NewDesired()
	t.Interface = old.Interface
	if keep == nil {
		keep = NewDesired()
	}
	for q, m := range old.Queues {
		if _, kept := keep.Queues[q]; kept && keep.Interface == old.Interface {
			continue
		}
		if m != nil && m.Membership != MembershipOptional {
			t.Queues[q] = nil
		}
	}
	for k, v := range old.AstDB {
		if mine, claim := old.Claims[k]; claim {
			// A claim is released (deleted while it holds the old entry) unless keep claims
			// the same: an entry of another extension is claimed anew by keep's pass.
			if kmine, kept := keep.Claims[k]; !kept || kmine != mine {
				t.AstDB[k] = nil
				if t.Claims == nil {
					t.Claims = map[string]string{}
				}
				t.Claims[k] = mine
			}
			continue
		}
		if _, kept := keep.AstDB[k]; !kept && v != nil {
			t.AstDB[k] = nil
		}
	}
	for d := range old.Devices {
		if _, kept := keep.Devices[d]; !kept {
			t.Devices[d] = lampOff
		}
	}
	for p, v := range old.Presence {
		if _, kept := keep.Presence[p]; !kept && v != nil {
			t.Presence[p] = &PresenceValue{State: "not_set"}
		}
	}
	for g, v := range old.Globals {
		if _, kept := keep.Globals[g]; !kept && v != nil {
			t.Globals[g] = nil
		}
	}
	return t
}

// retire deals with a reload under a user: it takes off what the old definition's desired
// state named and the new one does not. A user the new catalog removed is then archived, and
// done is true; otherwise the pass goes on as a repair journaled as a reload, with these
// outcomes first.
func (e *Engine) retire(ctx context.Context, id UserID, r retiree) (res *SwitchResult, torn []Outcome, done, retry bool, err error) {
	cat := e.Catalog()
	u, present := cat.User(id)
	st, found, personal, err, perr := e.opts.States.LoadUser(ctx, id)
	if err != nil {
		return nil, nil, true, false, err
	}
	var corrupt *CorruptError
	if perr != nil && !errors.As(perr, &corrupt) {
		return nil, nil, true, false, perr
	}
	if !present && !found && len(personal) == 0 {
		// Nothing stored: never switched, or archived already (by the leader before this one).
		e.forgetRetiree(id, r)
		return &SwitchResult{SwitchEvent: SwitchEvent{User: id, Extension: r.user.Extension, At: e.now()}, Outcomes: []Outcome{}, InSync: true},
			nil, true, false, nil
	}
	ev := SwitchEvent{User: id, Extension: r.user.Extension, From: st.Profile, Source: SourceSystem, Actor: reloadActor, At: e.now()}
	if found {
		old := e.compile(r.user, st, slices.Concat(r.profiles, personal))
		var keep *Desired
		if present {
			keep = e.compile(u, st, slices.Concat(cat.Profiles, personal))
		}
		want := Teardown(old, keep, e.opts.Naming.LampOff)
		have, oerr := e.obs.observe(ctx, id, &want.Target)
		if oerr != nil {
			torn = []Outcome{ObserveError(oerr)}
		} else {
			torn = e.apply(ctx, r.user, Plan(want, have))
		}
		for _, o := range torn {
			e.metrics.op(e.concernOf(o.Op.Kind), o)
			if o.Result == ResultFailed {
				e.log.Warn("operation failed", "user", id, "op", o.Op.String(), "err", o.Error)
				retry = true
			}
		}
	}
	if present {
		if !retry {
			e.forgetRetiree(id, r)
		}
		return nil, torn, false, retry, nil
	}
	res = &SwitchResult{SwitchEvent: ev, Outcomes: torn, InSync: inSync(torn)}
	if torn == nil {
		res.Outcomes = []Outcome{}
	}
	if retry {
		e.log.Warn("user removed from the configuration: not all of their PBX state could be taken off; tried again", "user", id)
		return res, nil, true, true, nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	archive, aerr := e.opts.States.Archive(actx, id, JournalEntry{SwitchEvent: ev, Kind: JournalRemoved, Outcomes: res.Outcomes,
		InSync: res.InSync}, e.archiveKeys(id))
	if aerr != nil {
		e.log.Error("user removed from the configuration: their PBX state is off, their stored state not archived; tried again",
			"user", id, "err", aerr)
		return res, nil, true, true, nil
	}
	e.forgetRetiree(id, r)
	e.log.Info("user removed from the configuration: their PBX state taken off, their stored state archived",
		"user", id, "ops", len(torn), "archive", archive)
	return res, nil, true, false, nil
}

func (e *Engine) archiveKeys(id UserID) []string {
	if e.opts.ArchiveKeys == nil {
		return nil
	}
	return e.opts.ArchiveKeys(id)
}
