package presence_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
)

// TestUsersByProfileCountsWhatRedisHolds: presenced_users_by_profile counts every user once,
// from Redis: system-wide profiles by ID (zero for an empty one), personal profiles under one
// label value, users never switched, and users whose profile is gone or whose state cannot be
// read; a state saved before the profile was kept beside it is read from its JSON.
func TestUsersByProfileCountsWhatRedisHolds(t *testing.T) {
	ctx := context.Background()
	us := users(8)
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, us, []presence.Profile{presence.Lunch()}, time.Hour)
	f.switchTo(t, us[0].ID, "lunch")
	f.switchTo(t, us[1].ID, "lunch")
	f.switchTo(t, us[2].ID, presence.ProfileDND)
	// us[3]: a personal profile
	f.must(t, f.states.SavePersonalProfile(ctx, us[3].ID, &presence.Profile{ID: "home", Name: "Home"}))
	f.switchTo(t, us[3].ID, "home")
	// us[4]: never switched
	key := f.states.UserKey
	// us[5]: a state written before the profile field (only state and version)
	f.must(t, f.lab.HSet(ctx, key(us[5].ID), "state", `{"profile":"lunch","steps":[]}`, "version", "3").Err())
	// us[6]: a profile that exists no more
	f.must(t, f.lab.HSet(ctx, key(us[6].ID), "state", `{"profile":"gone","steps":[]}`, "version", "2", "profile", "gone").Err())
	// us[7]: a key of another type
	f.must(t, f.lab.Set(ctx, key(us[7].ID), "oops", 0).Err())

	if got, _ := f.lab.HGet(ctx, key(us[0].ID), "profile").Result(); got != "lunch" {
		t.Fatalf("a switch wrote the profile field %q, want lunch", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(presence.NewProfileCollector(f.states, f.e.Catalog))
	want := `
# HELP presenced_users_by_profile Users by active profile, as recorded in Redis: a system-wide profile's ID, _personal (a personal profile), _none (never switched) or _unknown (a profile that exists no more, or a state that cannot be read).
# TYPE presenced_users_by_profile gauge
presenced_users_by_profile{profile="_none"} 1
presenced_users_by_profile{profile="_personal"} 1
presenced_users_by_profile{profile="_unknown"} 2
presenced_users_by_profile{profile="available"} 0
presenced_users_by_profile{profile="dnd"} 1
presenced_users_by_profile{profile="lunch"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "presenced_users_by_profile"); err != nil {
		t.Fatal(err)
	}

	// Deleting the personal profile makes its user unknown; a switch moves a user.
	if _, err := f.states.DeletePersonalProfile(ctx, us[3].ID, "home"); err != nil {
		t.Fatal(err)
	}
	f.switchTo(t, us[0].ID, presence.ProfileAvailable)
	got := presence.UsersByProfile(ctx, f.states, f.e.Catalog())
	for p, n := range map[string]int{"lunch": 2, "available": 1, presence.ProfileLabelPersonal: 0, presence.ProfileLabelUnknown: 3, presence.ProfileLabelNone: 1} {
		if got[p] != n {
			t.Errorf("users in %s = %d, want %d (all: %v)", p, got[p], n, got)
		}
	}
}
