package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/lab"
)

var (
	env    *lab.Env
	tmpDir string // bin/ with the built binaries, deploy/ linked to the checkout's

	daemonOnce sync.Once
	daemon     *lab.Presenced
	daemonErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "presenced-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	code := lab.Main(m, lab.Options{Asterisk: true, Redis: true}, func(e *lab.Env) { env = e })
	if daemon != nil {
		daemon.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// presenced is presenced as `make up` runs it (deploy/presenced.lab.yaml, JSON log), at
// log level debug, with bin/presenced and bin/presencectl built in tmpDir.
func presenced(t *testing.T) *lab.Presenced {
	t.Helper()
	daemonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin := filepath.Join(tmpDir, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			daemonErr = err
			return
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "presencectl"), "./cmd/presencectl")
		cmd.Dir = lab.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			daemonErr = fmt.Errorf("go build ./cmd/presencectl: %w\n%s", err, out)
			return
		}
		presencedBin, err := lab.BuildPresenced(ctx, bin)
		if err != nil {
			daemonErr = err
			return
		}
		if err := os.Symlink(filepath.Join(lab.RepoRoot(), "deploy"), filepath.Join(tmpDir, "deploy")); err != nil {
			daemonErr = err
			return
		}
		daemon, daemonErr = env.StartPresenced(ctx, presencedBin, lab.LabConfig(), "e2e", "PRESENCED_LOG_LEVEL=debug")
	})
	if daemonErr != nil {
		t.Fatal(daemonErr)
	}
	return daemon
}

// runnable are the programs a README block may run for this test to run it: the examples
// against the lab and what they need. Blocks with anything else (make, a daemon against
// another PBX) are the Makefile's and the other tests' business.
var runnable = map[string]bool{"curl": true, "bin/presencectl": true, "bin/presenced": true, "export": true,
	"echo": true, "openssl": true}

var curlAtStart = regexp.MustCompile(`(?m)^(\s*)curl `)

