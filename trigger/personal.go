package trigger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// Personal schedules: entries a user keeps in Redis (the web app's "My schedule", the API's
// /users/{user}/schedule), added to the entries the user inherits from the configuration
// (their own users[].schedules, else the system-wide schedules). They fire exactly as those
// do, and the precedence among triggers is the same: a range's profile priority decides among
// ranges, a timed profile chosen by hand outranks them, a sticky profile is kept (precedence.go).
// A disabled entry is kept and does not fire.

// MaxPersonalEntries is how many schedule entries one user may keep.
const MaxPersonalEntries = 20

// A user may also keep a time zone of their own for their own entries (SetTimeZone): it is
// stored in the hash of their entries under timeZoneField, which no entry can be named (an
// entry's name holds no ':', TriggerName), so one read brings both. The entries they inherit
// keep the configuration's zone (their users[].time_zone, else triggers.default_time_zone).

// timeZoneField is the field of a user's schedule hash that holds their own time zone.
const timeZoneField = ":time_zone"

// maxTimeZoneLen bounds a time zone's name (the longest IANA name has 32 characters).
const maxTimeZoneLen = 64

// PersonalEntry is one of a user's own schedule entries (Disabled, of the Schedule, keeps it
// without firing it).
type PersonalEntry struct {
	presence.Schedule
}

func (s *Scheduler) personalKey(id presence.UserID) string {
	return s.opts.Prefix + "schedule:" + string(id)
}

// personalUsersKey is the set of users who keep entries, so that planning reads only theirs.
func (s *Scheduler) personalUsersKey() string { return s.opts.Prefix + "schedule:users" }

// Personal returns the user's own entries, by name.
func (s *Scheduler) Personal(ctx context.Context, id presence.UserID) ([]PersonalEntry, error) {
	all, err := s.opts.Redis.HGetAll(ctx, s.personalKey(id)).Result()
	if err != nil {
		return nil, presence.StoreError(err, "trigger: read the schedule of "+string(id), s.personalKey(id))
	}
	return decodePersonal(s, id, all), nil
}

// decodePersonal reads the hash of a user's entries; an unreadable one is logged and left out.
func decodePersonal(s *Scheduler, id presence.UserID, all map[string]string) []PersonalEntry {
	out := make([]PersonalEntry, 0, len(all))
	for name, v := range all {
		if name == timeZoneField {
			continue
		}
		var e PersonalEntry
		if err := json.Unmarshal([]byte(v), &e); err != nil || e.Name != name {
			s.log.Error("personal schedule entry unreadable; left out", "user", id, "name", name, "err", err)
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b PersonalEntry) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Inherited returns the entries the user inherits from the configuration: their own
// users[].schedules, else the system-wide ones. They cannot be changed through the API.
func (s *Scheduler) Inherited(id presence.UserID) []presence.Schedule {
	if u, ok := s.opts.Engine.Catalog().User(id); ok && len(u.Schedules) > 0 {
		return u.Schedules
	}
	return s.compiled.Load().schedules
}

// Location is the time zone the entries the user inherits run in (Inherited): the
// configuration's.
func (s *Scheduler) Location(id presence.UserID) *time.Location { return s.location(id) }

// TimeZone is the time zone the user's own entries run in, and whether the user chose it
// (SetTimeZone); else it is the zone of the entries they inherit (Location).
func (s *Scheduler) TimeZone(ctx context.Context, id presence.UserID) (*time.Location, bool, error) {
	name, err := s.opts.Redis.HGet(ctx, s.personalKey(id), timeZoneField).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, presence.StoreError(err, "trigger: read the time zone of "+string(id), s.personalKey(id))
	}
	loc, own := s.ownLocation(id, name)
	return loc, own, nil
}

// ownLocation is the zone of a user's own entries given the name they keep ("" for none).
func (s *Scheduler) ownLocation(id presence.UserID, name string) (*time.Location, bool) {
	if name == "" {
		return s.location(id), false
	}
	loc, err := CheckTimeZone(name)
	if err != nil {
		// Checked when it was set: a zone the time zone database no longer knows.
		s.log.Error("a user's time zone is unknown; their entries run in the configured zone", "user", id, "err", err)
		return s.location(id), false
	}
	return loc, true
}

// CheckTimeZone checks a time zone's IANA name (e.g. Europe/Berlin) and returns its location.
func CheckTimeZone(name string) (*time.Location, error) {
	problem := func() error {
		return &presence.ValidationError{Problems: []string{fmt.Sprintf(
			"time_zone: %q is not a known time zone (an IANA name such as Europe/Berlin or America/New_York)", name)}}
	}
	// "" and "Local" load as UTC and as the server's zone: neither names a zone.
	if name == "" || name == "Local" || len(name) > maxTimeZoneLen || strings.ContainsFunc(name, unicode.IsControl) {
		return nil, problem()
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, problem()
	}
	return loc, nil
}

// SetTimeZone sets the time zone the user's own entries run in (an IANA name, CheckTimeZone),
// or with "" returns them to the zone of the entries they inherit. The occurrences of their
// enabled entries already planned are planned again in the new zone.
func (s *Scheduler) SetTimeZone(ctx context.Context, id presence.UserID, name string) error {
	if _, ok := s.opts.Engine.Catalog().User(id); !ok {
		return fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	key := s.personalKey(id)
	if name == "" {
		if err := s.opts.Redis.HDel(ctx, key, timeZoneField).Err(); err != nil {
			return presence.StoreError(err, "trigger: reset the time zone of "+string(id), key)
		}
	} else {
		if _, err := CheckTimeZone(name); err != nil {
			return err
		}
		if _, err := s.opts.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, timeZoneField, name)
			p.SAdd(ctx, s.personalUsersKey(), string(id))
			return nil
		}); err != nil {
			return presence.StoreError(err, "trigger: save the time zone of "+string(id), key)
		}
	}
	all, err := s.opts.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		return presence.StoreError(err, "trigger: read the schedule of "+string(id), key)
	}
	for _, e := range decodePersonal(s, id, all) {
		if err := s.unplan(ctx, id, e.Name); err != nil {
			return err
		}
	}
	loc, _ := s.ownLocation(id, all[timeZoneField])
	now := s.now()
	return s.planEntries(ctx, id, enabledEntries(s, id, all), loc, now, now.Add(s.opts.Horizon))
}

