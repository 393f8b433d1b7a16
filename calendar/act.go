package calendar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// Act holds every user in the profile of the plan's event in progress and releases them from
// the events that ended, were cancelled or moved. An event starts once: a user who switches
// by hand during it stays where they went.
func (c *Connector) Act(ctx context.Context) error {
	now := c.now()
	var errs []error
	if err := c.releaseGone(ctx); err != nil {
		errs = append(errs, err)
	}
	planned := 0
	users, _ := c.snapshot()
	for _, u := range users {
		n, err := c.act(ctx, u, now)
		planned += n
		if err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.id, err))
		}
	}
	c.m.planned.Set(float64(planned))
	return errors.Join(errs...)
}

// releaseGone releases the users whose calendar a reload removed from every event the
// connector holds them for, and forgets their plans. A user who failed stays for the next Act.
func (c *Connector) releaseGone(ctx context.Context) error {
	c.usersMu.Lock()
	todo := c.gone
	c.gone = nil
	c.usersMu.Unlock()
	var errs []error
	var again []gone
	for _, g := range todo {
		if err := c.release(ctx, g); err != nil {
			errs = append(errs, fmt.Errorf("user %s (calendar removed): %w", g.id, err))
			again = append(again, g)
		}
	}
	if len(again) > 0 {
		c.usersMu.Lock()
		c.gone = append(again, c.gone...)
		c.usersMu.Unlock()
	}
	return errors.Join(errs...)
}

func (c *Connector) release(ctx context.Context, g gone) error {
	if users, _ := c.snapshot(); slices.ContainsFunc(users, func(u *userCalendar) bool { return u.id == g.id }) {
		return nil // a later reload gave the user a calendar again: theirs to act on
	}
	keys, err := c.opts.Redis.HKeys(ctx, c.heldKey(g.id)).Result()
	if err != nil {
		return presence.StoreError(err, "calendar: read held events of "+string(g.id), c.heldKey(g.id))
	}
	if g.user {
		for _, k := range keys {
			res, err := c.opts.Triggers.Release(ctx, g.id, activationName(k))
			if err != nil {
				c.m.switches.WithLabelValues("end", "failed").Inc()
				return err
			}
			c.m.switches.WithLabelValues("end", outcome(res)).Inc()
			c.log.Info("calendar removed: event released", "user", g.id, "key", k, "switched", res.Switched,
				"profile", res.Profile, "reason", res.Reason)
			if err := c.opts.Redis.HDel(ctx, c.heldKey(g.id), k).Err(); err != nil {
				return presence.StoreError(err, "calendar: forget held event of "+string(g.id), c.heldKey(g.id))
			}
		}
	}
	if err := c.opts.Redis.Del(ctx, c.heldKey(g.id), c.planKey(g.id)).Err(); err != nil {
		return presence.StoreError(err, "calendar: forget the calendar of "+string(g.id), c.planKey(g.id))
	}
	c.setFailing(g.id, false)
	return nil
}

