package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimalEnv is the least a configuration needs: the two secrets.
var minimalEnv = []string{
	"PRESENCED_ASTERISK_AMI_SECRET=s3cret",
	"PRESENCED_ASTERISK_ARI_PASSWORD=s3cret",
}

// testToken is the API token of name in the tests: random-looking and long enough for the
// configuration's token check, the same in every run.
func testToken(name string) string {
	sum := sha256.Sum256([]byte("presenced test token " + name))
	return name + "-" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigIsRefusedWithOneLineNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string // YAML; "" = no file
		env  []string
		args []string
		want string // must appear in the one line
		// daemon runs presenced itself rather than -check-config: the connection secrets are
		// required only where presenced connects (TestOfflineCommandsNeedNoSecrets).
		daemon bool
	}{
		{name: "missing AMI secret", env: []string{"PRESENCED_ASTERISK_ARI_PASSWORD=x"}, want: "asterisk.ami.secret: required", daemon: true},
		{name: "missing ARI password", env: []string{"PRESENCED_ASTERISK_AMI_SECRET=x"}, want: "asterisk.ari.password: required", daemon: true},
		{name: "malformed AMI address", env: append([]string{"PRESENCED_ASTERISK_AMI_ADDRESS=pbx.example"}, minimalEnv...), want: `asterisk.ami.address: "pbx.example" is not host:port`},
		{name: "AMI port not a number", file: "asterisk:\n  ami:\n    address: 127.0.0.1:ami\n", env: minimalEnv, want: "asterisk.ami.address"},
		{name: "unknown top-level key", file: "asterisks: {}\n", env: minimalEnv, want: "unknown key asterisks"},
		{name: "unknown nested key", file: "asterisk:\n  ami:\n    adress: 127.0.0.1:5038\n", env: minimalEnv, want: "unknown key asterisk.ami.adress"},
		{name: "unknown environment variable", env: append([]string{"PRESENCED_ASTERISK_AMI_SECRT=x"}, minimalEnv...), want: "PRESENCED_ASTERISK_AMI_SECRT"},
		{name: "bad duration", file: "asterisk:\n  ami:\n    ping_interval: often\n", env: minimalEnv, want: "ping_interval"},
		{name: "negative duration", env: append([]string{"PRESENCED_SHUTDOWN_TIMEOUT=-1s"}, minimalEnv...), want: "shutdown_timeout: -1s is out of range (allowed 3s to 10m)"},
		{name: "bad ARI url", env: append([]string{"PRESENCED_ASTERISK_ARI_URL=ftp://x"}, minimalEnv...), want: "asterisk.ari.url"},
		{name: "bad redis url", env: append([]string{"PRESENCED_REDIS_URL=http://x:y@host"}, minimalEnv...), want: "redis.url"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, env: minimalEnv, want: `log.level: "loud"`},
		{name: "bad http listen", args: []string{"-http-listen", "8080"}, env: minimalEnv, want: "http.listen"},
		{name: "bad app name", env: append([]string{"PRESENCED_ASTERISK_ARI_APP=my app"}, minimalEnv...), want: "asterisk.ari.app"},
		{name: "events without system", env: append([]string{"PRESENCED_ASTERISK_AMI_EVENTS=call,agent"}, minimalEnv...), want: `asterisk.ami.events: "call,agent" must include system`},
		{name: "bad event class", env: append([]string{"PRESENCED_ASTERISK_AMI_EVENTS=system,calls"}, minimalEnv...), want: "asterisk.ami.events"},
		{name: "secret and secret file", env: append([]string{"PRESENCED_ASTERISK_AMI_SECRET_FILE=/nonexistent"}, minimalEnv...), want: "asterisk.ami.secret: set either"},
		{name: "missing secret file", env: []string{"PRESENCED_ASTERISK_AMI_SECRET_FILE=/nonexistent/secret", "PRESENCED_ASTERISK_ARI_PASSWORD=x"}, want: "asterisk.ami.secret_file", daemon: true},
		{name: "missing config file", args: []string{"-config", "/nonexistent/presenced.yaml"}, env: minimalEnv, want: "/nonexistent/presenced.yaml"},
		{name: "malformed YAML", file: "asterisk: [\n", env: minimalEnv, want: "config file"},
		{name: "stray argument", args: []string{"extra"}, env: minimalEnv, want: `unexpected argument "extra"`},
		{name: "zero PIN attempts", env: append([]string{"PRESENCED_FEATURE_CODES_PIN_ATTEMPTS=0"}, minimalEnv...), want: "feature_codes.pin_attempts: 0 is out of range (allowed 1 to 20)"},
		{name: "unknown drift policy", file: "reconcile:\n  policy:\n    queue_pause: ignore\n", env: minimalEnv, want: `reconcile.policy.queue_pause: "ignore" is not enforce, report or adopt`},
		{name: "unknown kind of state", file: "reconcile:\n  policy:\n    queue: report\n", env: minimalEnv, want: "unknown key reconcile.policy.queue"},
		{name: "switch for a kind but dnd", file: "reconcile:\n  policy:\n    lamp: switch\n", env: minimalEnv, want: `reconcile.policy.lamp: "switch" is not enforce, report or adopt`},
		{name: "empty drift policy", file: "reconcile:\n  policy:\n    queue_pause: \"\"\n", env: minimalEnv, want: `reconcile.policy.queue_pause: "" is not enforce, report or adopt`},
		{name: "unknown dnd policy", file: "reconcile:\n  policy:\n    dnd: toggle\n", env: minimalEnv, want: `reconcile.policy.dnd: "toggle" is not enforce, report, adopt or switch`},
		{name: "dnd_key profile without DND", file: "dnd_key: {profile: available}\n", env: minimalEnv, want: `dnd_key.profile: profile "available" does not turn DND on`},
		{name: "dnd_key unknown profile", file: "dnd_key: {profile: nap}\n", env: minimalEnv, want: `dnd_key.profile: "nap" is not a system-wide profile`},
		{name: "dnd_key fallback", file: "dnd_key: {fallback: adopt}\n", env: minimalEnv, want: `dnd_key.fallback: "adopt" is not enforce or report`},
		{name: "dnd_key switches", env: append([]string{"PRESENCED_DND_KEY_SWITCHES=0"}, minimalEnv...), want: "dnd_key.switches: 0 is out of range (allowed 1 to 1000)"},
		{name: "dnd_key window", file: "dnd_key: {window: 10s}\n", env: minimalEnv, want: "dnd_key.window: 10s is out of range (allowed 1m to 24h)"},
		{name: "user dnd_profile", file: "users:\n  - {id: alice, extension: \"1001\", devices: [{dial: PJSIP/1001, family: desk}], dnd_profile: available}\n", env: minimalEnv, want: `users[0] (alice).dnd_profile: profile "available" does not turn DND on`},
		{name: "zero lockout", file: "feature_codes: {lockout: 0s}\n", env: minimalEnv, want: "feature_codes.lockout"},
		{name: "negative digit timeout", env: append([]string{"PRESENCED_FEATURE_CODES_DIGIT_TIMEOUT=-1s"}, minimalEnv...), want: "feature_codes.digit_timeout"},
		{name: "bad first digit timeout", file: "feature_codes: {first_digit_timeout: soon}\n", env: minimalEnv, want: "first_digit_timeout"},
		{name: "unknown default profile", env: append([]string{"PRESENCED_FEATURE_CODES_DEFAULT_PROFILE=nap"}, minimalEnv...), want: `feature_codes.default_profile: "nap" is not a system-wide profile`},
		{name: "unknown feature_codes key", file: "feature_codes: {always_pn: true}\n", env: minimalEnv, want: "unknown key feature_codes.always_pn"},
		{name: "bad trusted context", file: "feature_codes: {trusted_contexts: [from-internal, \"from internal\"]}\n", env: minimalEnv,
			want: `feature_codes.trusted_contexts[1]: "from internal" is not a dialplan context name`},
		{name: "feature-code context trusted", env: append([]string{"PRESENCED_FEATURE_CODES_TRUSTED_CONTEXTS=from-internal,presenced-features"}, minimalEnv...),
			want: `feature_codes.trusted_contexts[1]: "presenced-features" cannot be trusted`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, "presenced.yaml", tc.file)}, args...)
			}
			var stdout, stderr bytes.Buffer
			if !tc.daemon {
				args = append(args, "-check-config")
			}
			code := realMain(args, tc.env, &stdout, &stderr)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stdout %q", stdout.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Contains(out, "\n") {
				t.Errorf("want one line, got:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("got %q, want it to contain %q", out, tc.want)
			}
			if strings.Contains(out, "s3cret") {
				t.Errorf("error shows a secret: %q", out)
			}
		})
	}
}