// TestReadmeExamples runs every curl and presencectl example of the README as written, in
// the README's order, against presenced as `make up` runs it (its address in place of
// http://127.0.0.1:8080); each must succeed (curl: a 2xx answer; presencectl: exit 0).
func TestReadmeExamples(t *testing.T) {
	d := presenced(t)
	readme, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Examples(string(readme), "curl -", "bin/presencectl ", "bin/presenced -print-hints", "bin/presenced -help")
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	for _, b := range blocks {
		progs := b.Programs()
		ok := true
		for i, p := range progs {
			switch {
			case p == "presenced" || p == "presencectl":
				t.Errorf("README.md:%d: %q: %s is not on the PATH after make bin; write bin/%s", b.Line, b.Commands[i], p, p)
			case !runnable[p]:
				ok = false
			}
		}
		if !ok {
			for i, p := range progs {
				if p == "curl" || p == "bin/presencectl" {
					t.Errorf("README.md:%d: the example %q is in a block this test cannot run (it also runs %v)", b.Line, b.Commands[i], progs)
				}
			}
			continue
		}
		name := fmt.Sprintf("README.md:%d", b.Line)
		t.Run(name, func(t *testing.T) {
			script := strings.ReplaceAll(b.Script, "http://127.0.0.1:8080", d.URL)
			script = curlAtStart.ReplaceAllString(script, "${1}curl --fail-with-body -sS ")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", script)
			cmd.Dir = tmpDir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmpDir, "PRESENCECTL_URL=" + d.URL}
			out, err := cmd.CombinedOutput()
			t.Logf("%s\n%s", script, out)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
		for _, p := range progs {
			ran[p]++
		}
	}
	// The README has both kinds of examples: a test that ran none of one kind would pass
	// whatever the README says.
	if ran["curl"] < 5 || ran["bin/presencectl"] < 5 {
		t.Errorf("ran %d curl and %d presencectl examples; the README has more", ran["curl"], ran["bin/presencectl"])
	}
}

// TestDaemonLog: a hand change repaired is logged at info with what was changed; every line
// of the JSON log is one JSON object with no key twice, and durations are Go duration
// strings, never integer nanoseconds.
func TestDaemonLog(t *testing.T) {
	d := presenced(t)
	for _, p := range []string{"available", "lunch"} {
		req, _ := http.NewRequest(http.MethodPut, d.URL+"/api/v1/users/carol/profile", strings.NewReader(`{"profile":"`+p+`"}`))
		req.Header.Set("Authorization", "Bearer lab-carol-gThzgK9i7GvUcaiB")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("switch carol to %s: %d", p, resp.StatusCode)
		}
	}
	pbx := env.AMI(t, true, nil)
	if err := pbx.QueuePause(context.Background(), "Local/1003@presenced-queue-member/n", "sales", false, ""); err != nil {
		t.Fatal(err)
	}
	var repaired []string
	for deadline := time.Now().Add(10 * time.Second); len(repaired) == 0 && time.Now().Before(deadline); {
		for _, l := range d.LogLines(`"msg":"drift repaired"`) {
			if strings.Contains(l, `"user":"carol"`) && strings.Contains(l, "queue_pause sales Local/1003@presenced-queue-member/n paused (Lunch)") {
				repaired = append(repaired, l)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(repaired) != 1 || !strings.Contains(repaired[0], `"level":"INFO"`) {
		t.Fatalf("the repair of carol's hand unpause logged %d times at info: %v", len(repaired), repaired)
	}

	durations := 0
	for i, line := range strings.Split(strings.TrimSpace(d.Log()), "\n") {
		keys, err := checkObject(json.NewDecoder(strings.NewReader(line)), "")
		if err != nil {
			t.Errorf("log line %d: %v: %s", i+1, err, line)
			continue
		}
		for k, v := range keys {
			if durationKey(k) {
				if _, isNumber := v.(json.Number); isNumber {
					t.Errorf("log line %d: %s is a bare number: %s", i+1, k, line)
				} else if s, ok := v.(string); ok {
					if _, err := time.ParseDuration(s); err == nil {
						durations++
					}
				}
			}
		}
	}
	if durations == 0 {
		t.Error("no log line had a duration (the API's debug line of a request has one): the check looked at nothing")
	}
}

// durationKey reports whether a log key holds a duration.
func durationKey(k string) bool {
	base := k[strings.LastIndex(k, ".")+1:]
	for _, d := range []string{"took", "duration", "timeout", "budget", "elapsed", "backoff", "delay", "interval", "retry_after", "lease"} {
		if base == d || strings.HasSuffix(base, "_"+d) {
			return true
		}
	}
	return false
}

// checkObject reads one JSON object and returns its scalar values by dotted key, failing on a
// key that appears twice in an object.
func checkObject(dec *json.Decoder, prefix string) (map[string]any, error) {
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	return readObject(dec, prefix)
}

func readObject(dec *json.Decoder, prefix string) (map[string]any, error) {
	out := map[string]any{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("key %q twice", prefix+key)
		}
		seen[key] = true
		tok, err = dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok {
		case json.Delim('{'):
			sub, err := readObject(dec, prefix+key+".")
			if err != nil {
				return nil, err
			}
			for k, v := range sub {
				out[k] = v
			}
		case json.Delim('['):
			var depth = 1
			for depth > 0 {
				t, err := dec.Token()
				if err != nil {
					return nil, err
				}
				switch t {
				case json.Delim('['), json.Delim('{'):
					depth++
				case json.Delim(']'), json.Delim('}'):
					depth--
				}
			}
		default:
			out[prefix+key] = tok
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	return out, nil
}

// TestExamples: the extraction finds fenced sh blocks with their logical lines, and complete
// inline commands, not templates.
func TestExamples(t *testing.T) {
	md := "Intro `curl -u alice:<token>` and `curl -X POST http://x/a` and\n`bin/presencectl who`.\n\n" +
		"```yaml\nkey: value\n```\n\n```sh\n# a comment\nexport A=1\ncurl -X PUT -d '{}' \\\n  http://x/b\nB=2 bin/presencectl status\n```\n"
	blocks, err := Examples(md, "curl -", "bin/presencectl ")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range blocks {
		got = append(got, fmt.Sprintf("%d %v %q %v", b.Line, b.Inline, b.Commands, b.Programs()))
	}
	want := []string{
		`1 true ["curl -X POST http://x/a"] [curl]`,
		`1 true ["bin/presencectl who"] [bin/presencectl]`,
		`8 false ["export A=1" "curl -X PUT -d '{}'    http://x/b" "B=2 bin/presencectl status"] [export curl bin/presencectl]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Examples("```sh\ncurl -X GET x\n", "curl -"); err == nil {
		t.Error("an unclosed block was accepted")
	}
	var b bytes.Buffer
	b.WriteString(`{"a":1,"g":{"a":2},"a":3}`)
	if _, err := checkObject(json.NewDecoder(&b), ""); err == nil || !strings.Contains(err.Error(), `key "a" twice`) {
		t.Errorf("duplicate key: %v", err)
	}
	if _, err := checkObject(json.NewDecoder(strings.NewReader(`{"g":{"x":1},"h":{"x":1}}`)), ""); err != nil {
		t.Errorf("the same key in two objects: %v", err)
	}
}