func (c *Connector) act(ctx context.Context, u *userCalendar, now time.Time) (planned int, err error) {
	u.mu.Lock()
	due, n := u.due, u.planned
	u.mu.Unlock()
	if !due.IsZero() && now.Before(due) {
		return n, nil // nothing starts or ends before due, and no poll changed the plan
	}
	plan, err := c.loadPlan(ctx, u.id)
	if err != nil {
		return 0, err
	}
	defer func() {
		next := time.Time{}
		if err == nil {
			next = now.Add(time.Hour) // the plan is read again at least hourly
			for _, it := range plan.Items {
				for _, t := range []time.Time{it.Start, it.End} {
					if t.After(now) && t.Before(next) {
						next = t
					}
				}
			}
		}
		u.mu.Lock()
		u.due, u.planned = next, len(plan.Items)
		u.mu.Unlock()
	}()
	heldRaw, err := c.opts.Redis.HGetAll(ctx, c.heldKey(u.id)).Result()
	if err != nil {
		return len(plan.Items), presence.StoreError(err, "calendar: read held events of "+string(u.id), c.heldKey(u.id))
	}
	held := map[string]Item{}
	for k, v := range heldRaw {
		var it Item
		if err := json.Unmarshal([]byte(v), &it); err != nil {
			c.log.Error("held calendar event unreadable: released", "user", u.id, "key", k, "err", err)
		}
		held[k] = it
	}
	current := map[string]Item{}
	for _, it := range plan.Items {
		if !it.Start.After(now) && now.Before(it.End) {
			current[it.Key] = it
		}
	}
	var errs []error
	// Ends first: a moved event's old instance makes room for what follows.
	for _, k := range slices.Sorted(maps.Keys(held)) {
		if _, ok := current[k]; ok {
			continue
		}
		res, err := c.opts.Triggers.Release(ctx, u.id, activationName(k))
		if err != nil {
			c.m.switches.WithLabelValues("end", "failed").Inc()
			errs = append(errs, err)
			continue
		}
		c.m.switches.WithLabelValues("end", outcome(res)).Inc()
		it := held[k]
		c.log.Info("calendar event over", "user", u.id, "event", label(it, u.loc), "switched", res.Switched,
			"profile", res.Profile, "reason", res.Reason, "ended", !now.Before(it.End))
		if err := c.opts.Redis.HDel(ctx, c.heldKey(u.id), k).Err(); err != nil {
			errs = append(errs, presence.StoreError(err, "calendar: forget held event of "+string(u.id), c.heldKey(u.id)))
		}
	}
	for _, it := range slices.SortedFunc(maps.Values(current), func(a, b Item) int { return a.Start.Compare(b.Start) }) {
		if _, ok := held[it.Key]; ok {
			continue
		}
		res, err := c.opts.Triggers.Hold(ctx, u.id, trigger.Activation{Name: activationName(it.Key),
			Source: presence.SourceExternal, Profile: it.Profile, Started: it.Start, Until: it.End, Label: label(it, u.loc)})
		if err != nil {
			c.m.switches.WithLabelValues("start", "failed").Inc()
			errs = append(errs, err)
			continue
		}
		c.m.switches.WithLabelValues("start", outcome(res)).Inc()
		c.log.Info("calendar event begins", "user", u.id, "event", label(it, u.loc), "profile", it.Profile,
			"switched", res.Switched, "reason", res.Reason)
		held[it.Key] = it
		// The hash outlives the last end it holds by a month: a user removed from the
		// configuration meanwhile leaves nothing behind for ever.
		last := now
		for _, h := range held {
			if h.End.After(last) {
				last = h.End
			}
		}
		b, _ := json.Marshal(it)
		pipe := c.opts.Redis.TxPipeline()
		pipe.HSet(ctx, c.heldKey(u.id), it.Key, b)
		pipe.Expire(ctx, c.heldKey(u.id), last.Sub(now)+30*24*time.Hour)
		if _, err := pipe.Exec(ctx); err != nil {
			errs = append(errs, presence.StoreError(err, "calendar: remember held event of "+string(u.id), c.heldKey(u.id)))
		}
	}
	return len(plan.Items), errors.Join(errs...)
}

func outcome(res *trigger.ExternalResult) string {
	switch {
	case res.Switched:
		return "switched"
	case strings.HasPrefix(res.Reason, "sticky"), strings.HasPrefix(res.Reason, "cancelled"):
		return "skipped"
	case strings.Contains(res.Reason, "limit"):
		return "refused"
	}
	return "kept"
}

// activationName is the trigger activation of an occurrence key.
func activationName(key string) string { return "calendar:" + key }

// label says which event switched the user: "calendar event 'm: Budget review' 14:00–15:00".
func label(it Item, loc *time.Location) string {
	title := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(it.Summary))
	if r := []rune(title); len(r) > 80 {
		title = string(r[:79]) + "…"
	}
	s, e := it.Start.In(loc), it.End.In(loc)
	var when string
	switch {
	case it.AllDay && e.Sub(s) <= 25*time.Hour:
		when = "all day " + s.Format("Mon 2 Jan")
	case it.AllDay:
		when = s.Format("Mon 2 Jan") + "–" + e.AddDate(0, 0, -1).Format("Mon 2 Jan")
	case s.YearDay() == e.YearDay() && s.Year() == e.Year():
		when = s.Format("15:04") + "–" + e.Format("15:04")
	default:
		when = s.Format("Mon 2 Jan 15:04") + "–" + e.Format("Mon 2 Jan 15:04")
	}
	return fmt.Sprintf("calendar event '%s' %s", title, when)
}
