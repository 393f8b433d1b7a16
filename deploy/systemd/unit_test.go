// Package systemd_test checks the shipped unit, presenced.service, with systemd's own tools
// (systemd-analyze; Debian's systemd package, which make test installs when it is missing).
package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// repoPath is a path into the repository as the unit's comments name them.
var repoPath = regexp.MustCompile(`\b(?:deploy|bin|docs|cmd|testdata)/[A-Za-z0-9_./-]*[A-Za-z0-9_]|\bREADME\.md\b`)

// TestUnitHeaderReferences: every file of the repository that the unit's header names (how to
// build the package, what to install by hand) exists.
func TestUnitHeaderReferences(t *testing.T) {
	unit, err := os.ReadFile("presenced.service")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for i, line := range strings.Split(string(unit), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range repoPath.FindAllString(line, -1) {
			if strings.HasPrefix(p, "bin/") {
				continue // made by make bin
			}
			seen++
			if _, err := os.Stat(filepath.Join("..", "..", p)); err != nil {
				t.Errorf("presenced.service:%d names %s, which is not in the repository", i+1, p)
			}
		}
	}
	if seen < 3 {
		t.Errorf("the header named %d files of the repository: the check looked at nothing", seen)
	}
}
