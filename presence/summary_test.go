package presence

import "testing"

// TestUserSummaryMatches: each overview filter of the admin page passes exactly the summaries
// it names; an unknown filter passes nobody.
func TestUserSummaryMatches(t *testing.T) {
	summaries := map[string]UserSummary{
		"in sync":           {InSync: true, Checked: true},
		"not checked":       {InSync: true},
		"failed":            {Checked: true, Failed: 1},
		"reported":          {Checked: true, Reported: 2},
		"deferred":          {Checked: true, Deferred: 1},
		"on a call":         {Checked: true, InSync: true, PresenceEntry: PresenceEntry{OnCall: true}},
		"reported, on call": {Checked: true, Reported: 1, PresenceEntry: PresenceEntry{OnCall: true}},
	}
	for _, tc := range []struct {
		filter string
		want   []string // the summaries that pass
	}{
		{"", []string{"in sync", "not checked", "failed", "reported", "deferred", "on a call", "reported, on call"}},
		{"out_of_sync", []string{"failed", "reported", "deferred", "reported, on call"}},
		{"reported", []string{"reported", "reported, on call"}},
		{"on_call", []string{"on a call", "reported, on call"}},
		{"OUT_OF_SYNC", nil},
		{"profile", nil},
	} {
		for name, s := range summaries {
			want := false
			for _, w := range tc.want {
				want = want || w == name
			}
			if got := s.Matches(tc.filter); got != want {
				t.Errorf("%q.Matches(%q) = %v, want %v", name, tc.filter, got, want)
			}
		}
	}
}
