package presence

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Label values of presenced_users_by_profile besides the system-wide profiles' IDs. None can be
// a profile's ID (an ID starts with a letter or digit), so none hides a profile of that name.
const (
	// ProfileLabelPersonal counts the users whose active profile is one of their own: their
	// names are the users' business, and one value per user's profile would grow without bound.
	ProfileLabelPersonal = "_personal"
	// ProfileLabelNone counts the users presenced has never switched.
	ProfileLabelNone = "_none"
	// ProfileLabelUnknown counts the users whose active profile exists no more (a system-wide
	// profile removed from the configuration, a personal profile deleted) or whose state in
	// Redis cannot be read.
	ProfileLabelUnknown = "_unknown"
)

// ActiveProfile is a user's active profile as Redis records it.
type ActiveProfile struct {
	// ID is the profile's ID; empty when the user's state cannot be read.
	ID string
	// Personal reports that the user has a personal profile of that ID.
	Personal bool
}

// ActiveProfiles returns the active profile of each user of ids that presenced has switched,
// in two or three round trips whatever the number of users, reading no state's JSON except
// of states written before their profile was kept beside them. isSystem tells a system-wide
// profile's ID: only for other IDs does it look whether the user has a personal profile of
// that ID. A user whose state cannot be read has an empty ActiveProfile.
func (s *StateStore) ActiveProfiles(ctx context.Context, ids []UserID, isSystem func(string) bool) (map[UserID]ActiveProfile, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	profiles := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			profiles[i] = p.HMGet(ctx, s.userKey(id), "profile", "version")
		}
		return nil
	}); err != nil && !redis.HasErrorPrefix(err, "WRONGTYPE") {
		return nil, s.fail(err, "read active profiles", s.userKey(ids[0]))
	}
	out := make(map[UserID]ActiveProfile, len(ids))
	var old []UserID // states saved before the profile field was written
	for i, id := range ids {
		vals, err := profiles[i].Result()
		if err != nil || len(vals) != 2 {
			out[id] = ActiveProfile{} // a key of another type
			continue
		}
		if p, _ := vals[0].(string); p != "" {
			out[id] = ActiveProfile{ID: p}
		} else if v, _ := vals[1].(string); v != "" {
			old = append(old, id)
		}
	}
	if len(old) > 0 {
		states := make([]*redis.StringCmd, len(old))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range old {
				states[i] = p.HGet(ctx, s.userKey(id), "state")
			}
			return nil
		}); err != nil && err != redis.Nil && !redis.HasErrorPrefix(err, "WRONGTYPE") {
			return nil, s.fail(err, "read active profiles", s.userKey(old[0]))
		}
		for i, id := range old {
			var st struct {
				Profile string `json:"profile"`
			}
			raw, err := states[i].Result()
			if err == redis.Nil {
				continue // a version but no state: never switched
			}
			if err == nil && json.Unmarshal([]byte(raw), &st) == nil && st.Profile != "" {
				out[id] = ActiveProfile{ID: st.Profile}
			} else {
				out[id] = ActiveProfile{}
			}
		}
	}
	var others []UserID
	for id, a := range out {
		if a.ID != "" && !isSystem(a.ID) {
			others = append(others, id)
		}
	}
	if len(others) > 0 {
		exists := make([]*redis.BoolCmd, len(others))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range others {
				exists[i] = p.HExists(ctx, s.profilesKey(id), out[id].ID)
			}
			return nil
		}); err != nil && !redis.HasErrorPrefix(err, "WRONGTYPE") {
			return nil, s.fail(err, "read active profiles", s.profilesKey(others[0]))
		}
		for i, id := range others {
			if ok, err := exists[i].Result(); err == nil && ok {
				out[id] = ActiveProfile{ID: out[id].ID, Personal: true}
			}
		}
	}
	s.ok()
	return out, nil
}

// profileCollector reports how many users are in each profile, as every instance reads it
// from Redis at scrape time (presenced_users_by_profile).
type profileCollector struct {
	states  *StateStore
	catalog func() *Catalog
}

var usersByProfileDesc = prometheus.NewDesc("presenced_users_by_profile",
	"Users by active profile, as recorded in Redis: a system-wide profile's ID, "+ProfileLabelPersonal+
		" (a personal profile), "+ProfileLabelNone+" (never switched) or "+ProfileLabelUnknown+" (a profile that exists no more, or a state that cannot be read).",
	[]string{"profile"}, nil)

func (c *profileCollector) Describe(ch chan<- *prometheus.Desc) { ch <- usersByProfileDesc }

func (c *profileCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	counts := UsersByProfile(ctx, c.states, c.catalog())
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(usersByProfileDesc, prometheus.GaugeValue, float64(n), p)
	}
}

// UsersByProfile counts the catalog's users by the label value of their active profile in
// presenced_users_by_profile: every system-wide profile (zero when nobody is in it),
// ProfileLabelPersonal, ProfileLabelNone, ProfileLabelUnknown. It returns nil when the store
// cannot be read.
func UsersByProfile(ctx context.Context, states *StateStore, cat *Catalog) map[string]int {
	ids := make([]UserID, len(cat.Users))
	for i, u := range cat.Users {
		ids[i] = u.ID
	}
	counts := map[string]int{ProfileLabelPersonal: 0, ProfileLabelNone: 0, ProfileLabelUnknown: 0}
	for _, p := range cat.Profiles {
		counts[p.ID] = 0
	}
	if len(ids) == 0 {
		return counts
	}
	isSystem := func(id string) bool { _, ok := cat.Profile(id); return ok }
	act, err := states.ActiveProfiles(ctx, ids, isSystem)
	if err != nil {
		return nil // no value rather than a wrong one; the rest of the scrape stands
	}
	for _, id := range ids {
		a, ok := act[id]
		switch {
		case !ok:
			counts[ProfileLabelNone]++
		case a.ID == "":
			counts[ProfileLabelUnknown]++
		case isSystem(a.ID):
			counts[a.ID]++
		case a.Personal:
			counts[ProfileLabelPersonal]++
		default:
			counts[ProfileLabelUnknown]++
		}
	}
	return counts
}
