// Package systemd_test checks the shipped unit, presenced.service, with systemd's own tools
// (systemd-analyze; Debian's systemd package, which make test installs when it is missing).
package systemd_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit may have: up to 2.0
// systemd calls it "OK".
const maxExposure = 2.0

var exposure = regexp.MustCompile(`Overall exposure level for presenced\.service: ([0-9.]+) `)

// TestUnitHardening: systemd-analyze security rates the unit's exposure at most 2.0 ("OK").
func TestUnitHardening(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (Debian's systemd package; make test installs it)")
	}
	out, err := exec.Command(tool, "security", "--no-pager", "--offline=true", "presenced.service").CombinedOutput()
	m := exposure.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > maxExposure {
		t.Errorf("systemd-analyze security rates presenced.service %.1f, above %.1f:\n%s", score, maxExposure, out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
}
