package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// Timed registers the return of a timed profile: st is the state a switch with Until saved.
// At st.Until the user returns to st.Previous (Source expiry), without one to their home
// profile (presence.Catalog.HomeProfile: their default_profile, else "available"), unless they
// switched since.
func (s *Scheduler) Timed(ctx context.Context, id presence.UserID, st presence.UserState) error {
	if st.Until == nil {
		return errors.New("trigger: the state has no until")
	}
	base := st.Previous
	if base == "" {
		cat := s.opts.Engine.Catalog()
		u, _ := cat.User(id)
		base = cat.HomeProfile(u) // a timed profile takes no system-wide default
	}
	until := *st.Until
	_, _, err := s.applyDecision(ctx, id, func(cur presence.UserState, _ *Record) Decision {
		if cur.Version != st.Version || !cur.Since.Equal(st.Since) {
			return Decision{Reason: "switched since"}
		}
		return Decision{Changed: true, Record: &Record{Base: base, Version: st.Version, Since: st.Since,
			Active: []Activation{{Name: untilName, Source: presence.SourceExpiry, Profile: st.Profile, Manual: true,
				Started: st.Since, Until: until}}}}
	})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(event{User: id, Kind: kindExpiry, Name: untilName, At: until.UnixMilli()})
	if err := s.opts.Redis.ZAdd(ctx, s.dueKey(), redis.Z{Score: float64(until.UnixMilli()), Member: string(b)}).Err(); err != nil {
		return presence.StoreError(err, "trigger: schedule the return of "+string(id), s.dueKey())
	}
	return nil
}

// ExternalResult is what an external trigger did.
type ExternalResult struct {
	Trigger string `json:"trigger"`
	State   string `json:"state"`
	// Switched is true when the user switched; Profile is then where to.
	Switched bool   `json:"switched"`
	Profile  string `json:"profile,omitempty"`
	// Reason says why nothing switched: "already active", "not active", "sticky profile",
	// "outranked by …", "cancelled: switched since".
	Reason string `json:"reason,omitempty"`
	// Until is when a started trigger ends at the latest (its max_duration), if its end does
	// not come first.
	Until *time.Time `json:"until,omitempty"`
}

// External starts or ends the external trigger name of a user. A start of an active trigger
// and an end of an inactive one change nothing. Starting needs profile; it holds the user at
// most maxDuration (zero: Options.ExternalMaxDuration): if the end has not come by then, the
// user returns as if it had, journaled with the actor "external:<name> (max_duration)".
func (s *Scheduler) External(ctx context.Context, id presence.UserID, name string, start bool, profile string, maxDuration time.Duration) (*ExternalResult, error) {
	if _, ok := s.opts.Engine.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if maxDuration <= 0 {
		maxDuration = s.opts.ExternalMaxDuration
	}
	if maxDuration > MaxExternalDuration {
		return nil, &presence.ValidationError{Problems: []string{fmt.Sprintf("max_duration: %v is more than %v", maxDuration, MaxExternalDuration)}}
	}
	now := s.now()
	act := Activation{Name: "external:" + name, Source: presence.SourceExternal, Profile: profile, Started: now,
		Until: now.Add(maxDuration)}
	out := &ExternalResult{Trigger: act.Name, State: "end"}
	decide := func(st presence.UserState, rec *Record) Decision {
		return End(st, rec, act.Name, presence.SourceExternal)
	}
	tooMany := false
	if start {
		out.State = "start"
		prio, err := s.priority(ctx, id, profile)
		if err != nil {
			return nil, err
		}
		act.Priority = prio
		limit := s.opts.Engine.Catalog().Limits().ExternalTriggers
		decide = func(st presence.UserState, rec *Record) Decision {
			if rec.Valid(st) && rec.find(act.Name) < 0 && externalCount(rec) >= limit {
				tooMany = true
				return Decision{Record: rec, Reason: "too many external triggers"}
			}
			return Start(st, rec, act)
		}
	}
	d, res, err := s.applyDecision(ctx, id, decide)
	if tooMany {
		limit := s.opts.Engine.Catalog().Limits().ExternalTriggers
		s.events.WithLabelValues("external_start", "refused").Inc()
		return nil, &presence.ValidationError{Problems: []string{fmt.Sprintf(
			"name: %d external triggers hold %s already, the limit is %d (limits.external_triggers); end one first", limit, id, limit)}}
	}
	kind := "external_" + out.State
	if err != nil {
		s.events.WithLabelValues(kind, "failed").Inc()
		return nil, err
	}
	s.events.WithLabelValues(kind, res).Inc()
	out.Switched, out.Reason = d.Switch, d.Reason
	if d.Switch {
		out.Profile, out.Reason = d.Profile, ""
	}
	if start && d.Record != nil {
		if i := d.Record.find(act.Name); i >= 0 {
			// This start's activation, or the one a repeated start found: its safety end.
			held := d.Record.Active[i]
			if !held.Until.IsZero() {
				out.Until = &held.Until
				b, _ := json.Marshal(event{User: id, Kind: kindMaxDuration, Name: act.Name, At: held.Until.UnixMilli()})
				if err := s.opts.Redis.ZAdd(ctx, s.dueKey(), redis.Z{Score: float64(held.Until.UnixMilli()), Member: string(b)}).Err(); err != nil {
					return out, presence.StoreError(err, "trigger: schedule the max_duration end of "+string(id), s.dueKey())
				}
			}
		}
	}
	return out, nil
}

