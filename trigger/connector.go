package trigger

import (
	"context"
	"fmt"
	"strings"

	"github.com/presenced/presenced/presence"
)

// Hold starts a connector's activation (a calendar event, …): the user goes to act.Profile
// through the same precedence as an external trigger (manual switches and sticky profiles
// win; among activations at once the lowest profile priority), and returns when Release ends
// it. act.Name is "<connector>:<key>" with a key as TriggerName allows; act.Priority is
// filled in from the profile; act.Source defaults to external; act.Label, when set, is the
// switch's actor in the state and the journal. Holding an active activation changes nothing.
// The activations count against limits.external_triggers like external triggers.
func (s *Scheduler) Hold(ctx context.Context, id presence.UserID, act Activation) (*ExternalResult, error) {
	if _, ok := s.opts.Engine.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if err := connectorName(act.Name); err != nil {
		return nil, err
	}
	if act.Source == "" {
		act.Source = presence.SourceExternal
	}
	if act.Started.IsZero() {
		act.Started = s.now()
	}
	prio, err := s.priority(ctx, id, act.Profile)
	if err != nil {
		return nil, err
	}
	act.Priority = prio
	limit := s.opts.Engine.Catalog().Limits().ExternalTriggers
	tooMany := false
	d, res, err := s.applyDecision(ctx, id, func(st presence.UserState, rec *Record) Decision {
		if rec.Valid(st) && rec.find(act.Name) < 0 && externalCount(rec) >= limit {
			tooMany = true
			return Decision{Record: rec, Reason: "too many external triggers"}
		}
		return Start(st, rec, act)
	})
	if tooMany {
		s.events.WithLabelValues("connector_start", "refused").Inc()
		return &ExternalResult{Trigger: act.Name, State: "start", Reason: fmt.Sprintf(
			"%d external triggers hold %s already, the limit is %d (limits.external_triggers)", limit, id, limit)}, nil
	}
	if err != nil {
		s.events.WithLabelValues("connector_start", "failed").Inc()
		return nil, err
	}
	s.events.WithLabelValues("connector_start", res).Inc()
	return result(act.Name, "start", d), nil
}

// Release ends a connector's activation started by Hold: the user returns to the winner of
// the activations still active, or to the profile they had before, unless they switched by
// hand since. Releasing an inactive activation changes nothing.
func (s *Scheduler) Release(ctx context.Context, id presence.UserID, name string) (*ExternalResult, error) {
	if err := connectorName(name); err != nil {
		return nil, err
	}
	d, res, err := s.applyDecision(ctx, id, func(st presence.UserState, rec *Record) Decision {
		source := presence.SourceExternal
		if rec != nil {
			if i := rec.find(name); i >= 0 {
				source = rec.Active[i].Source
			}
		}
		return End(st, rec, name, source)
	})
	if err != nil {
		s.events.WithLabelValues("connector_end", "failed").Inc()
		return nil, err
	}
	s.events.WithLabelValues("connector_end", res).Inc()
	return result(name, "end", d), nil
}

func result(name, state string, d Decision) *ExternalResult {
	out := &ExternalResult{Trigger: name, State: state, Switched: d.Switch, Reason: d.Reason}
	if d.Switch {
		out.Profile, out.Reason = d.Profile, ""
	}
	return out
}

// connectorName checks a connector activation's name: "<connector>:<key>", the connector
// none of the scheduler's own kinds.
func connectorName(name string) error {
	connector, key, ok := strings.Cut(name, ":")
	switch {
	case !ok || connector == "" || strings.ContainsAny(connector, " |/"):
		return fmt.Errorf("trigger: connector activation %q: want <connector>:<key>", name)
	case connector == "schedule" || connector == "external" || connector == untilName:
		return fmt.Errorf("trigger: connector activation %q: %q is the scheduler's own", name, connector)
	}
	if err := TriggerName(key); err != nil {
		return fmt.Errorf("trigger: connector activation %q: %w", name, err)
	}
	return nil
}
