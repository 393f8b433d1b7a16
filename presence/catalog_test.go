package presence

import "testing"

// TestHomeProfile: the user's own default profile wins, then the caller's first fallback that
// is set, then "available"; each caller passes the fallbacks of its configuration.
func TestHomeProfile(t *testing.T) {
	var c *Catalog // HomeProfile reads nothing of the catalog
	own := &User{ID: "alice", DefaultProfile: "office"}
	none := &User{ID: "bob"}
	for _, tc := range []struct {
		name      string
		u         *User
		fallbacks []string
		want      string
	}{
		{"timed profile, user's own", own, nil, "office"},
		{"timed profile, none", none, nil, ProfileAvailable},
		{"timed profile, user gone", nil, nil, ProfileAvailable},
		{"feature codes, user's own beats feature_codes.default_profile", own, []string{"desk"}, "office"},
		{"feature codes, feature_codes.default_profile", none, []string{"desk"}, "desk"},
		{"dnd key, dnd_key.default_profile beats feature_codes.default_profile", none, []string{"lunch", "desk"}, "lunch"},
		{"dnd key, dnd_key.default_profile empty", none, []string{"", "desk"}, "desk"},
		{"dnd key, user's own beats both", own, []string{"lunch", "desk"}, "office"},
		{"every fallback empty", none, []string{"", ""}, ProfileAvailable},
		{"user gone, fallback", nil, []string{"desk"}, "desk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.HomeProfile(tc.u, tc.fallbacks...); got != tc.want {
				t.Errorf("HomeProfile(%v, %q) = %q, want %q", tc.u, tc.fallbacks, got, tc.want)
			}
		})
	}
}
