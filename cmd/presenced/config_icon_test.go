package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUnknownIconWarns: a system-wide profile may name any icon, but -check-config warns when
// the web app has no icon of that name (it draws the profile's initial instead).
func TestUnknownIconWarns(t *testing.T) {
	for _, tc := range []struct{ name, icon, want string }{
		{"known", "lunch", ""},
		{"none", "", ""},
		{"unknown", "rocket", `presenced: warning: profiles[1].icon: the web app has no icon "rocket"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := fixture(t, "config/issue.yaml", nil)
			if tc.icon != "" {
				yaml = strings.Replace(yaml, "    name: Lunch\n", "    name: Lunch\n    icon: "+tc.icon+"\n", 1)
			}
			var stdout, stderr bytes.Buffer
			code := realMain([]string{"-config", writeFile(t, "presenced.yaml", yaml), "-check-config"}, nil, &stdout, &stderr)
			if code != 0 || !strings.Contains(stdout.String(), "configuration ok") {
				t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
			}
			if got := strings.TrimSpace(stderr.String()); (tc.want == "" && got != "") || !strings.Contains(got, tc.want) {
				t.Errorf("stderr %q, want %q", got, tc.want)
			}
		})
	}
}
