package ami

import (
	"strconv"
	"strings"
	"time"
)

// Helpers for turning reply fields into typed values. They are lenient: a
// field Asterisk left empty or changed the format of becomes the zero
// value, never an error, so that one odd field does not make a whole
// QueueStatus unusable. The full message stays available in the Raw field
// of the typed results.

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func fieldInt(m *Message, key string) int {
	n, err := strconv.Atoi(strings.TrimSpace(m.Get(key)))
	if err != nil {
		return 0
	}
	return n
}

func fieldFloat(m *Message, key string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(m.Get(key)), 64)
	if err != nil {
		return 0
	}
	return f
}

// fieldBool parses Asterisk's booleans the way ast_true does (yes, true,
// y, t, 1, on).
func fieldBool(m *Message, key string) bool {
	switch strings.ToLower(strings.TrimSpace(m.Get(key))) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}

// fieldUnix parses epoch seconds; 0 or empty gives the zero Time.
func fieldUnix(m *Message, key string) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(m.Get(key)), 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

func fieldSeconds(m *Message, key string) time.Duration {
	return time.Duration(fieldInt(m, key)) * time.Second
}
