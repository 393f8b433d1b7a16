package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// loadConfigEnv makes the test binary, re-executed by BenchmarkConfigLoadRSS, load the
// configuration file it names (and, with PRESENCED_TEST_LOAD_TWICE, load it again while the
// first is kept, as a reload does) and exit: its peak RSS is what loading costs.
const loadConfigEnv = "PRESENCED_TEST_LOAD_CONFIG"

// loadConfigAndExit is the re-executed binary's work (TestMain).
func loadConfigAndExit(path string) {
	environ := append([]string{"PRESENCED_STORE_SNAPSHOT_PATH=" + os.DevNull}, minimalEnv...)
	first, _, err := loadConfig([]string{"-config", path}, environ, io.Discard)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Getenv("PRESENCED_TEST_LOAD_TWICE") == "1" {
		second, err := first.reload()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(io.Discard, len(first.catalog.Users), len(second.catalog.Users)) // both alive until here
	}
	os.Exit(0)
}

// usersYAML is a configuration of n users as a large site has them
// (testdata/config/large-site.yaml): extensions 20000 on, PINs 0000 on.
func usersYAML(t testing.TB, n int) string {
	t.Helper()
	type user struct {
		Ext int
		PIN string
	}
	users := make([]user, n)
	for i := range users {
		users[i] = user{Ext: 20000 + i, PIN: fmt.Sprintf("%04d", i%10000)}
	}
	return fixture(t, "config/large-site.yaml", users)
}

// BenchmarkConfigLoadRSS loads a configuration of 100 and of 10,000 users in a process of its
// own (this test binary re-executed) and reports that process's peak RSS: the start (load),
// and a reload (a second load while the first configuration is in force). The test binary's
// own footprint is in it; the load of 100 users shows how much.
//
//	go test -run '^$' -bench ConfigLoadRSS -benchtime 1x ./cmd/presenced
func BenchmarkConfigLoadRSS(b *testing.B) {
	dir := b.TempDir()
	for _, n := range []int{100, 10000} {
		path := filepath.Join(dir, fmt.Sprintf("users-%d.yaml", n))
		if err := os.WriteFile(path, []byte(usersYAML(b, n)), 0o600); err != nil {
			b.Fatal(err)
		}
		for _, twice := range []bool{false, true} {
			name := fmt.Sprintf("users=%d/load", n)
			if twice {
				name = fmt.Sprintf("users=%d/reload", n)
			}
			b.Run(name, func(b *testing.B) {
				var peak int64
				for b.Loop() {
					cmd := exec.Command(os.Args[0])
					cmd.Env = []string{loadConfigEnv + "=" + path}
					if twice {
						cmd.Env = append(cmd.Env, "PRESENCED_TEST_LOAD_TWICE=1")
					}
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%v: %.300s", err, out)
					}
					if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
						peak = max(peak, ru.Maxrss) // KiB on Linux
					}
				}
				b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
			})
		}
	}
}

// TestConfigFileSplitDecodesAsWhole: a file whose lists are parsed item by item (splitFile)
// decodes exactly as when parsed whole, for the repository's configurations and a large
// generated one; files it cannot cut safely (flow lists, anchors) are parsed whole.
func TestConfigFileSplitDecodesAsWhole(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		raw   []byte
		split bool
	}{
		{"end-to-end", []byte(fixture(t, "config/end-to-end.yaml", nil)), true},
		{"issue", []byte(fixture(t, "config/issue.yaml", nil)), true},
		{"lab", read("presenced.lab.yaml"), true},
		{"example", read("presenced.example.yaml"), true},
		{"generated", []byte(usersYAML(t, 50)), true},
		{"list at column 0 with comments", []byte("users:\n# the first\n- id: a\n  extension: \"1\"\n  devices: [{dial: PJSIP/1, family: desk}]\n\n- id: b # second\n  extension: \"2\"\n  devices:\n  - {dial: PJSIP/2, family: desk}\nprofiles:\n  - id: x\n    on_enter:\n      - {action: dnd}\n"), true},
		{"flow list", []byte("users: [{id: a, extension: \"1\", devices: [{dial: PJSIP/1, family: desk}]}]\n"), false},
		{"an alias to another item: parsed whole", []byte("users:\n  - &a {id: a, extension: \"1\", devices: [{dial: PJSIP/1, family: desk}]}\n  - *a\n"), true},
		{"two documents", []byte("users:\n  - {id: a, extension: \"1\", devices: [{dial: PJSIP/1, family: desk}]}\n---\nx: 1\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, items, ok := splitFile(tc.raw)
			if ok != tc.split {
				t.Fatalf("splitFile ok = %v, want %v", ok, tc.split)
			}
			if ok && !strings.Contains(tc.name, "parsed whole") {
				for key, its := range items {
					if _, _, _, ok := readItems(key, its, fileLists{}); !ok {
						t.Errorf("the items of %s were not parsed one by one", key)
					}
				}
			}
			tree1, lists1, un1, pr1, err1 := readConfigFile(tc.raw)
			tree2, lists2, un2, pr2, err2 := readNodes(tc.raw)
			if err1 != nil || err2 != nil {
				t.Fatalf("errors: %v, %v", err1, err2)
			}
			if !reflect.DeepEqual(tree1, tree2) || !reflect.DeepEqual(lists1, lists2) || !slices.Equal(un1, un2) || !slices.Equal(pr1, pr2) {
				t.Fatalf("split and whole differ:\n%+v\n%+v\n%v %v / %v %v", lists1, lists2, un1, pr1, un2, pr2)
			}
			if tc.name == "generated" && (len(lists1.users) != 50 || len(lists1.profiles) == 0) {
				t.Fatalf("%d users and %d profiles decoded, want 50 and some", len(lists1.users), len(lists1.profiles))
			}
		})
	}
}