func TestConfigPrecedenceAndSecretFiles(t *testing.T) {
	secret := writeFile(t, "ami-secret", "from-file\n")
	file := writeFile(t, "presenced.yaml", fixture(t, "config/precedence.yaml", map[string]string{"SecretFile": secret}))
	env := []string{
		"PRESENCED_ASTERISK_AMI_ADDRESS=127.0.0.1:25038", // env beats file
		"PRESENCED_HTTP_LISTEN=127.0.0.1:9100",           // flag beats env
		"HOME=/root",                                     // not ours: ignored
	}
	cfg, _, err := loadConfig([]string{"-config", file, "-http-listen", "127.0.0.1:9200"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"ami address (env over file)", cfg.Asterisk.AMI.Address, "127.0.0.1:25038"},
		{"ami username (file over default)", cfg.Asterisk.AMI.Username, "file-user"},
		{"ami secret (from file, newline trimmed)", string(cfg.Asterisk.AMI.Secret), "from-file"},
		{"ari password (file)", string(cfg.Asterisk.ARI.Password), "file-password"},
		{"ari app (default)", cfg.Asterisk.ARI.App, "presenced"},
		{"log level (file)", cfg.Log.Level, "debug"},
		{"http listen (flag over env over file)", cfg.HTTP.Listen, "127.0.0.1:9200"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.ShutdownTimeout != 10*time.Second {
		t.Errorf("shutdown_timeout default = %v", cfg.ShutdownTimeout)
	}
	if cfg.InstanceID == "" {
		t.Error("instance_id: no default")
	}
	if s := cfg.Asterisk.AMI.Secret.String(); s != "[redacted]" {
		t.Errorf("Secret.String() = %q", s)
	}
}

// TestProcessExitCode runs the real program (this test binary re-executed as presenced) with a
// bad configuration: the process exits non-zero with one line on stderr naming the key.
func TestProcessExitCode(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"PRESENCED_TEST_RUN_MAIN=1", "PRESENCED_ASTERISK_ARI_PASSWORD=x"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit code 2; stderr %q", err, stderr.String())
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "asterisk.ami.secret") {
		t.Fatalf("stderr = %q, want one line naming asterisk.ami.secret", got)
	}
}

// TestExampleConfigLoads keeps deploy/presenced.example.yaml in step with the configuration
// keys: it must load, with its secret files pointed at files that exist.
func TestExampleConfigLoads(t *testing.T) {
	amiSecret := writeFile(t, "ami-secret", "x\n")
	ariPassword := writeFile(t, "ari-password", "y\n")
	cfg, _, err := loadConfig([]string{"-config", filepath.Join("..", "..", "deploy", "presenced.example.yaml")}, []string{
		"PRESENCED_ASTERISK_AMI_SECRET_FILE=" + amiSecret,
		"PRESENCED_ASTERISK_ARI_PASSWORD_FILE=" + ariPassword,
	}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Asterisk.AMI.Secret != "x" || cfg.Asterisk.ARI.Password != "y" || cfg.Redis.URL == "" {
		t.Fatalf("example config loaded as %+v", cfg)
	}
}

// TestTrustedContextsLoad reads feature_codes.trusted_contexts from the file and from the
// environment (a comma-separated list, which wins); by default there is none.
func TestTrustedContextsLoad(t *testing.T) {
	file := writeFile(t, "presenced.yaml", "feature_codes: {trusted_contexts: [from-internal-trusted]}\n")
	for _, tc := range []struct {
		args, env []string
		want      []string
	}{
		{env: minimalEnv, want: nil},
		{args: []string{"-config", file}, env: minimalEnv, want: []string{"from-internal-trusted"}},
		{args: []string{"-config", file}, env: append([]string{"PRESENCED_FEATURE_CODES_TRUSTED_CONTEXTS=a-phones,b_phones"}, minimalEnv...),
			want: []string{"a-phones", "b_phones"}},
	} {
		cfg, _, err := loadConfig(tc.args, tc.env, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.FeatureCodes.TrustedContexts, tc.want) {
			t.Errorf("loadConfig(%q, %q): trusted contexts %q, want %q", tc.args, tc.env, cfg.FeatureCodes.TrustedContexts, tc.want)
		}
	}
}

// TestIssueConfigShapeLoads: the configuration shape of the profiles issue
// (testdata/config/issue.yaml) loads as it says.
func TestIssueConfigShapeLoads(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", fixture(t, "config/issue.yaml", nil))}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := cfg.catalog.User("alice")
	if !ok || len(u.Devices) != 2 || u.Devices[1].Family != "mobile" || u.Queues[1].Penalty != 1 || u.Token != testToken("alice") {
		t.Fatalf("alice = %+v", u)
	}
	lunch, ok := cfg.catalog.Profile("lunch")
	if !ok || len(lunch.OnEnter) != 1 || !lunch.OnEnter[0].Queues.All() || lunch.OnEnter[0].Reason != "Lunch" || len(lunch.OnExit) != 1 {
		t.Fatalf("lunch = %+v", lunch)
	}
	av, _ := cfg.catalog.Profile("available")
	if dnd := av.OnEnter[2]; dnd.IsOn() || !dnd.IsEnabled() {
		t.Fatalf("dnd action with on: false: %+v, want DND switched off", dnd)
	}
	if _, ok := cfg.catalog.Profile("dnd"); !ok {
		t.Fatal("the dnd profile every user has is missing")
	}
	if cfg.API.AdminToken != Secret(testToken("admin")) || cfg.Asterisk.Naming.QueueInterface != "Local/{ext}@presenced-queue-member/n" {
		t.Fatalf("api %+v naming %+v", cfg.API, cfg.Asterisk.Naming)
	}
}

// TestBadProfilesAreRefusedAtStartup: each edit (from|to) of testdata/config/issue.yaml is
// refused with one line naming the key.
func TestBadProfilesAreRefusedAtStartup(t *testing.T) {
	issue := fixture(t, "config/issue.yaml", nil)
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown action", "{action: queue_pause, queues: all, reason: Lunch}|{action: queue_logon, queues: all}", `profiles[1] (lunch).on_enter[0]: unknown action "queue_logon"`},
		{"unknown queue", "{action: queue_pause, queues: all, reason: Lunch}|{action: queue_pause, queues: [salse]}", `unknown queue "salse"`},
		{"duplicate activation", `activation: "3"|activation: "1"`, `profiles[1] (lunch).activation: "1" is already the activation number of profile "available"`},
		{"unknown key in a list item", `extension: "1001"|extention: "1001"`, "unknown key users[0].extention"},
		{"unknown key in an action", "on_exit:\n      - {action: queue_unpause, queues: all}|on_exit:\n      - {action: queue_unpause, queue: all}", "unknown key profiles[1].on_exit[0].queue"},
		{"bad naming", "app: presenced}|app: presenced}\n  naming: {lamp_off: OFF}", `asterisk.naming.lamp_off: "OFF" is not one of`},
		{"dnd enabled: false", "{action: dnd, on: false}|{action: dnd, enabled: false}",
			"profiles[0] (available).on_enter[2].enabled: is not a key: to switch dnd off write on: false (probably meant); to keep the action without running it write disabled: true"},
		{"on on queue_logout", "on_exit:\n      - {action: queue_unpause, queues: all}|on_exit:\n      - {action: queue_unpause, queues: all}\n      - {action: queue_logout, queues: all, on: false}",
			"profiles[1] (lunch).on_exit[1].on: has no meaning for queue_logout (its fields: queues, disabled)"},
		{"unknown naming key", "app: presenced}|app: presenced}\n  naming: {dnd_familly: DND}", "unknown key asterisk.naming.dnd_familly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to, _ := strings.Cut(tc.edit, "|")
			if !strings.Contains(issue, from) {
				t.Fatalf("test edit %q does not apply", from)
			}
			yaml := strings.Replace(issue, from, to, 1)
			var stderr bytes.Buffer
			code := realMain([]string{"-config", writeFile(t, "presenced.yaml", yaml), "-check-config"}, nil, &bytes.Buffer{}, &stderr)
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, stderr %q; want one line with %q", code, out, tc.want)
			}
		})
	}
}

