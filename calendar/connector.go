package calendar

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// Holder is what the connector switches users through: package trigger's Scheduler, whose
// precedence decides (manual switches and sticky profiles win; among activations active at
// once the lowest profile priority).
type Holder interface {
	Hold(ctx context.Context, id presence.UserID, act trigger.Activation) (*trigger.ExternalResult, error)
	Release(ctx context.Context, id presence.UserID, name string) (*trigger.ExternalResult, error)
}

// Options configures a Connector.
type Options struct {
	// Catalog holds the users, with their calendar sources (User.Calendar); required.
	Catalog *presence.Catalog
	// Triggers switches the users; required.
	Triggers Holder
	// Redis holds the plans and what the connector holds; required.
	Redis *redis.Client
	// Prefix starts every key; empty means "presenced:".
	Prefix string
	// Rules are the system-wide rules, for users whose calendar names none; nil means
	// DefaultRules of the catalog.
	Rules []presence.CalendarRule
	// PollInterval is how often a calendar is read when its source does not say; zero
	// means 5 minutes.
	PollInterval time.Duration
	// Horizon is how far ahead the plan reaches; zero means 7 days.
	Horizon time.Duration
	// DefaultLocation is the zone of users without a TimeZone (floating times and all-day
	// events are in the user's zone); nil means time.Local.
	DefaultLocation *time.Location
	// HTTPClient reads the calendars; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is how often Run acts on the plans; zero means 1 s.
	Tick time.Duration
	// Logger receives the connector's messages; nil discards them.
	Logger *slog.Logger
	// Registerer receives the presenced_calendar_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Connector turns users' calendar events into profile switches: it polls each user's
// calendar (Poll), keeps the plan of the coming events that rules map to profiles in Redis,
// and at each event's start holds the user in its profile, at its end (or when it is
// cancelled or moved) releases them (Act). A calendar that cannot be read keeps its last plan,
// which the status and presenced_calendar_sources_failing say. Run it on the leader only:
// the plan and what is held live in Redis, so the next leader goes on where it stopped.
//
// Redis keys (Prefix "presenced:"):
//
//	presenced:calendar:plan:<id>  JSON Plan: the events ahead, when polled, the last error
//	presenced:calendar:held:<id>  hash: occurrence key → JSON Item the connector holds the user for
type Connector struct {
	opts Options // Rules, PollInterval and Horizon as at New; Reconfigure changes what derives from them
	log  *slog.Logger
	now  func() time.Time
	m    metrics

	usersMu sync.Mutex // guards users, gone, horizon
	users   []*userCalendar
	// gone are users whose calendar a reload removed while the connector may hold them: the
	// next Act releases them and forgets their plan.
	gone    []gone
	horizon time.Duration

	mu     sync.Mutex // guards failing
	failed map[presence.UserID]bool
}

// gone is a user whose calendar was removed; user is false when the user is gone too.
type gone struct {
	id   presence.UserID
	user bool
}

type userCalendar struct {
	id       presence.UserID
	loc      *time.Location
	interval time.Duration
	rules    []presence.CalendarRule
	fetcher  Fetcher
	// config identifies the source, rules, zone and interval the entry was made of: a reload
	// that changes none of them keeps the entry's poll schedule.
	config   string
	nextPoll time.Time // guarded by the poll loop: one poll at a time

	mu sync.Mutex // guards due, planned
	// due is when Act must look at the user again: the next start or end of the plan as this
	// instance last acted on it; zero means at once (a new poll, a failure, a new term).
	due     time.Time
	planned int
}

// wake makes the next Act look at the user.
func (u *userCalendar) wake() { u.mu.Lock(); u.due = time.Time{}; u.mu.Unlock() }

// Item is an event of the plan: an occurrence that a rule maps to a profile.
type Item struct {
	Key     string    `json:"key"`
	UID     string    `json:"uid"`
	Summary string    `json:"summary"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	AllDay  bool      `json:"all_day,omitempty"`
	Profile string    `json:"profile"`
}

// maxProblems bounds the unreadable events a plan lists.
const maxProblems = 20

// Plan is what the connector knows of a user's calendar.
type Plan struct {
	// Source names the calendar without secrets ("caldav https://host").
	Source string `json:"source"`
	// Items are the events ahead that switch the user, by start.
	Items []Item `json:"items"`
	// Polled is the last successful poll; Attempted the last poll.
	Polled    time.Time `json:"polled,omitzero"`
	Attempted time.Time `json:"attempted,omitzero"`
	// Error is why the last poll failed; empty when it succeeded. The items are then those of
	// the last successful poll.
	Error string `json:"error,omitempty"`
	// Problems are events the last poll could not read (left out).
	Problems []string `json:"problems,omitempty"`
}

func (c *Connector) planKey(id presence.UserID) string {
	return c.opts.Prefix + "calendar:plan:" + string(id)
}
func (c *Connector) heldKey(id presence.UserID) string {
	return c.opts.Prefix + "calendar:held:" + string(id)
}

// Users are the users with a calendar.
func (c *Connector) Users() []presence.UserID {
	users, _ := c.snapshot()
	ids := make([]presence.UserID, len(users))
	for i, u := range users {
		ids[i] = u.id
	}
	return ids
}

// Run polls the calendars when due and acts on the plans every Tick, until ctx ends.
func (c *Connector) Run(ctx context.Context) error {
	// Another leader may have acted since this instance last did: look at everyone.
	users, _ := c.snapshot()
	for _, u := range users {
		u.wake()
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.loop(ctx, func(ctx context.Context) error { c.Poll(ctx, false); return nil }) })
	wg.Go(func() { c.loop(ctx, c.Act) })
	wg.Wait()
	return nil
}

func (c *Connector) loop(ctx context.Context, step func(context.Context) error) {
	t := time.NewTicker(c.opts.Tick)
	defer t.Stop()
	failing := ""
	for {
		err := step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && err.Error() != failing:
			c.log.Error("calendar step failed; logged again when the error changes", "err", err)
			failing = err.Error()
		case err == nil && failing != "":
			c.log.Info("calendar steps work again")
			failing = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll reads the calendars whose poll is due (every one when all is set), at most 8 at
// once, and saves their plans.
func (c *Connector) Poll(ctx context.Context, all bool) {
	now := c.now()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	users, horizon := c.snapshot()
	for _, u := range users {
		if !all && now.Before(u.nextPoll) {
			continue
		}
		u.nextPoll = now.Add(u.interval)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.poll(ctx, u, now, horizon)
		})
	}
	wg.Wait()
}

func (c *Connector) poll(ctx context.Context, u *userCalendar, now time.Time, horizon time.Duration) {
	kind := strings.Fields(u.fetcher.Describe())[0]
	plan, err := c.loadPlan(ctx, u.id)
	if err != nil {
		c.log.Error("calendar plan unreadable", "user", u.id, "err", err)
		return
	}
	plan.Source, plan.Attempted = u.fetcher.Describe(), now
	from, to := now.Add(-24*time.Hour), now.Add(horizon)
	cals, changed, err := u.fetcher.Fetch(ctx, from, to)
	if err != nil && ctx.Err() != nil {
		return // this instance stopped leading (or presenced stops): not the calendar's fault
	}
	if err != nil {
		c.m.polls.WithLabelValues(kind, "error").Inc()
		if plan.Error == "" {
			c.log.Warn("calendar unreachable: keeping the last known plan", "user", u.id, "source", plan.Source,
				"polled", plan.Polled, "err", err)
		}
		plan.Error = err.Error()
		c.setFailing(u.id, true)
		if err := c.savePlan(ctx, u.id, plan); err != nil {
			c.log.Error("calendar plan not saved", "user", u.id, "err", err)
		}
		return
	}
	result := "ok"
	if !changed {
		result = "unchanged"
	}
	c.m.polls.WithLabelValues(kind, result).Inc()
	if plan.Error != "" {
		c.log.Info("calendar reachable again", "user", u.id, "source", plan.Source)
	}
	occs, problems := Expand(cals, u.loc, from, to)
	c.m.seen.Add(float64(len(occs)))
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems:maxProblems], fmt.Sprintf("and %d more", len(problems)-maxProblems))
	}
	plan.Items, plan.Problems, plan.Error, plan.Polled = nil, problems, "", now
	for _, o := range occs {
		r, ok := Match(u.rules, o)
		if !ok || !o.End.After(now) || !o.End.After(o.Start) {
			continue
		}
		plan.Items = append(plan.Items, Item{Key: o.Key(), UID: o.UID, Summary: o.Summary, Start: o.Start, End: o.End,
			AllDay: o.AllDay, Profile: r.Profile})
	}
	c.setFailing(u.id, false)
	if err := c.savePlan(ctx, u.id, plan); err != nil {
		c.log.Error("calendar plan not saved", "user", u.id, "err", err)
	}
	u.wake()
}

func (c *Connector) setFailing(id presence.UserID, failing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if failing {
		c.failed[id] = true
	} else {
		delete(c.failed, id)
	}
	c.m.failing.Set(float64(len(c.failed)))
}
