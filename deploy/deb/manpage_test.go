package deb_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`)

// TestManPageNamesEveryFlag: presenced(8) describes every flag `presenced -h` lists, and no
// flag presenced does not have.
func TestManPageNamesEveryFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "presenced")
	build := exec.Command("go", "build", "-o", bin, "./cmd/presenced")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero on some versions
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 8 {
		t.Fatalf("presenced -h listed %d flags:\n%s", len(flags), help)
	}
	page, err := os.ReadFile("man/presenced.8")
	if err != nil {
		t.Fatal(err)
	}
	man := string(page)
	for f := range flags {
		if !strings.Contains(man, `\-`+strings.ReplaceAll(f, "-", `\-`)) {
			t.Errorf("presenced(8) does not describe -%s", f)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^\.BI? \\-([a-z\\-]+)`).FindAllStringSubmatch(man, -1) {
		if f := strings.ReplaceAll(m[1], `\-`, "-"); !flags[f] {
			t.Errorf("presenced(8) describes -%s, which presenced -h does not list", f)
		}
	}
}