// externalCount is how many external triggers the record holds.
func externalCount(rec *Record) int {
	n := 0
	for _, a := range rec.Active {
		if a.Source == presence.SourceExternal {
			n++
		}
	}
	return n
}

// Change is a coming change of a user's profile.
type Change struct {
	At time.Time `json:"at"`
	// Profile is where the user goes; empty for a return to the profile they had before.
	Profile string `json:"profile,omitempty"`
	// Trigger is the activation or schedule entry, e.g. "schedule:lunch", "until".
	Trigger string `json:"trigger"`
	// Kind is at, start, end or expiry.
	Kind string `json:"kind"`
}

// Why explains a user's triggers.
type Why struct {
	// Trigger set the active profile, when the triggers are still in charge of it.
	Trigger string `json:"trigger,omitempty"`
	// ReturnsTo is where the user goes when the active triggers have ended.
	ReturnsTo string `json:"returns_to,omitempty"`
	// Active are the triggers holding the user.
	Active []Activation `json:"active,omitempty"`
	// Next is the next scheduled change, if any within a week.
	Next *Change `json:"next,omitempty"`
}

// Why tells which trigger holds the user, where they return to and the next scheduled change.
func (s *Scheduler) Why(ctx context.Context, id presence.UserID, st presence.UserState) (*Why, error) {
	rec, err := s.loadRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	w := &Why{}
	var next *Change
	consider := func(c Change) {
		if c.At.After(now) && (next == nil || c.At.Before(next.At)) {
			next = &c
		}
	}
	if rec.Valid(st) {
		w.Active, w.ReturnsTo = rec.Active, rec.Base
		if st.Source == presence.SourceSchedule || st.Source == presence.SourceExternal || st.Source == presence.SourceExpiry ||
			slices.ContainsFunc(rec.Active, func(a Activation) bool { return a.Manual }) {
			w.Trigger = st.Actor
		}
		for _, a := range rec.Active {
			if !a.Until.IsZero() {
				kind := kindEnd
				switch {
				case a.Name == untilName:
					kind = kindExpiry
				case a.Source == presence.SourceExternal:
					kind = kindMaxDuration
				}
				consider(Change{At: a.Until, Trigger: a.Name, Kind: kind})
			}
		}
	}
	inherited, own, err := s.entries(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, o := range s.occurrences(id, inherited, own, now.Add(-48*time.Hour), now.Add(8*24*time.Hour)) {
		name := "schedule:" + o.Entry.Name
		if o.Entry.Range {
			consider(Change{At: o.Start, Profile: o.Entry.Profile, Trigger: name, Kind: kindStart})
			consider(Change{At: o.End, Trigger: name, Kind: kindEnd})
		} else {
			consider(Change{At: o.Start, Profile: o.Entry.Profile, Trigger: name, Kind: kindAt})
		}
	}
	w.Next = next
	return w, nil
}

// TriggerName is the name part of an external trigger's activation, checked for use in a key.
func TriggerName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, " |:/") || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return fmt.Errorf("trigger name %q: 1 to 64 characters, no space, control character, '|', ':' or '/'", name)
	}
	return nil
}
