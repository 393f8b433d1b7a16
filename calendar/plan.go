package calendar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

func (c *Connector) loadPlan(ctx context.Context, id presence.UserID) (*Plan, error) {
	raw, err := c.opts.Redis.Get(ctx, c.planKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return &Plan{}, nil
	}
	if err != nil {
		return nil, presence.StoreError(err, "calendar: load plan of "+string(id), c.planKey(id))
	}
	var p Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		c.log.Error("calendar plan unreadable, starting afresh", "key", c.planKey(id), "err", err)
		return &Plan{}, nil
	}
	return &p, nil
}

func (c *Connector) savePlan(ctx context.Context, id presence.UserID, p *Plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("calendar: encode plan of %s: %w", id, err)
	}
	if err := c.opts.Redis.Set(ctx, c.planKey(id), b, 0).Err(); err != nil {
		return presence.StoreError(err, "calendar: save plan of "+string(id), c.planKey(id))
	}
	return nil
}

// Status is what the connector says of a user's calendar.
type Status struct {
	Plan
	// Stale is true when the last poll failed: the items are the last known plan.
	Stale bool `json:"stale"`
	// Held are the events holding the user now.
	Held []Item `json:"held,omitempty"`
}

// Status returns the plan of a user's calendar and the events holding them; ok is false for
// a user without a calendar.
func (c *Connector) Status(ctx context.Context, id presence.UserID) (st *Status, ok bool, err error) {
	if users, _ := c.snapshot(); !slices.ContainsFunc(users, func(u *userCalendar) bool { return u.id == id }) {
		return nil, false, nil
	}
	plan, err := c.loadPlan(ctx, id)
	if err != nil {
		return nil, true, err
	}
	st = &Status{Plan: *plan, Stale: plan.Error != ""}
	vals, err := c.opts.Redis.HVals(ctx, c.heldKey(id)).Result()
	if err != nil {
		return nil, true, presence.StoreError(err, "calendar: read held events of "+string(id), c.heldKey(id))
	}
	for _, v := range vals {
		var it Item
		if json.Unmarshal([]byte(v), &it) == nil {
			st.Held = append(st.Held, it)
		}
	}
	slices.SortFunc(st.Held, func(a, b Item) int { return a.Start.Compare(b.Start) })
	return st, true, nil
}
