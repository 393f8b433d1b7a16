package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// Options configures a Scheduler.
type Options struct {
	// Engine switches the users; required.
	Engine *presence.Engine
	// States is the engine's state store; required.
	States *presence.StateStore
	// Redis holds the due events, the triggers' records and the claims; required.
	Redis *redis.Client
	// Prefix starts every key; empty means "presenced:".
	Prefix string
	// Schedules are the system-wide entries, inherited by every user without their own.
	Schedules []presence.Schedule
	// Holidays are dates (YYYY-MM-DD, in each user's zone) on which entries do not run, or
	// on which only the entries with holidays "only" run.
	Holidays []string
	// DefaultLocation is the zone of users without a TimeZone; nil means time.Local.
	DefaultLocation *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is how often Run looks for due events; zero means 1 s.
	Tick time.Duration
	// Horizon is how far ahead schedule occurrences are written to Redis; zero means 15 min.
	Horizon time.Duration
	// MaxLate drops schedule starts more late than this (after a long outage); zero means 1 h.
	// Returns (range ends, timed profiles) are never dropped.
	MaxLate time.Duration
	// Concurrency bounds the users switched at once; zero means 256.
	Concurrency int
	// ExternalMaxDuration is how long an external trigger holds a user when its start did not
	// say (External's maxDuration): if its end never comes, the user returns then as if it had
	// come. Zero means DefaultExternalMaxDuration.
	ExternalMaxDuration time.Duration
	// Logger receives the scheduler's messages; nil discards them.
	Logger *slog.Logger
	// Registerer receives presenced_trigger_events_total{kind,result}; nil registers none.
	Registerer prometheus.Registerer
}

// Scheduler fires schedules, timed profiles and external triggers through the engine. Due
// events live in Redis (a sorted set scored by due time); an event is claimed by one atomic
// script (ZREM, then SET NX of a per-occurrence marker), so it fires once however many
// instances run and however often they plan it. Work on one user is serialised across
// instances by a short Redis lock.
type Scheduler struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	compiled atomic.Pointer[compiled] // the configuration's entries, holidays and zones (SetSchedules)
	claim    *redis.Script
	unlock   *redis.Script
	events   *prometheus.CounterVec

	mu        sync.Mutex // guards plannedTo, nextPlan
	plannedTo time.Time
	nextPlan  time.Time
}

// Event kinds in Redis.
const (
	kindAt     = "at"
	kindStart  = "start"
	kindEnd    = "end"
	kindExpiry = "expiry"
	// kindMaxDuration is the safety end of an external trigger (External's maxDuration).
	kindMaxDuration = "max_duration"
)

// DefaultExternalMaxDuration is Options.ExternalMaxDuration when it is zero: a working day.
const DefaultExternalMaxDuration = 12 * time.Hour

// MaxExternalDuration bounds the max_duration an external trigger's start may ask for.
const MaxExternalDuration = 7 * 24 * time.Hour

// untilName is the activation of a timed profile.
const untilName = "until"

// markerTTL keeps the marker of a fired occurrence longer than anything can plan it again.
const markerTTL = 72 * time.Hour

