package trigger

import (
	"strings"
	"testing"
	"time"
)

// TestParseUntil reads until as people say it, in Europe/Berlin, on ordinary days and across
// both daylight-saving changes of 2026 (29 March 02:00 → 03:00, 25 October 03:00 → 02:00).
func TestParseUntil(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, until string
		now         string // RFC 3339
		want        string // RFC 3339, UTC
		err         string
	}{
		{"later today", "16:00", "2026-06-01T09:00:00+02:00", "2026-06-01T14:00:00Z", ""},
		{"past: tomorrow", "16:00", "2026-06-01T17:00:00+02:00", "2026-06-02T14:00:00Z", ""},
		{"exactly now: tomorrow", "16:00", "2026-06-01T16:00:00+02:00", "2026-06-02T14:00:00Z", ""},
		{"one digit hour", "9:30", "2026-06-01T09:00:00+02:00", "2026-06-01T07:30:00Z", ""},
		{"spring: the night before, 16:00 tomorrow in summer time", "16:00", "2026-03-28T20:00:00+01:00", "2026-03-29T14:00:00Z", ""},
		{"spring: tomorrow 08:00", "tomorrow 08:00", "2026-03-28T20:00:00+01:00", "2026-03-29T06:00:00Z", ""},
		{"spring: a time the clock skips is the jump", "02:30", "2026-03-29T01:00:00+01:00", "2026-03-29T01:00:00Z", ""},
		{"autumn: 16:00 tomorrow in winter time", "16:00", "2026-10-24T20:00:00+02:00", "2026-10-25T15:00:00Z", ""},
		{"autumn: a time the clock shows twice is the first", "tomorrow 02:30", "2026-10-24T20:00:00+02:00", "2026-10-25T00:30:00Z", ""},
		{"tomorrow without a time", "tomorrow", "2026-06-01T09:00:00+02:00", "2026-06-02T06:00:00Z", ""},
		{"weekday", "monday", "2026-06-03T09:00:00+02:00", "2026-06-08T06:00:00Z", ""}, // a Wednesday
		{"weekday with time, abbreviated, any case", "Fri 12:30", "2026-06-03T09:00:00+02:00", "2026-06-05T10:30:00Z", ""},
		{"today's weekday is next week", "wednesday 18:00", "2026-06-03T09:00:00+02:00", "2026-06-10T16:00:00Z", ""},
		{"weekday across the spring change", "sunday 16:00", "2026-03-27T12:00:00+01:00", "2026-03-29T14:00:00Z", ""},
		{"duration", "90m", "2026-06-01T09:00:00+02:00", "2026-06-01T08:30:00Z", ""},
		{"RFC 3339", "2026-06-01T16:00:00+02:00", "2026-06-01T09:00:00+02:00", "2026-06-01T14:00:00Z", ""},
		{"not a time", "25:00", "2026-06-01T09:00:00+02:00", "", `"25:00" is neither`},
		{"not a day", "someday 08:00", "2026-06-01T09:00:00+02:00", "", "weekday"},
		{"tomorrow with a bad time", "tomorrow 8", "2026-06-01T09:00:00+02:00", "", "neither"},
		{"words", "when I am back", "2026-06-01T09:00:00+02:00", "", "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUntil(tc.until, at(tc.now), berlin)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseUntil(%q) = %v, %v; want an error with %q", tc.until, got, err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(at(tc.want)) {
				t.Fatalf("ParseUntil(%q) at %s = %v (%v), %v; want %s", tc.until, tc.now, got.UTC(), got.In(berlin), err, tc.want)
			}
		})
	}
}