// SavePersonal creates or replaces one of the user's own entries (by name), checked as the
// configuration's are, for a profile the user may switch to (personal ones included). An
// enabled entry's occurrences of the coming Horizon are written to Redis at once, so an entry
// for a minute from now fires; a disabled one's are taken back.
func (s *Scheduler) SavePersonal(ctx context.Context, id presence.UserID, e PersonalEntry) error {
	if _, ok := s.opts.Engine.Catalog().User(id); !ok {
		return fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	var problems []string
	if err := TriggerName(e.Name); err != nil {
		problems = append(problems, "name: "+err.Error())
	}
	entry, err := ParseEntry(e.Schedule)
	var verr *presence.ValidationError
	if errors.As(err, &verr) {
		problems = append(problems, verr.Problems...)
	} else if err != nil {
		return err
	}
	if slices.ContainsFunc(s.Inherited(id), func(x presence.Schedule) bool { return x.Name == e.Name }) {
		problems = append(problems, fmt.Sprintf("name: %q is the name of an entry you inherit", e.Name))
	}
	if e.Profile != "" {
		ps, err := s.opts.Engine.Profiles(ctx, id)
		if err != nil {
			return err
		}
		if presence.FindProfile(ps, e.Profile) == nil {
			problems = append(problems, fmt.Sprintf("profile: %q is none of your profiles", e.Profile))
		}
	}
	own, err := s.Personal(ctx, id)
	if err != nil {
		return err
	}
	if len(own) >= MaxPersonalEntries && !slices.ContainsFunc(own, func(x PersonalEntry) bool { return x.Name == e.Name }) {
		problems = append(problems, fmt.Sprintf("name: you have %d schedule entries, the limit is %d", len(own), MaxPersonalEntries))
	}
	if len(problems) > 0 {
		return &presence.ValidationError{Problems: problems}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.opts.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.personalKey(id), e.Name, b)
		p.SAdd(ctx, s.personalUsersKey(), string(id))
		return nil
	})
	if err != nil {
		return presence.StoreError(err, "trigger: save the schedule of "+string(id), s.personalKey(id))
	}
	if err := s.unplan(ctx, id, e.Name); err != nil {
		return err
	}
	if !e.Disabled {
		loc, _, err := s.TimeZone(ctx, id)
		if err != nil {
			return err
		}
		now := s.now()
		return s.planEntries(ctx, id, []Entry{entry}, loc, now, now.Add(s.opts.Horizon))
	}
	return nil
}

// DeletePersonal removes one of the user's own entries and its planned occurrences;
// presence.ErrUnknownProfile's sibling: false when there was none.
func (s *Scheduler) DeletePersonal(ctx context.Context, id presence.UserID, name string) (bool, error) {
	if TriggerName(name) != nil {
		return false, nil // no entry has that name (nor is the time zone's field one)
	}
	n, err := s.opts.Redis.HDel(ctx, s.personalKey(id), name).Result()
	if err != nil {
		return false, presence.StoreError(err, "trigger: delete from the schedule of "+string(id), s.personalKey(id))
	}
	if n == 0 {
		return false, nil
	}
	return true, s.unplan(ctx, id, name)
}