// claimScript removes a due event and marks its occurrence fired; 1 when this caller won.
const claimScript = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`

const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// event is a due event as stored in the sorted set: its JSON is the member, so every instance
// planning the same occurrence writes the same member.
type event struct {
	User    presence.UserID `json:"u"`
	Kind    string          `json:"k"`
	Name    string          `json:"n"`
	Profile string          `json:"p,omitempty"`
	At      int64           `json:"t"`           // due, Unix ms
	End     int64           `json:"e,omitempty"` // a range's end, Unix ms, on its start
}

// New checks the options and the schedules and returns a Scheduler.
func New(opts Options) (*Scheduler, error) {
	if opts.Engine == nil || opts.States == nil || opts.Redis == nil {
		return nil, errors.New("trigger: Options.Engine, States and Redis are required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.DefaultLocation == nil {
		opts.DefaultLocation = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Horizon <= 0 {
		opts.Horizon = 15 * time.Minute
	}
	if opts.MaxLate <= 0 {
		opts.MaxLate = time.Hour
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 256
	}
	if opts.ExternalMaxDuration <= 0 {
		opts.ExternalMaxDuration = DefaultExternalMaxDuration
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		opts: opts, log: opts.Logger, now: opts.Now,
		claim:  redis.NewScript(claimScript),
		unlock: redis.NewScript(unlockScript),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_trigger_events_total",
			Help: "Trigger events handled, by kind (at, start, end, expiry, external) and result (switched, kept, skipped, failed, refused).",
		}, []string{"kind", "result"}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.events); err != nil {
			return nil, fmt.Errorf("trigger: register metrics: %w", err)
		}
	}
	c, err := compileConfig(opts.Engine.Catalog(), opts.Schedules, opts.Holidays, opts.DefaultLocation)
	if err != nil {
		return nil, err
	}
	s.compiled.Store(c)
	return s, nil
}

func (s *Scheduler) entriesOf(id presence.UserID) []Entry {
	c := s.compiled.Load()
	if own, ok := c.own[id]; ok {
		return own
	}
	return c.system
}

// holidays are the configuration's holidays.
func (s *Scheduler) holidays() map[string]bool { return s.compiled.Load().holidays }

func (s *Scheduler) dueKey() string                 { return s.opts.Prefix + "trigger:due" }
func (s *Scheduler) markerKey(member string) string { return s.opts.Prefix + "trigger:fired:" + member }
func (s *Scheduler) recordKey(id presence.UserID) string {
	return s.opts.Prefix + "trigger:user:" + string(id)
}
func (s *Scheduler) lockKey(id presence.UserID) string {
	return s.opts.Prefix + "trigger:lock:" + string(id)
}
func (s *Scheduler) location(id presence.UserID) *time.Location {
	c := s.compiled.Load()
	if l := c.locs[id]; l != nil {
		return l
	}
	return c.def
}

// Run ticks until ctx is cancelled.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	failing := "" // what the last failed step said, so that a failure repeated every tick is logged once
	for {
		err := s.Step(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			why := err.Error()
			var u *presence.UnavailableError
			if errors.As(err, &u) {
				why = u.Message() // the same outage, whatever connection failed
			}
			if why != failing {
				s.log.Error("trigger step failed; logged again when the error changes", "err", err)
				failing = why
			}
		case failing != "":
			s.log.Info("trigger steps work again")
			failing = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step does one tick: it writes the schedule occurrences of the coming Horizon to Redis when
// due (at the first step from MaxLate back, so a restart catches up), then claims and fires
// every due event. Tests call it with a controlled clock.
func (s *Scheduler) Step(ctx context.Context) error {
	// The keys below are part of the state store's layout: none is written into a store that
	// holds another schema.
	if err := s.opts.States.EnsureSchema(ctx); err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	plan := !now.Before(s.nextPlan)
	from := s.plannedTo
	if from.IsZero() {
		from = now.Add(-s.opts.MaxLate)
	}
	to := now.Add(s.opts.Horizon)
	s.mu.Unlock()
	if plan {
		if err := s.plan(ctx, from, to); err != nil {
			return err
		}
		s.mu.Lock()
		s.plannedTo, s.nextPlan = to, now.Add(s.opts.Horizon/2)
		s.mu.Unlock()
	}
	return s.fireDue(ctx, now)
}

// plan writes the occurrences starting in (from, to] of every user's schedule: inherited and
// personal (personal.go).
func (s *Scheduler) plan(ctx context.Context, from, to time.Time) error {
	personal, err := s.personalEntries(ctx)
	if err != nil {
		return err
	}
	var zs []redis.Z
	for _, u := range s.opts.Engine.Catalog().Users {
		zs = append(zs, s.occurrenceEvents(u.ID, s.entriesOf(u.ID), s.location(u.ID), from, to)...)
		if own := personal[u.ID]; len(own.entries) > 0 {
			zs = append(zs, s.occurrenceEvents(u.ID, own.entries, own.loc, from, to)...)
		}
	}
	return s.addDue(ctx, zs)
}

// planEntries writes the occurrences in (from, to] of some of one user's entries, in loc.
func (s *Scheduler) planEntries(ctx context.Context, id presence.UserID, entries []Entry, loc *time.Location, from, to time.Time) error {
	return s.addDue(ctx, s.occurrenceEvents(id, entries, loc, from, to))
}

// occurrenceEvents are the due events of the entries' occurrences in (from, to], in loc.
func (s *Scheduler) occurrenceEvents(id presence.UserID, entries []Entry, loc *time.Location, from, to time.Time) []redis.Z {
	var zs []redis.Z
	add := func(ev event) {
		b, _ := json.Marshal(ev)
		zs = append(zs, redis.Z{Score: float64(ev.At), Member: string(b)})
	}
	for _, o := range Occurrences(entries, s.holidays(), loc, from, to) {
		if !o.Entry.Range {
			add(event{User: id, Kind: kindAt, Name: o.Entry.Name, Profile: o.Entry.Profile, At: o.Start.UnixMilli()})
			continue
		}
		add(event{User: id, Kind: kindStart, Name: o.Entry.Name, Profile: o.Entry.Profile, At: o.Start.UnixMilli(), End: o.End.UnixMilli()})
		add(event{User: id, Kind: kindEnd, Name: o.Entry.Name, Profile: o.Entry.Profile, At: o.End.UnixMilli()})
	}
	return zs
}

// addDue adds due events; one already there stays as it is (the same occurrence planned
// twice is the same member).
func (s *Scheduler) addDue(ctx context.Context, zs []redis.Z) error {
	for batch := range slices.Chunk(zs, 1000) {
		if err := s.opts.Redis.ZAddNX(ctx, s.dueKey(), batch...).Err(); err != nil {
			return presence.StoreError(err, "trigger: plan schedules", s.dueKey())
		}
	}
	return nil
}

// fireDue claims and fires the events due at now: one user's events in time order, users in
// parallel.
func (s *Scheduler) fireDue(ctx context.Context, now time.Time) error {
	const batch = 5000
	for {
		members, err := s.opts.Redis.ZRangeByScore(ctx, s.dueKey(), &redis.ZRangeBy{
			Min: "-inf", Max: fmt.Sprint(now.UnixMilli()), Count: batch}).Result()
		if err != nil {
			return presence.StoreError(err, "trigger: read due events", s.dueKey())
		}
		if len(members) == 0 {
			return nil
		}
		byUser := map[presence.UserID][]string{}
		var order []presence.UserID
		for _, m := range members {
			var ev event
			if err := json.Unmarshal([]byte(m), &ev); err != nil {
				s.log.Error("unreadable due event dropped", "key", s.dueKey(), "member", m, "err", err)
				s.opts.Redis.ZRem(ctx, s.dueKey(), m)
				continue
			}
			if _, seen := byUser[ev.User]; !seen {
				order = append(order, ev.User)
			}
			byUser[ev.User] = append(byUser[ev.User], m)
		}
		sem := make(chan struct{}, s.opts.Concurrency)
		var wg sync.WaitGroup
		for _, id := range order {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				for _, m := range byUser[id] {
					s.claimAndFire(ctx, now, m)
				}
			})
		}
		wg.Wait()
		if len(members) < batch || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (s *Scheduler) claimAndFire(ctx context.Context, now time.Time, member string) {
	won, err := s.claim.Run(ctx, s.opts.Redis, []string{s.dueKey(), s.markerKey(member)}, member, markerTTL.Milliseconds()).Int()
	if err != nil {
		s.log.Error("cannot claim due event", "member", member, "err", err)
		return
	}
	if won != 1 {
		return // another instance fired it, or it was fired before and planned again
	}
	var ev event
	_ = json.Unmarshal([]byte(member), &ev) // read before
	result, err := s.fire(ctx, now, ev)
	if err != nil {
		result = "failed"
		s.log.Error("trigger event failed", "user", ev.User, "kind", ev.Kind, "name", ev.Name, "err", err)
	}
	s.events.WithLabelValues(ev.Kind, result).Inc()
}

// fire handles one claimed event and returns its result label.
func (s *Scheduler) fire(ctx context.Context, now time.Time, ev event) (string, error) {
	due := time.UnixMilli(ev.At)
	if _, ok := s.opts.Engine.Catalog().User(ev.User); !ok {
		return "skipped", nil // removed from the configuration since
	}
	if ev.Kind == kindMaxDuration {
		return s.apply(ctx, ev.User, func(st presence.UserState, rec *Record) Decision {
			if rec == nil {
				return Decision{Record: rec, Reason: "not active"}
			}
			// Only the activation this end was planned for: one ended and started again since
			// has an end of its own.
			if i := rec.find(ev.Name); i < 0 || rec.Active[i].Until.UnixMilli() != ev.At {
				return Decision{Record: rec, Reason: "superseded"}
			}
			s.log.Warn("external trigger reached its max_duration without an end; the user returns as if it had ended",
				"user", ev.User, "trigger", ev.Name)
			d := End(st, rec, ev.Name, presence.SourceExternal)
			d.Actor = ev.Name + " (max_duration)"
			return d
		})
	}
	if ev.Kind == kindExpiry {
		return s.apply(ctx, ev.User, func(st presence.UserState, rec *Record) Decision {
			if rec == nil {
				return Decision{Record: rec, Reason: "not active"}
			}
			if i := rec.find(untilName); i < 0 || rec.Active[i].Until.UnixMilli() != ev.At {
				return Decision{Record: rec, Reason: "superseded"}
			}
			return End(st, rec, untilName, presence.SourceExpiry)
		})
	}
	// A schedule event: its entry must still be configured (or kept, enabled) as it was planned.
	inherited, own, err := s.entries(ctx, ev.User)
	if err != nil {
		return "", err
	}
	entries := append(slices.Clone(inherited), own.entries...)
	// The end of a range that started still ends it when the entry has gone since (a personal
	// entry deleted or disabled during its range): the user returns as the start promised.
	i := slices.IndexFunc(entries, func(e Entry) bool { return e.Name == ev.Name && e.Profile == ev.Profile })
	if i < 0 && ev.Kind != kindEnd {
		return "skipped", nil
	}
	// An entry whose time changed since the occurrence was planned (a reload, an edit) fires
	// when it now says, not when it said.
	if ev.Kind != kindEnd && !slices.ContainsFunc(s.occurrences(ev.User, inherited, own, due.Add(-time.Millisecond), due),
		func(o Occurrence) bool {
			return o.Entry.Name == ev.Name && o.Entry.Profile == ev.Profile && o.Start.Equal(due)
		}) {
		return "skipped", nil
	}
	name := "schedule:" + ev.Name
	switch ev.Kind {
	case kindAt, kindStart:
		if now.Sub(due) > s.opts.MaxLate || (ev.End != 0 && !now.Before(time.UnixMilli(ev.End))) {
			s.log.Warn("schedule event too late, dropped", "user", ev.User, "name", ev.Name, "due", due)
			return "skipped", nil
		}
		if ev.Kind == kindAt {
			return s.apply(ctx, ev.User, func(st presence.UserState, rec *Record) Decision {
				return At(st, rec, name, ev.Profile)
			})
		}
		prio, err := s.priority(ctx, ev.User, ev.Profile)
		if err != nil {
			return "", err
		}
		act := Activation{Name: name, Source: presence.SourceSchedule, Profile: ev.Profile, Priority: prio,
			Started: due, Until: time.UnixMilli(ev.End)}
		return s.apply(ctx, ev.User, func(st presence.UserState, rec *Record) Decision { return Start(st, rec, act) })
	case kindEnd:
		return s.apply(ctx, ev.User, func(st presence.UserState, rec *Record) Decision {
			return End(st, rec, name, presence.SourceSchedule)
		})
	}
	return "skipped", fmt.Errorf("unknown event kind %q", ev.Kind)
}

// priority is the priority of the user's profile pid.
func (s *Scheduler) priority(ctx context.Context, id presence.UserID, pid string) (int, error) {
	ps, err := s.opts.Engine.Profiles(ctx, id)
	if err != nil {
		return 0, err
	}
	for _, p := range ps {
		if p.ID == pid {
			return p.Priority, nil
		}
	}
	return 0, fmt.Errorf("%w %q", presence.ErrUnknownProfile, pid)
}

// apply takes the user's trigger lock, loads the state and the record, decides, switches when
// the decision says so (only if the state is still the one decided on) and saves the record.
// It answers the result label: switched, kept (record changed only) or skipped.
func (s *Scheduler) apply(ctx context.Context, id presence.UserID, decide func(presence.UserState, *Record) Decision) (string, error) {
	_, res, err := s.applyDecision(ctx, id, decide)
	return res, err
}

func (s *Scheduler) applyDecision(ctx context.Context, id presence.UserID, decide func(presence.UserState, *Record) Decision) (Decision, string, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return Decision{}, "", err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		st, err := s.loadState(ctx, id)
		if err != nil {
			return Decision{}, "", err
		}
		rec, err := s.loadRecord(ctx, id)
		if err != nil {
			return Decision{}, "", err
		}
		d := decide(st, rec)
		if d.Switch {
			res, err := s.opts.Engine.Switch(ctx, presence.SwitchRequest{
				User: id, Profile: d.Profile, Source: d.Source, Actor: d.Actor, Until: d.Until,
				Expect: &presence.Expectation{Version: st.Version, Since: st.Since},
			})
			if errors.Is(err, presence.ErrStateChanged) && attempt < 3 {
				continue
			}
			if err != nil {
				return d, "", fmt.Errorf("trigger: switch %s to %s: %w", id, d.Profile, err)
			}
			if d.Record != nil {
				d.Record.Version, d.Record.Since = res.State.Version, res.State.Since
			}
			d.Changed = true
		}
		if d.Changed {
			if err := s.saveRecord(ctx, id, d.Record); err != nil {
				return d, "", err
			}
		}
		switch {
		case d.Switch:
			return d, "switched", nil
		case d.Changed:
			return d, "kept", nil
		}
		return d, "skipped", nil
	}
}
