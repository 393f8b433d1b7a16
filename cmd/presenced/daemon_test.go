package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

var env *lab.Env

func TestMain(m *testing.M) {
	if path := os.Getenv(loadConfigEnv); path != "" {
		loadConfigAndExit(path) // re-executed by BenchmarkConfigLoadRSS
	}
	if os.Getenv("PRESENCED_TEST_RUN_MAIN") == "1" {
		// Re-executed by TestProcessExitCode: be presenced.
		os.Unsetenv("PRESENCED_TEST_RUN_MAIN")
		os.Args = append([]string{"presenced"}, os.Args[1:]...)
		main()
		return
	}
	os.Exit(lab.Main(m, lab.Options{Asterisk: true, Redis: true}, func(e *lab.Env) { env = e }))
}

// labConfig is a configuration pointing at the given AMI address and ARI URL.
func labConfig(t testing.TB, amiAddr, ariURL string) Config {
	t.Helper()
	environ := []string{
		"PRESENCED_ASTERISK_AMI_ADDRESS=" + amiAddr,
		"PRESENCED_ASTERISK_AMI_USERNAME=" + env.AMIUser,
		"PRESENCED_ASTERISK_AMI_SECRET=" + env.AMISecret,
		"PRESENCED_ASTERISK_AMI_PING_INTERVAL=1s",
		"PRESENCED_ASTERISK_ARI_URL=" + ariURL,
		"PRESENCED_ASTERISK_ARI_USERNAME=" + env.ARIUser,
		"PRESENCED_ASTERISK_ARI_PASSWORD=" + env.ARIPassword,
		"PRESENCED_INSTANCE_ID=" + strings.ReplaceAll(t.Name(), "/", "-"),
		"PRESENCED_HTTP_LISTEN=127.0.0.1:0",
		"PRESENCED_STORE_SNAPSHOT_PATH=" + filepath.Join(t.TempDir(), "store.json"),
	}
	cfg, _, err := loadConfig(nil, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Below asterisk.ami.backoff_max's minimum (1s), which protects Asterisk from reconnects:
	// the tests that drop the connection want it back at once.
	cfg.Asterisk.AMI.BackoffMax = 500 * time.Millisecond
	return cfg
}

// daemonUnderTest is presenced running in-process.
type daemonUnderTest struct {
	base   string               // http://127.0.0.1:port
	reg    *prometheus.Registry // what /metrics serves
	cancel context.CancelFunc
	done   chan error
}

func startDaemon(t testing.TB, cfg Config) *daemonUnderTest {
	t.Helper()
	return startDaemonAt(t, cfg, slog.LevelDebug)
}

// slogInfo is the log level of daemons under benchmark: a debug line per AMI action, written
// through the test's log, would be most of what they do.
const slogInfo = slog.LevelInfo

// startDaemonAt is startDaemon logging at level.
func startDaemonAt(t testing.TB, cfg Config, level slog.Level) *daemonUnderTest {
	t.Helper()
	return startDaemonLogging(t, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})))
}

// startDaemonLogging is startDaemon with the daemon's logger given.
func startDaemonLogging(t testing.TB, cfg Config, log *slog.Logger) *daemonUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonUnderTest{cancel: cancel, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		d.done <- run(ctx, cfg, log, func(a string, reg *prometheus.Registry) { d.reg = reg; addr <- a })
	}()
	select {
	case a := <-addr:
		d.base = "http://" + a
	case err := <-d.done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start listening within 10s")
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop shuts the daemon down; it must finish cleanly within its 10 s budget.
func (d *daemonUnderTest) stop(t testing.TB) {
	if d.cancel == nil {
		return
	}
	start := time.Now()
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	case <-time.After(11 * time.Second):
		t.Fatal("daemon did not stop within 10s")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %v", took)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (d *daemonUnderTest) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(d.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemonUnderTest) readiness(t testing.TB) (int, readiness) {
	t.Helper()
	code, body := d.get(t, "/readyz")
	var rd readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, rd
}

// waitReady polls /readyz until it answers 200.
func (d *daemonUnderTest) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		// Ready, and the leader: the tests' daemons run alone, and only a leader writes to
		// Asterisk (a daemon on a store that lost its lease data waits one lease first).
		code, rd := d.readiness(t)
		if code == http.StatusOK && rd.Ready && rd.Role == "leader" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v: %d %+v", within, code, rd)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metric returns the value of a sample of /metrics, named with its labels as the text writes
// them, e.g. `presenced_ami_connected{connection="main"}`.
func (d *daemonUnderTest) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, body := d.get(t, "/metrics")
	return metricIn(t, body, name)
}

// metricIn returns the value of the sample name (as for metric) in body, the text of /metrics.
func metricIn(t testing.TB, body, name string) float64 {
	t.Helper()
	for _, s := range parseMetrics(t, body) {
		if s.name+s.labels == name {
			return s.value
		}
	}
	t.Fatalf("/metrics has no sample %s", name)
	return 0
}

// metricSample is one sample of /metrics: its name; its labels as the text writes them
// (`{connection="main"}`, "" for none), and by name; its value, or for a histogram or a
// summary (distribution) its sum and count.
type metricSample struct {
	name, labels      string
	label             map[string]string
	value, sum, count float64
	distribution      bool
}

