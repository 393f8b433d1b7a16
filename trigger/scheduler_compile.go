package trigger

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/presenced/presenced/presence"
)

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