// TestOfflineCommandsNeedNoSecrets: -print-hints and -check-config connect to nothing, so they
// run without the AMI and ARI secrets and with secret files that are not there (a CI job, a
// laptop): -check-config warns what the daemon would refuse; the daemon itself still refuses.
func TestOfflineCommandsNeedNoSecrets(t *testing.T) {
	path := writeFile(t, "presenced.yaml", fixture(t, "config/end-to-end.yaml", nil))
	missing := filepath.Join(t.TempDir(), "no-such-secret")
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		code    int
		stdout  string
		stderrs []string
	}{
		{"print-hints", []string{"-config", path, "-print-hints"}, nil, 0, "[presenced-hints-1001] ; Alice", nil},
		{"check-config", []string{"-config", path, "-check-config"}, nil, 0, "configuration ok",
			[]string{"warning: asterisk.ami.secret: required (or asterisk.ami.secret_file, or PRESENCED_ASTERISK_AMI_SECRET) by the daemon; not needed here",
				"warning: asterisk.ari.password: required"}},
		{"check-config with a secret file not there", []string{"-config", path, "-check-config"},
			[]string{"PRESENCED_ASTERISK_AMI_SECRET_FILE=" + missing, "PRESENCED_ASTERISK_ARI_PASSWORD=x"}, 0, "configuration ok",
			[]string{"warning: asterisk.ami.secret_file: open " + missing}},
		{"check-config still checks the rest", []string{"-config", path, "-check-config"}, []string{"PRESENCED_LOG_LEVEL=loud"}, 2, "",
			[]string{`log.level: "loud" is not one of`}},
		{"the daemon needs them", []string{"-config", path}, nil, 2, "", []string{"asterisk.ami.secret: required", "asterisk.ari.password: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := realMain(tc.args, tc.env, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout)
			}
			for _, want := range tc.stderrs {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q lacks %q", stderr.String(), want)
				}
			}
		})
	}
}

