package calendar

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/presenced/presenced/presence"
)

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
