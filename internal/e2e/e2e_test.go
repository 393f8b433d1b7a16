package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/internal/openapicheck"
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
// against the lab and what they need. A block with anything else must be marked
// `<!-- not run: why -->` (wantNotRun).
var runnable = map[string]bool{"curl": true, "bin/presencectl": true, "bin/presenced": true, "export": true,
	"echo": true, "openssl": true}

// wantNotRun is how many blocks and inline commands of the README are marked
// `<!-- not run: why -->`: make up and make test themselves, a run against an Asterisk of
// yours, the unit's reload, commands on files or a Redis of yours. Marking one more is a
// decision this number records; a curl or presencectl example is never one of them.
const wantNotRun = 6

// operational are the daemon's endpoints outside the OpenAPI document (Prometheus text, the
// probes): answers from them are not validated.
var operational = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}

var curlAtStart = regexp.MustCompile(`(?m)^(\s*)curl `)

// TestReadmeExamples runs every command of the README as written, in the README's order,
// against presenced as `make up` runs it: every fenced block of any language that holds
// commands and every inline curl, bin/presenced and bin/presencectl command, unless it is
// marked `<!-- not run: why -->` (counted: wantNotRun) or is a template (<placeholder>). Each
// must succeed (curl: a 2xx answer; the others: exit 0). Their requests go through a proxy in
// place of http://127.0.0.1:8080 that validates every answer against the OpenAPI document
// (internal/openapicheck): an answer not as the document says, or a 2xx answer from a route the
// document lacks, fails the example.
func TestReadmeExamples(t *testing.T) {
	d := presenced(t)
	readme, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Examples(string(readme), "curl ", "bin/presencectl ", "bin/presenced ")
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCheckingProxy(t, d.URL)
	ran := map[string]int{}
	notRun, templates, data := 0, 0, 0
	for _, b := range blocks {
		if !b.HoldsCommands() {
			data++
			continue
		}
		progs := b.Programs()
		if b.Template {
			templates++
			t.Logf("README.md:%d: a template, not a command: %s", b.Line, b.Script)
			continue
		}
		if b.NotRun != "" {
			notRun++
			t.Logf("README.md:%d: not run (%s): %q", b.Line, b.NotRun, b.Commands)
			for i, p := range progs {
				if p == "curl" || p == "bin/presencectl" {
					t.Errorf("README.md:%d: the example %q is marked not run (%s): curl and presencectl examples must run against the lab", b.Line, b.Commands[i], b.NotRun)
				}
			}
			continue
		}
		ok := len(progs) > 0
		for i, p := range progs {
			switch {
			case p == "presenced" || p == "presencectl":
				t.Errorf("README.md:%d: %q: %s is not on the PATH after make bin; write bin/%s", b.Line, b.Commands[i], p, p)
				ok = false
			case !runnable[p]:
				t.Errorf("README.md:%d: %q runs %s, which this test cannot run against the lab: make the block runnable or mark it <!-- not run: why -->", b.Line, b.Commands[i], p)
				ok = false
			}
		}
		if !ok {
			continue
		}
		name := fmt.Sprintf("README.md:%d", b.Line)
		t.Run(name, func(t *testing.T) {
			script := strings.ReplaceAll(b.Script, "http://127.0.0.1:8080", proxy.URL)
			script = curlAtStart.ReplaceAllString(script, "${1}curl --fail-with-body -sS ")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", script)
			cmd.Dir = tmpDir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmpDir, "PRESENCECTL_URL=" + proxy.URL}
			before := proxy.answers()
			out, err := cmd.CombinedOutput()
			t.Logf("%s\n%s", script, out)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, err := range proxy.problems() {
				t.Error(err)
			}
			if slices.Contains(progs, "curl") && proxy.answers() == before {
				t.Errorf("%s: its curl reached no presenced", name)
			}
		})
		for _, p := range progs {
			ran[p]++
		}
	}
	t.Logf("ran %v; %d not run (marked), %d templates, %d blocks of data; %d answers validated against the OpenAPI document",
		ran, notRun, templates, data, proxy.answers())
	// The README has every kind of example: a test that ran none of one kind would pass
	// whatever the README says.
	if ran["curl"] < 5 || ran["bin/presencectl"] < 5 || ran["bin/presenced"] < 4 {
		t.Errorf("ran %d curl, %d presencectl and %d presenced examples; the README has more", ran["curl"], ran["bin/presencectl"], ran["bin/presenced"])
	}
	if notRun != wantNotRun {
		t.Errorf("%d README commands are marked not run, want %d: run the new one, or change wantNotRun with its reason", notRun, wantNotRun)
	}
}

// checkingProxy forwards to presenced and validates each answer against the OpenAPI document.
type checkingProxy struct {
	URL string

	v    *openapicheck.Validator
	next http.RoundTripper
	mu   sync.Mutex
	errs []error
	n    int
}