// TestHelpAndVersion: -help and --help print the usage and exit 0; -version prints a semantic
// version and the commit.
func TestHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"-help", "--help", "-h"} {
		var stdout, stderr strings.Builder
		if code := realMain([]string{arg}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "-check-config") {
			t.Errorf("%s: exit %d, stdout %q; want 0 and the usage", arg, code, stdout.String())
		}
	}
	var stdout strings.Builder
	if code := realMain([]string{"-version"}, nil, &stdout, io.Discard); code != 0 {
		t.Fatalf("-version: exit %d", code)
	}
	// semver.org's pattern, then the revision (hex, -dirty; unknown in a test binary) and Go's version.
	re := regexp.MustCompile(`^presenced (0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)? \(revision ([0-9a-f]{7,40}(-dirty)?|unknown), go[0-9][^)]*\)\n$`)
	if !re.MatchString(stdout.String()) {
		t.Fatalf("-version printed %q", stdout.String())
	}
}

// TestPrintHints: -print-hints prints the per-user BLF contexts of the configuration and exits.
func TestPrintHints(t *testing.T) {
	path := writeFile(t, "presenced.yaml", fixture(t, "config/end-to-end.yaml", nil))
	var stdout, stderr strings.Builder
	if code := realMain([]string{"-config", path, "-print-hints"}, minimalEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"[presenced-hints-1001] ; Alice\ninclude => presenced-hints\nexten => *551,hint,Custom:PROFILE1001-1 ; Available\n",
		"exten => *559,hint,Custom:PROFILE1003-9 ; Gone home\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestTriggerConfigLoads: the triggers' configuration shape (testdata/config/triggers.yaml), with
// a time zone and a schedule of alice's own, loads as it says; holidays come from the
// environment too.
func TestTriggerConfigLoads(t *testing.T) {
	own := fixture(t, "config/triggers.yaml", userKeys{
		"alice": {"time_zone: America/New_York", `schedules: [{name: early, at: "07:30", profile: available}]`},
	})
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", own)}, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Schedules) != 2 || cfg.Schedules[0].From != "12:00" || len(cfg.Holidays) != 2 ||
		cfg.Triggers.DefaultTimeZone != "Europe/Berlin" || cfg.Triggers.Tick != 2*time.Second {
		t.Fatalf("triggers: %+v %+v %+v", cfg.Schedules, cfg.Holidays, cfg.Triggers)
	}
	u, _ := cfg.catalog.User("alice")
	if len(u.Schedules) != 1 || u.Schedules[0].At != "07:30" {
		t.Fatalf("alice's schedules: %+v", u.Schedules)
	}
	cfg, _, err = loadConfig([]string{"-config", writeFile(t, "presenced.yaml", fixture(t, "config/issue.yaml", nil))},
		[]string{"PRESENCED_HOLIDAYS=2026-12-25,2027-01-01"}, &bytes.Buffer{})
	if err != nil || len(cfg.Holidays) != 2 || cfg.Holidays[1] != "2027-01-01" {
		t.Fatalf("holidays from the environment: %v %v", cfg.Holidays, err)
	}
}

// TestBadTriggerConfigNamesTheKey: each line added to testdata/config/issue.yaml is refused with
// one line naming the key.
func TestBadTriggerConfigNamesTheKey(t *testing.T) {
	issue := fixture(t, "config/issue.yaml", nil)
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad time", `schedules: [{name: x, at: "9am", profile: lunch}]`, `schedules[0].at: "9am" is not a time HH:MM`},
		{"unknown profile", `schedules: [{name: x, at: "09:00", profile: nap}]`, `schedules[0].profile: "nap" is not a system-wide profile`},
		{"bad day", `schedules: [{name: x, days: [monday], at: "09:00", profile: lunch}]`, `schedules[0].days: "monday"`},
		{"unknown field", `schedules: [{name: x, when: "09:00", profile: lunch}]`, "unknown key schedules[0].when"},
		{"bad holiday", `holidays: ["25.12.2026"]`, `holidays[0]: "25.12.2026" is not a date`},
		{"bad zone", `triggers: {default_time_zone: Mars/Olympus}`, `triggers.default_time_zone: "Mars/Olympus"`},
		{"zero tick", `triggers: {tick: 0s}`, "triggers.tick"},
		{"unanswered calls, unknown profile", `unanswered_calls: {profile: nap}`, `unanswered_calls.profile: "nap" is not a system-wide profile`},
		{"unanswered calls, no calls", `unanswered_calls: {profile: lunch, calls: 0}`, "unanswered_calls.calls: 0; at least one call"},
		{"unanswered calls, unknown key", `unanswered_calls: {profile: lunch, misses: 3}`, "unknown key unanswered_calls.misses"},
		{"unanswered calls, bare window", `unanswered_calls: {profile: lunch, window: 60}`, "unanswered_calls.window: 60 has no unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", issue+tc.yaml+"\n")}, nil, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line with %q", err, tc.want)
			}
		})
	}
}