// unplan takes the planned occurrences of one of the user's entries back from the due set
// (ends of ranges already started stay: the user returns as planned).
func (s *Scheduler) unplan(ctx context.Context, id presence.UserID, name string) error {
	members, err := s.opts.Redis.ZRangeByScore(ctx, s.dueKey(), &redis.ZRangeBy{
		Min: strconv.FormatInt(s.now().Add(-s.opts.MaxLate).UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return presence.StoreError(err, "trigger: read the due events", s.dueKey())
	}
	var drop []any
	for _, m := range members {
		var ev event
		if json.Unmarshal([]byte(m), &ev) == nil && ev.User == id && ev.Name == name && ev.Kind != kindEnd {
			drop = append(drop, m)
		}
	}
	if len(drop) > 0 {
		if err := s.opts.Redis.ZRem(ctx, s.dueKey(), drop...).Err(); err != nil {
			return presence.StoreError(err, "trigger: take back planned events", s.dueKey())
		}
	}
	return nil
}

// ownEntries are a user's enabled own entries, parsed, with the zone they run in.
type ownEntries struct {
	entries []Entry
	loc     *time.Location
}

// personalEntries returns the enabled personal entries of the users who keep any, parsed,
// with their zones.
func (s *Scheduler) personalEntries(ctx context.Context) (map[presence.UserID]ownEntries, error) {
	ids, err := s.opts.Redis.SMembers(ctx, s.personalUsersKey()).Result()
	if err != nil {
		return nil, presence.StoreError(err, "trigger: read who keeps schedules", s.personalUsersKey())
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.personalKey(presence.UserID(id)))
		}
		return nil
	}); err != nil {
		return nil, presence.StoreError(err, "trigger: read the personal schedules", s.personalUsersKey())
	}
	out := map[presence.UserID]ownEntries{}
	for i, id := range ids {
		uid := presence.UserID(id)
		all := cmds[i].Val()
		loc, _ := s.ownLocation(uid, all[timeZoneField])
		out[uid] = ownEntries{entries: enabledEntries(s, uid, all), loc: loc}
	}
	return out, nil
}

// enabledEntries parses a user's enabled entries from their hash.
func enabledEntries(s *Scheduler, id presence.UserID, all map[string]string) []Entry {
	var out []Entry
	for _, pe := range decodePersonal(s, id, all) {
		if pe.Disabled {
			continue
		}
		if e, err := ParseEntry(pe.Schedule); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// entries are the user's effective entries: those inherited, which run in the configuration's
// zone, and their own enabled ones with the zone those run in.
func (s *Scheduler) entries(ctx context.Context, id presence.UserID) (inherited []Entry, own ownEntries, _ error) {
	all, err := s.opts.Redis.HGetAll(ctx, s.personalKey(id)).Result()
	if err != nil {
		return nil, own, presence.StoreError(err, "trigger: read the schedule of "+string(id), s.personalKey(id))
	}
	own.loc, _ = s.ownLocation(id, all[timeZoneField])
	own.entries = enabledEntries(s, id, all)
	return s.entriesOf(id), own, nil
}

// occurrences are the occurrences in (from, to] of a user's inherited entries, in the
// configuration's zone, and of their own, in theirs, in time order.
func (s *Scheduler) occurrences(id presence.UserID, inherited []Entry, own ownEntries, from, to time.Time) []Occurrence {
	out := Occurrences(inherited, s.holidays(), s.location(id), from, to)
	if len(own.entries) > 0 {
		out = append(out, Occurrences(own.entries, s.holidays(), own.loc, from, to)...)
		slices.SortStableFunc(out, func(a, b Occurrence) int { return a.Start.Compare(b.Start) })
	}
	return out
}

// Week lists the occurrences of the user's effective entries from from for seven days.
func (s *Scheduler) Week(ctx context.Context, id presence.UserID, from time.Time) ([]Occurrence, error) {
	inherited, own, err := s.entries(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.occurrences(id, inherited, own, from, from.Add(7*24*time.Hour)), nil
}

// UserKeys are the keys the scheduler keeps for one user (their triggers' record, their own
// schedule): archived with the user's state when a reload removes the user
// (presence.EngineOptions.ArchiveKeys).
func (s *Scheduler) UserKeys(id presence.UserID) []string {
	return []string{s.recordKey(id), s.personalKey(id)}
}
