package calendar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

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

// New checks the options and the users' calendar sources and returns a Connector.
func New(opts Options) (*Connector, error) {
	if opts.Catalog == nil || opts.Triggers == nil || opts.Redis == nil {
		return nil, errors.New("calendar: Options.Catalog, Triggers and Redis are required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	opts.Rules, opts.PollInterval, opts.Horizon = scheduleDefaults(opts.Catalog, opts.Rules, opts.PollInterval, opts.Horizon)
	if opts.DefaultLocation == nil {
		opts.DefaultLocation = time.Local
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := Check(opts.Catalog, opts.Rules); err != nil {
		return nil, err
	}
	c := &Connector{opts: opts, log: opts.Logger, now: opts.Now, failed: map[presence.UserID]bool{}, horizon: opts.Horizon}
	var err error
	if c.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if c.users, err = c.build(opts.Catalog, opts.Rules, opts.PollInterval); err != nil {
		return nil, err
	}
	return c, nil
}

// build makes the entries of the users with a calendar.
func (c *Connector) build(cat *presence.Catalog, rules []presence.CalendarRule, poll time.Duration) ([]*userCalendar, error) {
	var users []*userCalendar
	for _, u := range cat.Users {
		if u.Calendar == nil {
			continue
		}
		f, err := NewFetcher(*u.Calendar, c.opts.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.ID, err)
		}
		uc := &userCalendar{id: u.ID, loc: c.opts.DefaultLocation, interval: cmpOr(u.Calendar.PollInterval, poll),
			rules: sortRules(rules), fetcher: f}
		if len(u.Calendar.Rules) > 0 {
			uc.rules = sortRules(u.Calendar.Rules)
		}
		if u.TimeZone != "" {
			if uc.loc, err = time.LoadLocation(u.TimeZone); err != nil {
				return nil, fmt.Errorf("user %s: time_zone: %w", u.ID, err)
			}
		}
		b, err := json.Marshal(struct {
			Source   presence.CalendarSource
			Rules    []presence.CalendarRule
			Zone     string
			Interval time.Duration
		}{*u.Calendar, uc.rules, uc.loc.String(), uc.interval})
		if err != nil {
			return nil, fmt.Errorf("user %s: calendar: %w", u.ID, err)
		}
		uc.config = string(b)
		users = append(users, uc)
	}
	return users, nil
}

// The defaults of Options.PollInterval and Options.Horizon.
const (
	DefaultPollInterval = 5 * time.Minute
	DefaultHorizon      = 7 * 24 * time.Hour
)

// scheduleDefaults fills in the defaults of what New takes and Reconfigure changes: the rules
// (nil: DefaultRules of cat), the poll interval and the horizon (not positive: their defaults).
func scheduleDefaults(cat *presence.Catalog, rules []presence.CalendarRule, poll, horizon time.Duration) ([]presence.CalendarRule, time.Duration, time.Duration) {
	if rules == nil {
		rules = DefaultRules(cat)
	}
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	return rules, poll, horizon
}

// Reconfigure puts a reloaded configuration in force: the users' calendar sources of cat, the
// system-wide rules (nil: DefaultRules of cat), poll interval and horizon (zero: the defaults).
// A calendar whose source, rules, zone and interval are unchanged keeps its poll schedule (its
// credential files are read again all the same); a new or changed one is read at the next
// poll. A user whose calendar is gone is released from what the connector holds them for at
// the next Act (as if the events had been cancelled) and their plan is forgotten. A
// configuration that does not validate changes nothing.
func (c *Connector) Reconfigure(cat *presence.Catalog, rules []presence.CalendarRule, poll, horizon time.Duration) error {
	rules, poll, horizon = scheduleDefaults(cat, rules, poll, horizon)
	if err := Check(cat, rules); err != nil {
		return err
	}
	next, err := c.build(cat, rules, poll)
	if err != nil {
		return err
	}
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	old := map[presence.UserID]*userCalendar{}
	for _, u := range c.users {
		old[u.id] = u
	}
	kept := map[presence.UserID]bool{}
	for _, u := range next {
		kept[u.id] = true
		if o, ok := old[u.id]; ok && o.config == u.config {
			u.nextPoll = o.nextPoll
		}
		u.wake()
	}
	for _, u := range c.users {
		if !kept[u.id] {
			_, isUser := cat.User(u.id)
			c.gone = append(c.gone, gone{id: u.id, user: isUser})
		}
	}
	c.users, c.horizon = next, horizon
	return nil
}

// snapshot returns the users with a calendar and the horizon in force.
func (c *Connector) snapshot() ([]*userCalendar, time.Duration) {
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	return c.users, c.horizon
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Check validates the users' calendar sources and the system-wide rules against a catalog:
// the configuration check of presenced. Problems name their key (calendar.rules[0].profile,
// users[2].calendar.url).
func Check(cat *presence.Catalog, rules []presence.CalendarRule) error {
	has := func(p string) bool { _, ok := cat.Profile(p); return ok }
	problems := CheckRules("calendar.rules", rules, has)
	for i, u := range cat.Users {
		if u.Calendar == nil {
			continue
		}
		key := fmt.Sprintf("users[%d].calendar", i)
		s := u.Calendar
		switch s.Type {
		case "caldav", "ics":
		case "":
			problems = append(problems, key+".type: missing: caldav or ics")
		default:
			problems = append(problems, fmt.Sprintf("%s.type: %q is not caldav or ics", key, s.Type))
		}
		switch {
		case s.URL == "" && s.URLFile == "":
			problems = append(problems, key+".url: missing (or url_file)")
		case s.URL != "" && s.URLFile != "":
			problems = append(problems, key+".url_file: set with url: one of the two")
		case s.URL != "":
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				problems = append(problems, key+".url: not an http(s) URL")
			} else if u.User != nil {
				problems = append(problems, key+".url: holds credentials: use username and password_file")
			}
		}
		for _, f := range []struct{ field, path string }{
			{"url_file", s.URLFile}, {"password_file", s.PasswordFile}, {"token_file", s.TokenFile}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %v", key, f.field, err))
			}
		}
		if s.PasswordFile != "" && s.Username == "" {
			problems = append(problems, key+".username: missing: password_file needs it")
		}
		if s.TokenFile != "" && (s.Username != "" || s.PasswordFile != "") {
			problems = append(problems, key+".token_file: set with username/password_file: one or the other")
		}
		if s.PollInterval != 0 && s.PollInterval < 10*time.Second {
			problems = append(problems, fmt.Sprintf("%s.poll_interval: %v: at least 10s", key, s.PollInterval))
		}
		problems = append(problems, CheckRules(key+".rules", s.Rules, has)...)
		if len(s.Rules) == 0 && len(rules) == 0 && len(DefaultRules(cat)) == 0 {
			problems = append(problems, key+".rules: none, and no system-wide calendar.rules (the default rules need a meeting or holiday profile)")
		}
	}
	if len(problems) > 0 {
		return &presence.ValidationError{Problems: problems}
	}
	return nil
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
