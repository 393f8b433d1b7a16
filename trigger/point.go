package trigger

import (
	"context"
	"fmt"

	"github.com/presenced/presenced/presence"
)

// PointResult is what a point event (Scheduler.Point) did.
type PointResult struct {
	Switched bool   `json:"switched"`
	Profile  string `json:"profile,omitempty"`
	// Reason says why nothing switched ("sticky profile", "already in away").
	Reason string `json:"reason,omitempty"`
}

// Point switches the user to profile because of a one-off event from source (not a trigger
// that ends: a connector's verdict such as "three queue calls went unanswered"), under the
// precedence a point schedule entry has: not when the user is in a sticky profile; while
// triggers hold the user, only what they return to changes. actor names the event in the
// journal and the status ("3 unanswered calls from queue support").
func (s *Scheduler) Point(ctx context.Context, id presence.UserID, actor string, source presence.Source, profile string) (*PointResult, error) {
	if _, ok := s.opts.Engine.Catalog().User(id); !ok {
		return nil, fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if _, err := s.priority(ctx, id, profile); err != nil {
		return nil, err // an unknown profile
	}
	d, res, err := s.applyDecision(ctx, id, func(st presence.UserState, rec *Record) Decision {
		return atFrom(st, rec, actor, profile, source)
	})
	kind := "point_" + string(source)
	if err != nil {
		s.events.WithLabelValues(kind, "failed").Inc()
		return nil, err
	}
	s.events.WithLabelValues(kind, res).Inc()
	out := &PointResult{Switched: d.Switch, Reason: d.Reason}
	if d.Switch {
		out.Profile = d.Profile
	}
	return out, nil
}