// TestDurationsNeedUnitsAndRanges: a bare number is refused wherever a duration is read (a YAML
// integer or float, a quoted number, an environment variable), and every interval, timeout and
// number is checked against its range; each error names the key (and the range).
func TestDurationsNeedUnitsAndRanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want []string // each must appear in the one line
	}{
		{name: "bare integer, top level", yaml: "shutdown_timeout: 10", want: []string{"shutdown_timeout: 10 has no unit (write 10s or 10ms)"}},
		{name: "bare integer, nested", yaml: "reconcile: {interval: 300}", want: []string{"reconcile.interval: 300 has no unit (write 300s or 5m)"}},
		{name: "bare integer, two levels down", yaml: "asterisk: {ami: {ping_interval: 5}}", want: []string{"asterisk.ami.ping_interval: 5 has no unit"}},
		{name: "bare zero", yaml: "triggers: {tick: 0}", want: []string{"triggers.tick: 0 has no unit"}},
		{name: "bare float", yaml: "triggers: {tick: 0.5}", want: []string{"triggers.tick: 0.5 has no unit (write 0.5s)"}},
		{name: "bare float, nested", yaml: "http: {idle_timeout: 1.5}", want: []string{"http.idle_timeout: 1.5 has no unit"}},
		{name: "bare exponent", yaml: "http: {read_timeout: 1e3}", want: []string{"http.read_timeout: 1000 has no unit"}},
		{name: "quoted number", yaml: `feature_codes: {lockout: "900"}`, want: []string{"feature_codes.lockout: 900 has no unit (write 900s or 15m)"}},
		{name: "number from the environment", env: []string{"PRESENCED_STORE_SNAPSHOT_INTERVAL=10"}, want: []string{"store.snapshot_interval: 10 has no unit"}},
		{name: "exponent from the environment", env: []string{"PRESENCED_HTTP_WRITE_TIMEOUT=1e3"}, want: []string{"http.write_timeout: 1e3 has no unit (write a unit"}},
		{name: "not a duration", yaml: "asterisk: {ari: {request_timeout: soon}}", want: []string{`asterisk.ari.request_timeout: "soon" is not a duration`}},
		{name: "several at once", yaml: "reconcile: {interval: 300}\ntriggers: {tick: 1}\nredis: {read_timeout: 2}",
			want: []string{"reconcile.interval: 300 has no unit", "triggers.tick: 1 has no unit", "redis.read_timeout: 2 has no unit"}},
		{name: "reconcile too often", yaml: "reconcile: {interval: 1s}", want: []string{"reconcile.interval: 1s is out of range (allowed 10s to 24h: a full reconcile reads every user's state from Asterisk)"}},
		{name: "reconcile a typo too long", yaml: "reconcile: {interval: 300h}", want: []string{"reconcile.interval: 300h is out of range (allowed 10s to 24h)"}},
		{name: "tick of a nanosecond", yaml: "triggers: {tick: 1ns}", want: []string{"triggers.tick: 1ns is out of range (allowed 100ms to 1m"}},
		{name: "ping of a nanosecond", yaml: "asterisk: {ami: {ping_interval: 1ns}}", want: []string{"asterisk.ami.ping_interval: 1ns is out of range (allowed 1s to 5m"}},
		{name: "backoff of a nanosecond", env: []string{"PRESENCED_ASTERISK_AMI_BACKOFF_MAX=1ns"}, want: []string{"asterisk.ami.backoff_max: 1ns is out of range (allowed 1s to 10m"}},
		{name: "snapshots too often", yaml: "store: {snapshot_interval: 100ms}", want: []string{"store.snapshot_interval: 100ms is out of range (allowed 1s to 1h"}},
		{name: "snapshot timeout too short", yaml: "store: {snapshot_timeout: 10ms}", want: []string{"store.snapshot_timeout: 10ms is out of range (allowed 1s to 5m)"}},
		{name: "first digit too soon", yaml: "feature_codes: {first_digit_timeout: 100ms}", want: []string{"feature_codes.first_digit_timeout: 100ms is out of range (allowed 1s to 1m)"}},
		{name: "digit timeout too long", yaml: "feature_codes: {digit_timeout: 1m}", want: []string{"feature_codes.digit_timeout: 1m is out of range (allowed 1s to 30s)"}},
		{name: "lockout too short", yaml: "feature_codes: {lockout: 1s}", want: []string{"feature_codes.lockout: 1s is out of range (allowed 1m to 24h: it is what makes guessing PINs slow)"}},
		{name: "redis timeout too short", yaml: "redis: {dial_timeout: 1ms}", want: []string{"redis.dial_timeout: 1ms is out of range (allowed 100ms to 1m)"}},
		{name: "AMI dial timeout too long", yaml: "asterisk: {ami: {dial_timeout: 2h}}", want: []string{"asterisk.ami.dial_timeout: 2h is out of range (allowed 500ms to 1m)"}},
		{name: "write timeout shorter than a switch", yaml: "http: {write_timeout: 5s}", want: []string{"http.write_timeout: 5s is out of range (allowed 15s to 1h: an API switch reads the PBX for up to 10s)"}},
		{name: "idle timeout too long", yaml: "http: {idle_timeout: 2h}", want: []string{"http.idle_timeout: 2h is out of range (allowed 1s to 1h)"}},
		{name: "header timeout too short", yaml: "http: {read_header_timeout: 10ms}", want: []string{"http.read_header_timeout: 10ms is out of range (allowed 1s to 5m)"}},
		{name: "read timeout shorter than the headers'", yaml: "http: {read_timeout: 2s, read_header_timeout: 3s}", want: []string{"http.read_timeout: 2s is shorter than http.read_header_timeout 3s"}},
		{name: "http shutdown too long", yaml: "http: {shutdown_timeout: 1h}", want: []string{"http.shutdown_timeout: 1h is out of range (allowed 1s to 5m)"}},
		{name: "shutdown stages over the whole", yaml: "shutdown_timeout: 8s\nhttp: {shutdown_timeout: 5s}\nstore: {snapshot_timeout: 3s}",
			want: []string{"shutdown_timeout: 8s leaves the engine 0s after http.shutdown_timeout 5s and store.snapshot_timeout 3s, less than the 1s it needs"}},
		{name: "body limit too small", yaml: "api: {max_body_bytes: 100}", want: []string{"api.max_body_bytes: 100 is out of range (allowed 1024 to 8388608)"}},
		{name: "no write session", yaml: "asterisk: {ami: {write_sessions: 0}}", want: []string{"asterisk.ami.write_sessions: 0 is out of range (allowed 1 to 16)"}},
		{name: "no ARI connection", yaml: "asterisk: {ari: {max_connections: 0}}", want: []string{"asterisk.ari.max_connections: 0 is out of range (allowed 1 to 1000)"}},
		{name: "body limit too large", env: []string{"PRESENCED_API_MAX_BODY_BYTES=1000000000"}, want: []string{"api.max_body_bytes: 1000000000 is out of range"}},
		{name: "PIN attempts too many", yaml: "feature_codes: {pin_attempts: 1000}", want: []string{"feature_codes.pin_attempts: 1000 is out of range (allowed 1 to 20)"}},
		{name: "no connections", yaml: "http: {max_connections: 0}", want: []string{"http.max_connections: 0 is out of range (allowed 8 to 65536)"}},
		{name: "a million connections", env: []string{"PRESENCED_HTTP_MAX_CONNECTIONS=1000000"}, want: []string{"http.max_connections: 1000000 is out of range (allowed 8 to 65536)"}},
		{name: "header limit too small", yaml: "http: {max_header_bytes: 100}", want: []string{"http.max_header_bytes: 100 is out of range (allowed 4096 to 1048576)"}},
		{name: "connections not a number", yaml: "http: {max_connections: many}", want: []string{`http.max_connections: "many" is not a valid int`}},
		{name: "event streams take every connection", yaml: "http: {max_connections: 100, max_event_streams: 100}",
			want: []string{"http.max_event_streams: 100 is out of range (allowed 1 to http.max_connections 100 minus 4"}},
		{name: "negative event streams", env: []string{"PRESENCED_HTTP_MAX_EVENT_STREAMS=-1"}, want: []string{"http.max_event_streams: -1 is out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-check-config"}
			if tc.yaml != "" {
				args = append(args, "-config", writeFile(t, "presenced.yaml", tc.yaml+"\n"))
			}
			var stdout, stderr bytes.Buffer
			code := realMain(args, append(tc.env, minimalEnv...), &stdout, &stderr)
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("got %q, want it to contain %q", out, w)
				}
			}
		})
	}
}

