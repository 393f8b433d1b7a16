package main

import (
	"bytes"
	"testing"
)

// TestEventStreamsDefault: http.max_event_streams leaves 24 of http.max_connections to the API
// and the pages (1,000 of the default 1,024: docs/BENCHMARKS.md's 1,000 open pages fit), at
// most half of a small max_connections; a value set is taken as it is.
func TestEventStreamsDefault(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{"", 1000},
		{"http: {max_connections: 8}", 4},
		{"http: {max_connections: 40}", 20},
		{"http: {max_connections: 4096}", 4072},
		{"http: {max_connections: 1024, max_event_streams: 768}", 768},
		{"http: {max_connections: 8, max_event_streams: 4}", 4},
	} {
		args := []string{"-config", writeFile(t, "presenced.yaml", tc.yaml+"\n")}
		cfg, _, err := loadConfig(args, minimalEnv, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := cfg.HTTP.eventStreams(); got != tc.want {
			t.Errorf("%q: %d event streams, want %d", tc.yaml, got, tc.want)
		}
	}
}