// openAPIValidator checks API answers against api/openapi.json, the document presenced embeds
// and serves.
func openAPIValidator(t *testing.T) *openapicheck.Validator {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(lab.RepoRoot(), "api", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := openapicheck.New(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newCheckingProxy(t *testing.T, target string) *checkingProxy {
	t.Helper()
	v := openAPIValidator(t)
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &checkingProxy{v: v, next: http.DefaultTransport}
	srv := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		Transport: p,
	})
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *checkingProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	if err != nil || operational[req.URL.Path] {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	err = p.v.Check(req, resp.StatusCode, resp.Header, body)
	if errors.Is(err, openapicheck.ErrNoRoute) {
		err = nil
		if resp.StatusCode < 300 {
			err = fmt.Errorf("%s %s answered %d, and the OpenAPI document has no such operation", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if err != nil {
		p.errs = append(p.errs, err)
	}
	return resp, nil
}

// problems returns and forgets the answers found not as the document says.
func (p *checkingProxy) problems() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.errs
	p.errs = nil
	return errs
}

// answers is how many answers were validated.
func (p *checkingProxy) answers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// TestLabCalendar: alice's calendar in the lab (deploy/presenced.lab.yaml; the feed the lab
// Asterisk serves, testdata/asterisk/static-http) is read: its weekly stand-up is in her plan
// as a meeting, and the plan is not stale.
func TestLabCalendar(t *testing.T) {
	d := presenced(t)
	var st struct {
		Source string `json:"source"`
		Stale  bool   `json:"stale"`
		Error  string `json:"error"`
		Items  []struct {
			Summary string    `json:"summary"`
			Start   time.Time `json:"start"`
			Profile string    `json:"profile"`
		} `json:"items"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/v1/users/alice/calendar", nil)
		req.Header.Set("Authorization", "Bearer lab-alice-Jdl4lhFGlQ59DuFW")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET alice's calendar: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Items) > 0 || st.Stale || time.Now().After(deadline) {
			t.Logf("alice's calendar: %s", body)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Stale || !strings.HasPrefix(st.Source, "ics http://127.0.0.1:") {
		t.Errorf("alice's calendar: source %q, stale %v (%s)", st.Source, st.Stale, st.Error)
	}
	if len(st.Items) == 0 || st.Items[0].Summary != "m: Lab stand-up" || st.Items[0].Profile != "meeting" ||
		st.Items[0].Start.Weekday() != time.Sunday || st.Items[0].Start.After(time.Now().Add(8*24*time.Hour)) {
		t.Errorf("alice's plan: %+v, want the weekly stand-up on Sunday as a meeting", st.Items)
	}
}

// TestDaemonLog: a hand change repaired is logged at info with what was changed; every line
// of the JSON log is one JSON object with no key twice, and durations are Go duration
// strings, never integer nanoseconds.
func TestDaemonLog(t *testing.T) {
	d := presenced(t)
	v := openAPIValidator(t)
	for _, p := range []string{"available", "lunch"} {
		req, _ := http.NewRequest(http.MethodPut, d.URL+"/api/v1/users/carol/profile", strings.NewReader(`{"profile":"`+p+`"}`))
		req.Header.Set("Authorization", "Bearer lab-carol-gThzgK9i7GvUcaiB")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("switch carol to %s: %d %s", p, resp.StatusCode, body)
		}
		if err := v.Check(req, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("switch carol to %s: %v", p, err)
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

// TestExamples: the extraction finds fenced blocks of every language with their logical
// lines, the not-run markers, and inline commands, templates flagged.
func TestExamples(t *testing.T) {
	md := "Intro `curl -u alice:<token>` and `curl -X POST http://x/a` and\n`bin/presencectl who`, " +
		"<!-- not run: yours --> `bin/presenced -config /etc/x.yaml` and `bin/presenced -hash-secret < f`.\n\n" +
		"```yaml\nkey: value\n```\n\n```sh\n# a comment\nexport A=1\ncurl -X PUT -d '{}' \\\n  http://x/b\nB=2 bin/presencectl status\n```\n" +
		"<!-- not run: systemd -->\n```text\nsystemctl reload presenced\n```\n\n```\ncurl http://x/c\n```\n"
	blocks, err := Examples(md, "curl ", "bin/presencectl ", "bin/presenced ")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range blocks {
		got = append(got, fmt.Sprintf("%d %q inline=%v cmds=%v template=%v notrun=%q %q %v", b.Line, b.Lang, b.Inline,
			b.HoldsCommands(), b.Template, b.NotRun, b.Commands, b.Programs()))
	}
	want := []string{
		`1 "" inline=true cmds=true template=true notrun="" ["curl -u alice:<token>"] [curl]`,
		`1 "" inline=true cmds=true template=false notrun="" ["curl -X POST http://x/a"] [curl]`,
		`1 "" inline=true cmds=true template=false notrun="" ["bin/presencectl who"] [bin/presencectl]`,
		`1 "" inline=true cmds=true template=false notrun="yours" ["bin/presenced -config /etc/x.yaml"] [bin/presenced]`,
		`1 "" inline=true cmds=true template=false notrun="" ["bin/presenced -hash-secret < f"] [bin/presenced]`,
		`4 "yaml" inline=false cmds=false template=false notrun="" ["key: value"] [key:]`,
		`8 "sh" inline=false cmds=true template=false notrun="" ["export A=1" "curl -X PUT -d '{}'    http://x/b" "B=2 bin/presencectl status"] [export curl bin/presencectl]`,
		`16 "text" inline=false cmds=true template=false notrun="systemd" ["systemctl reload presenced"] [systemctl]`,
		`20 "" inline=false cmds=true template=false notrun="" ["curl http://x/c"] [curl]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := Examples("```sh\ncurl -X GET x\n", "curl "); err == nil {
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