// parseMetrics reads body, the text of /metrics, into its samples.
func parseMetrics(t testing.TB, body string) []metricSample {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	var out []metricSample
	for name, f := range families {
		for _, m := range f.GetMetric() {
			s := metricSample{name: name, label: map[string]string{}}
			var pairs []string
			for _, l := range m.GetLabel() {
				s.label[l.GetName()] = l.GetValue()
				pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if pairs != nil {
				s.labels = "{" + strings.Join(pairs, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				s.value = m.GetUntyped().GetValue()
			case m.GetHistogram() != nil:
				s.sum, s.count, s.distribution = m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount()), true
			case m.GetSummary() != nil:
				s.sum, s.count, s.distribution = m.GetSummary().GetSampleSum(), float64(m.GetSummary().GetSampleCount()), true
			}
			out = append(out, s)
		}
	}
	return out
}

// TestStartsWithoutAsteriskThenConnects: with Asterisk unreachable presenced keeps running,
// answers /healthz, reports not ready with the reason, and connects by itself once Asterisk
// is reachable.
func TestStartsWithoutAsteriskThenConnects(t *testing.T) {
	amiProxy, err := lab.NewProxy(env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer amiProxy.Close()
	ariProxy, err := lab.NewProxy(env.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ariProxy.Close()
	amiProxy.SetUp(false)
	ariProxy.SetUp(false)

	d := startDaemon(t, labConfig(t, amiProxy.Addr(), "http://"+ariProxy.Addr()+"/ari"))
	time.Sleep(1500 * time.Millisecond) // a few failed attempts
	if code, body := d.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d %q while Asterisk is down", code, body)
	}
	code, rd := d.readiness(t)
	if code != http.StatusServiceUnavailable || rd.Ready {
		t.Fatalf("/readyz = %d %+v while Asterisk is down, want 503", code, rd)
	}
	if !strings.Contains(rd.Checks["ami"], "not connected to "+amiProxy.Addr()) {
		t.Errorf("ami check = %q, want the reason", rd.Checks["ami"])
	}
	if !strings.Contains(rd.Checks["ari"], "not connected") {
		t.Errorf("ari check = %q, want the reason", rd.Checks["ari"])
	}
	if rd.Checks["store"] != "ok" {
		t.Errorf("store check = %q (embedded store)", rd.Checks["store"])
	}
	if v := d.metric(t, `presenced_ami_connected{connection="main"}`); v != 0 {
		t.Errorf("presenced_ami_connected = %v while down", v)
	}

	amiProxy.SetUp(true)
	ariProxy.SetUp(true)
	d.waitReady(t, 15*time.Second)
	if v := d.metric(t, `presenced_ami_connected{connection="main"}`); v != 1 {
		t.Errorf("presenced_ami_connected = %v once up", v)
	}
	if v := d.metric(t, "presenced_ari_connected"); v != 1 {
		t.Errorf("presenced_ari_connected = %v once up", v)
	}
}

// TestSurvivesAsteriskRestart: "core restart now" under a running presenced: it reconnects,
// the ready hook fires again once Asterisk is fully booted and puts back what the restart lost
// (the PRESENCED_APP global), and readiness returns.
func TestSurvivesAsteriskRestart(t *testing.T) {
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	if v := d.metric(t, "presenced_asterisk_resyncs_total"); v != 1 {
		t.Fatalf("resyncs after start = %v, want 1", v)
	}
	wantApp := cfg.Asterisk.ARI.App + "-" + cfg.InstanceID
	probe := newProbe(t)
	// The leader's engine puts the global back first thing (the Asterisk-wide key).
	eventually(t, 5*time.Second, appVariable+" set by the leader", func() bool { return probe.global(t, appVariable) == wantApp })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := env.CLI(ctx, "core restart now"); err != nil && !strings.Contains(err.Error(), "exit code") {
		t.Fatalf("core restart now: %v", err)
	}
	if err := env.WaitFullyBooted(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for d.metric(t, "presenced_asterisk_resyncs_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("ready hook did not fire again after core restart now")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := d.metric(t, `presenced_ami_reconnects_total{connection="main"}`); v < 1 {
		t.Errorf("presenced_ami_reconnects_total = %v after a restart", v)
	}
	d.waitReady(t, 30*time.Second)
	probe = newProbe(t) // the restart cut the probe's connection too
	eventually(t, 5*time.Second, appVariable+" put back after the restart", func() bool { return probe.global(t, appVariable) == wantApp })
}

// TestGracefulShutdownSnapshotsEmbeddedStore: SIGTERM's path (ctx cancelled) stops within the
// timeout and leaves the embedded store's snapshot on disk.
func TestGracefulShutdownSnapshotsEmbeddedStore(t *testing.T) {
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	d.stop(t)
	if _, err := os.Stat(cfg.Store.SnapshotPath); err != nil {
		t.Fatalf("no snapshot after shutdown: %v", err)
	}
}

// TestRealRedis: with redis.url set the daemon uses the lab Redis and is ready.
func TestRealRedis(t *testing.T) {
	cfg := labConfig(t, env.AMIAddr, env.ARIURL)
	cfg.Redis.URL = Secret(env.RedisURL)
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
}

// probe is a second AMI connection, as an admin's tool would have, to read what presenced did.
type probe struct{ c *ami.Client }

func newProbe(t *testing.T) *probe {
	t.Helper()
	c, err := ami.New(ami.Config{Addr: env.AMIAddr, Username: env.AMITestUser, Secret: env.AMITestSecret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(15 * time.Second)
	for !c.Status().FullyBooted {
		if time.Now().After(deadline) {
			t.Fatalf("probe AMI connection not ready: %+v", c.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &probe{c: c}
}

func (p *probe) global(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := p.c.Getvar(ctx, "", name)
	if err != nil {
		t.Fatalf("getvar %s: %v", name, err)
	}
	return v
}
