package trigger

import (
	"cmp"
	"slices"
	"time"

	"github.com/presenced/presenced/presence"
)

// Activation is a trigger holding a user in a profile until it ends: a schedule's range, an
// external trigger, or a timed profile (set by hand with "until").
type Activation struct {
	// Name is "schedule:<entry>", "external:<name>", "until", or a connector's
	// "<connector>:<key>" (Scheduler.Hold).
	Name     string          `json:"name"`
	Source   presence.Source `json:"source"`
	Profile  string          `json:"profile"`
	Priority int             `json:"priority"`
	// Manual is a timed profile chosen by hand: it outranks every automatic trigger.
	Manual  bool      `json:"manual,omitempty"`
	Started time.Time `json:"started"`
	Until   time.Time `json:"until,omitzero"`
	// Label, when set, is what the switch's actor says instead of Name, e.g. a connector's
	// "calendar event 'm: Budget review' 14:00–15:00".
	Label string `json:"label,omitempty"`
}

// actor is what a switch made by the activation names as its actor.
func (a Activation) actor() string { return cmp.Or(a.Label, a.Name) }

// Record is what the triggers remember of one user (in Redis): the active activations, the
// profile to return to when the last one ends, and the user's state as the triggers last left
// it. A state that differs (Version, Since) means the user switched by hand since, which
// cancels the return.
type Record struct {
	Base    string       `json:"base"`
	Active  []Activation `json:"active,omitempty"`
	Version int64        `json:"version"`
	Since   time.Time    `json:"since"`
}

// Valid reports whether the record still describes the state: nothing switched the user since
// the triggers last did.
func (r *Record) Valid(st presence.UserState) bool {
	return r != nil && r.Version == st.Version && r.Since.Equal(st.Since)
}

func (r *Record) find(name string) int {
	return slices.IndexFunc(r.Active, func(a Activation) bool { return a.Name == name })
}

// Winner is the activation in charge among those active at once: a manual one, else the
// lowest priority number, else the latest started.
func Winner(active []Activation) (Activation, bool) {
	if len(active) == 0 {
		return Activation{}, false
	}
	return slices.MinFunc(active, func(a, b Activation) int {
		if a.Manual != b.Manual {
			if a.Manual {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return b.Started.Compare(a.Started)
	}), true
}

// Decision is what a trigger event does to a user.
type Decision struct {
	// Switch asks to put the user in Profile with Source, Actor and Until.
	Switch  bool
	Profile string
	Source  presence.Source
	Actor   string
	Until   time.Time
	// Record is what to remember afterwards; nil deletes it. When Switch is set, its Version
	// and Since are filled in from the switch.
	Record *Record
	// Changed is false when the record stays as it was (nothing to write).
	Changed bool
	// Reason says why nothing switched, for logs and tests.
	Reason string
}

// Start decides what an activation starting does. st is the user's state, rec what the
// triggers remember (nil for nothing).
func Start(st presence.UserState, rec *Record, act Activation) Decision {
	if !rec.Valid(st) {
		if st.Sticky && !act.Manual {
			return Decision{Record: rec, Reason: "sticky profile"}
		}
		base := st.Profile
		if base == "" { // a user never switched returns to available
			base = presence.ProfileAvailable
		}
		rec = &Record{Base: base, Version: st.Version, Since: st.Since}
	} else {
		c := *rec
		c.Active = slices.Clone(rec.Active)
		rec = &c
	}
	if rec.find(act.Name) >= 0 {
		return Decision{Record: rec, Reason: "already active"}
	}
	rec.Active = append(rec.Active, act)
	w, _ := Winner(rec.Active)
	d := Decision{Record: rec, Changed: true}
	if st.Sticky && !act.Manual {
		// A trigger put the user in a sticky profile: remember this one for when it ends.
		d.Reason = "sticky profile"
		return d
	}
	if w.Profile == st.Profile {
		d.Reason = "already in " + w.Profile
		if w.Name != act.Name {
			d.Reason = "outranked by " + w.Name
		}
		return d
	}
	if w.Name != act.Name {
		d.Reason = "outranked by " + w.Name
		return d
	}
	d.Switch, d.Profile, d.Source, d.Actor, d.Until = true, act.Profile, act.Source, act.actor(), act.Until
	return d
}

// End decides what the end of the activation name does: the user returns to the winner of the
// activations still active, or to the profile they had before the first one, unless they
// switched by hand since.
func End(st presence.UserState, rec *Record, name string, source presence.Source) Decision {
	if rec == nil || rec.find(name) < 0 {
		return Decision{Record: rec, Reason: "not active"}
	}
	if !rec.Valid(st) {
		return Decision{Record: nil, Changed: true, Reason: "cancelled: switched since"}
	}
	ending := rec.Active[rec.find(name)]
	c := *rec
	c.Active = slices.Delete(slices.Clone(rec.Active), rec.find(name), rec.find(name)+1)
	d := Decision{Record: &c, Changed: true}
	to, until := c.Base, time.Time{}
	if w, ok := Winner(c.Active); ok {
		to, until = w.Profile, w.Until
	} else {
		d.Record = nil
	}
	if to == st.Profile {
		d.Reason = "already in " + to
		return d
	}
	d.Switch, d.Profile, d.Source, d.Actor, d.Until = true, to, source, ending.actor(), until
	return d
}

// At decides what a point schedule entry (at a time, switch to profile) does: it switches
// unless the profile is sticky; while activations hold the user it only changes what they
// return to.
func At(st presence.UserState, rec *Record, name, profile string) Decision {
	return atFrom(st, rec, name, profile, presence.SourceSchedule)
}

// atFrom is At for a point event of any source: its switch is made with source and name as
// the actor.
func atFrom(st presence.UserState, rec *Record, name, profile string, source presence.Source) Decision {
	if st.Sticky {
		return Decision{Record: rec, Reason: "sticky profile"}
	}
	if rec.Valid(st) && len(rec.Active) > 0 {
		c := *rec
		c.Base = profile
		return Decision{Record: &c, Changed: true, Reason: "held by " + rec.Active[0].Name + "; returns to " + profile}
	}
	d := Decision{Record: nil, Changed: rec != nil}
	if st.Profile == profile {
		d.Reason = "already in " + profile
		return d
	}
	d.Switch, d.Profile, d.Source, d.Actor = true, profile, source, name
	return d
}