// TestDurationsAndRangesThatLoad: values with units at the edges of their ranges load, the
// environment's durations keep needing a unit and get one, and the embedded store's snapshot
// keys are not checked when Redis is used.
func TestDurationsAndRangesThatLoad(t *testing.T) {
	yaml := fixture(t, "config/range-edges.yaml", nil)
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", yaml)},
		append([]string{"PRESENCED_HTTP_IDLE_TIMEOUT=90s", "PRESENCED_HTTP_SHUTDOWN_TIMEOUT=1s"}, minimalEnv...), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key       string
		got, want time.Duration
	}{
		{"reconcile.interval", cfg.Reconcile.Interval, 10 * time.Second},
		{"triggers.tick", cfg.Triggers.Tick, 100 * time.Millisecond},
		{"asterisk.ami.backoff_max", cfg.Asterisk.AMI.BackoffMax, time.Second},
		{"feature_codes.lockout", cfg.FeatureCodes.Lockout, 24 * time.Hour},
		{"http.idle_timeout (environment)", cfg.HTTP.IdleTimeout, 90 * time.Second},
		{"http.shutdown_timeout (environment)", cfg.HTTP.ShutdownTimeout, time.Second},
		{"store.snapshot_timeout", cfg.Store.SnapshotTimeout, time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if engine := cfg.engineShutdownBudget(); engine != time.Second {
		t.Errorf("engine's part of shutdown_timeout 3s = %v, want 1s", engine)
	}

	cfg, _, err = loadConfig([]string{"-config", writeFile(t, "presenced.yaml", "redis: {url: redis://127.0.0.1:6379/0}\nstore: {snapshot_interval: 1ms, snapshot_timeout: 1ms}\n")},
		minimalEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("store.* with Redis: %v", err)
	}
	if engine := cfg.engineShutdownBudget(); engine != cfg.ShutdownTimeout-cfg.HTTP.ShutdownTimeout {
		t.Errorf("engine's part with Redis = %v, want all HTTP leaves", engine)
	}

	cfg, _, err = loadConfig(nil, minimalEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP; h.ReadHeaderTimeout != 5*time.Second || h.ReadTimeout != 15*time.Second || h.WriteTimeout != 90*time.Second ||
		h.IdleTimeout != 30*time.Second || h.ShutdownTimeout != 4*time.Second || h.MaxConnections != 1024 || h.MaxHeaderBytes != 32<<10 {
		t.Errorf("http defaults %+v", h)
	}
	if cfg.ShutdownTimeout != 10*time.Second || cfg.Store.SnapshotTimeout != 4*time.Second || cfg.engineShutdownBudget() != 2*time.Second {
		t.Errorf("shutdown defaults: %v, snapshot %v, engine %v", cfg.ShutdownTimeout, cfg.Store.SnapshotTimeout, cfg.engineShutdownBudget())
	}
}

// TestSentinelConfig: redis.sentinel loads from the file and from the environment (the
// addresses as a comma-separated list, the sentinels' password from a file), and every mistake
// is refused in one line naming its key.
func TestSentinelConfig(t *testing.T) {
	pw := writeFile(t, "sentinel-password", "sentinel-s3cret\n")
	yaml := fixture(t, "config/sentinel.yaml", map[string]string{"PasswordFile": pw})
	cfg, _, err := loadConfig([]string{"-config", writeFile(t, "presenced.yaml", yaml)}, minimalEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Redis.Sentinel
	if s.MasterName != "presenced" || !slices.Equal(s.Addresses, []string{"10.0.0.1:26379", "sentinel-b:26379"}) ||
		s.Username != "watcher" || s.Password != "sentinel-s3cret" || s.WaitReplicas != 1 || s.WaitTimeout != 250*time.Millisecond ||
		cfg.Redis.DB != 2 || cfg.Redis.Username != "presenced" || cfg.Redis.Password != "master-s3cret" {
		t.Errorf("from the file: %+v, redis %+v", s, cfg.Redis)
	}
	if cfg.Redis.embedded() || cfg.Redis.kind() != "sentinel" || cfg.embeddedSnapshots() {
		t.Errorf("with sentinel: embedded %v, kind %s, snapshots %v", cfg.Redis.embedded(), cfg.Redis.kind(), cfg.embeddedSnapshots())
	}

	cfg, _, err = loadConfig(nil, append([]string{
		"PRESENCED_REDIS_SENTINEL_MASTER_NAME=mymaster",
		"PRESENCED_REDIS_SENTINEL_ADDRESSES=10.0.0.1:26379,10.0.0.2:26379, 10.0.0.3:26379",
		"PRESENCED_REDIS_SENTINEL_WAIT_REPLICAS=0",
	}, minimalEnv...), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Redis.Sentinel; s.MasterName != "mymaster" || len(s.Addresses) != 3 || s.Addresses[2] != "10.0.0.3:26379" || s.WaitReplicas != 0 ||
		s.WaitTimeout != time.Second {
		t.Errorf("from the environment: %+v", s)
	}

	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		{name: "url and sentinel", yaml: "redis: {url: redis://127.0.0.1:6379/0, sentinel: {master_name: m, addresses: [10.0.0.1:26379]}}",
			want: []string{"redis.sentinel: set either redis.url or redis.sentinel, not both"}},
		{name: "addresses without a master name", env: []string{"PRESENCED_REDIS_SENTINEL_ADDRESSES=10.0.0.1:26379"},
			want: []string{"redis.sentinel.master_name: required with redis.sentinel.addresses"}},
		{name: "master name without addresses", yaml: "redis: {sentinel: {master_name: m}}",
			want: []string{"redis.sentinel.addresses: required with redis.sentinel.master_name", "PRESENCED_REDIS_SENTINEL_ADDRESSES=a:26379,b:26379"}},
		{name: "address without a port", yaml: "redis: {sentinel: {master_name: m, addresses: [10.0.0.1:26379, sentinel-b]}}",
			want: []string{`redis.sentinel.addresses[1]: "sentinel-b" is not host:port`}},
		{name: "master name with a space", yaml: "redis: {sentinel: {master_name: my master, addresses: [10.0.0.1:26379]}}",
			want: []string{`redis.sentinel.master_name: "my master" must not contain spaces`}},
		{name: "sentinel user without a password", yaml: "redis: {sentinel: {master_name: m, addresses: [10.0.0.1:26379], username: watcher}}",
			want: []string{"redis.sentinel.username: needs redis.sentinel.password"}},
		{name: "sentinel password and file", env: []string{"PRESENCED_REDIS_SENTINEL_PASSWORD=x", "PRESENCED_REDIS_SENTINEL_PASSWORD_FILE=/nonexistent"},
			want: []string{"redis.sentinel.password: set either redis.sentinel.password or redis.sentinel.password_file, not both"}},
		{name: "db with a url", yaml: "redis: {url: redis://127.0.0.1:6379/0, db: 3}",
			want: []string{"redis.db: only with redis.sentinel (redis.url names its database: redis://host:6379/3)"}},
		{name: "db of the embedded store", env: []string{"PRESENCED_REDIS_DB=1"}, want: []string{"redis.db: only with redis.sentinel"}},
		{name: "negative db", yaml: "redis: {db: -1, sentinel: {master_name: m, addresses: [10.0.0.1:26379]}}",
			want: []string{"redis.db: -1 is out of range (allowed 0 to 65536)"}},
		{name: "wait for too many replicas", yaml: "redis: {sentinel: {master_name: m, addresses: [10.0.0.1:26379], wait_replicas: 100}}",
			want: []string{"redis.sentinel.wait_replicas: 100 is out of range (allowed 0 to 16)"}},
		{name: "wait timeout without a unit", yaml: "redis: {sentinel: {master_name: m, addresses: [10.0.0.1:26379], wait_timeout: 500}}",
			want: []string{"redis.sentinel.wait_timeout: 500 has no unit"}},
		{name: "wait timeout too short", yaml: "redis: {sentinel: {master_name: m, addresses: [10.0.0.1:26379], wait_timeout: 1ms}}",
			want: []string{"redis.sentinel.wait_timeout: 1ms is out of range (allowed 10ms to 30s: replicas on the same network confirm a write in about a millisecond)"}},
		{name: "unknown sentinel key", yaml: "redis: {sentinel: {master: m}}", want: []string{"unknown key redis.sentinel.master"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-check-config"}
			if tc.yaml != "" {
				args = append(args, "-config", writeFile(t, "presenced.yaml", tc.yaml+"\n"))
			}
			var stdout, stderr bytes.Buffer
			code := realMain(args, append(tc.env, minimalEnv...), &stdout, &stderr)
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("got %q, want it to contain %q", out, w)
				}
			}
		})
	}

	// Without redis.sentinel its limits are not checked (as the embedded store's with Redis).
	if _, _, err := loadConfig(nil, append([]string{"PRESENCED_REDIS_SENTINEL_WAIT_TIMEOUT=1h"}, minimalEnv...), &bytes.Buffer{}); err != nil {
		t.Errorf("sentinel limits without sentinel: %v", err)
	}
}
