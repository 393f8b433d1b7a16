package trigger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

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

// compiled is what the configuration says of schedules: the system-wide entries, the users'
// own, the holidays and each user's zone.
type compiled struct {
	schedules []presence.Schedule
	system    []Entry
	own       map[presence.UserID][]Entry
	holidays  map[string]bool
	locs      map[presence.UserID]*time.Location
	def       *time.Location
}

func compileConfig(cat *presence.Catalog, schedules []presence.Schedule, holidays []string, def *time.Location) (*compiled, error) {
	c := &compiled{schedules: schedules, def: def}
	var err error
	if c.system, c.own, c.holidays, c.locs, err = compile(cat, schedules, holidays, def); err != nil {
		return nil, err
	}
	return c, nil
}

// SetSchedules puts a reloaded configuration's schedules in force at once: the system-wide
// entries, holidays and default zone, and the users' own entries and zones of the engine's
// catalog (set it first). Occurrences are planned again from now; an occurrence planned
// before whose entry is gone or moved does not fire (fire checks it against the entries in
// force). It checks them as New does and changes nothing when they are invalid.
func (s *Scheduler) SetSchedules(schedules []presence.Schedule, holidays []string, def *time.Location) error {
	if def == nil {
		def = time.Local
	}
	c, err := compileConfig(s.opts.Engine.Catalog(), schedules, holidays, def)
	if err != nil {
		return err
	}
	s.compiled.Store(c)
	s.mu.Lock()
	s.plannedTo, s.nextPlan = s.now(), time.Time{}
	s.mu.Unlock()
	return nil
}

// Check validates schedules and holidays against a catalog: the configuration check of
// presenced. Problems name their key (schedules[1].at, users[0].schedules[0].profile).
func Check(cat *presence.Catalog, schedules []presence.Schedule, holidays []string) error {
	_, _, _, _, err := compile(cat, schedules, holidays, time.UTC)
	return err
}

func compile(cat *presence.Catalog, schedules []presence.Schedule, holidayList []string, def *time.Location) (
	system []Entry, own map[presence.UserID][]Entry, holidays map[string]bool, locs map[presence.UserID]*time.Location, _ error) {
	own, locs = map[presence.UserID][]Entry{}, map[presence.UserID]*time.Location{}
	zones := presence.ZoneCache{}
	var problems []string
	collect := func(err error) {
		var verr *presence.ValidationError
		if errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		} else if err != nil {
			problems = append(problems, err.Error())
		}
	}
	var err error
	system, err = ParseEntries("schedules", schedules)
	collect(err)
	system = enabledOnly(system, schedules)
	holidays, err = ParseHolidays("holidays", holidayList)
	collect(err)
	for i, u := range cat.Users {
		entries, key := system, "schedules"
		if len(u.Schedules) > 0 {
			key = fmt.Sprintf("users[%d].schedules", i)
			entries, err = ParseEntries(key, u.Schedules)
			collect(err)
			entries = enabledOnly(entries, u.Schedules)
			own[u.ID] = entries
		}
		locs[u.ID] = def
		if u.TimeZone != "" {
			loc, err := zones.Load(u.TimeZone)
			if err != nil {
				problems = append(problems, fmt.Sprintf("users[%d].time_zone: %q is not a known time zone", i, u.TimeZone))
			} else {
				locs[u.ID] = loc
			}
		}
		for j, e := range entries {
			if _, ok := cat.Profile(e.Profile); !ok {
				problems = append(problems, fmt.Sprintf("%s[%d].profile: %q is not a system-wide profile", key, j, e.Profile))
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, nil, nil, nil, &presence.ValidationError{Problems: slices.Compact(problems)}
	}
	return system, own, holidays, locs, nil
}

// enabledOnly is entries (ParseEntries of list, without problems) without those list disables.
// A user whose entries are all disabled still has them: they do not inherit the system-wide
// ones.
func enabledOnly(entries []Entry, list []presence.Schedule) []Entry {
	if len(entries) != len(list) {
		return entries // problems: reported, nothing runs
	}
	out := make([]Entry, 0, len(entries))
	for i, e := range entries {
		if !list[i].Disabled {
			out = append(out, e)
		}
	}
	return out
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

func (s *Scheduler) loadState(ctx context.Context, id presence.UserID) (presence.UserState, error) {
	st, _, err := s.opts.States.Load(ctx, id)
	return st, err
}

func (s *Scheduler) loadRecord(ctx context.Context, id presence.UserID) (*Record, error) {
	raw, err := s.opts.Redis.Get(ctx, s.recordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, presence.StoreError(err, "trigger: load record of "+string(id), s.recordKey(id))
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		s.log.Error("trigger record unreadable, starting afresh", "key", s.recordKey(id), "err", err)
		return nil, nil
	}
	return &rec, nil
}

func (s *Scheduler) saveRecord(ctx context.Context, id presence.UserID, rec *Record) error {
	if rec == nil {
		if err := s.opts.Redis.Del(ctx, s.recordKey(id)).Err(); err != nil {
			return presence.StoreError(err, "trigger: delete record of "+string(id), s.recordKey(id))
		}
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("trigger: encode record of %s: %w", id, err)
	}
	if err := s.opts.Redis.Set(ctx, s.recordKey(id), b, 0).Err(); err != nil {
		return presence.StoreError(err, "trigger: save record of "+string(id), s.recordKey(id))
	}
	return nil
}

// lock takes the user's trigger lock in Redis (held at most 30 s), waiting for it while ctx
// allows, and returns its release.
func (s *Scheduler) lock(ctx context.Context, id presence.UserID) (func(), error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := s.lockKey(id)
	wait := time.Millisecond
	for {
		ok, err := s.opts.Redis.SetNX(ctx, key, token, 30*time.Second).Result()
		if err != nil {
			return nil, presence.StoreError(err, "trigger: lock "+string(id), key)
		}
		if ok {
			return func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				if err := s.unlock.Run(ctx, s.opts.Redis, []string{key}, token).Err(); err != nil {
					s.log.Warn("trigger lock not released; it expires", "key", key, "err", err)
				}
			}, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("trigger: lock %s: %w", id, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

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
