package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/internal/lab"
)

// TestFailoverAfterKill: a leader presenced (a real process) is killed with SIGKILL; the standby
// (in-process) takes over: it leads, owns PRESENCED_APP, serves a *55<n> call from a user's
// phone, repairs drift (made by hand right after the kill, and later), and nothing the killed
// leader acknowledged is lost. Its log line is the failover benchmark of docs/BENCHMARKS.md
// (go test -run TestFailoverAfterKill -count 5 -v ./cmd/presenced).
func TestFailoverAfterKill(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "presenced")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	yaml := fixture(t, "config/feature-codes.yaml", carolPIN())
	cfgB := profileConfig(t, yaml) // forgets alice and carol
	cfgB.InstanceID = "fo-b"
	path := filepath.Join(dir, "presenced.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	// The leader: presenced as a process of its own.
	port := freePort(t)
	leaderURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	a := exec.Command(bin, "-config", path)
	a.Env = append(os.Environ(),
		"PRESENCED_ASTERISK_AMI_ADDRESS="+env.AMIAddr,
		"PRESENCED_ASTERISK_AMI_USERNAME="+env.AMIUser,
		"PRESENCED_ASTERISK_AMI_SECRET="+env.AMISecret,
		"PRESENCED_ASTERISK_ARI_URL="+env.ARIURL,
		"PRESENCED_ASTERISK_ARI_PASSWORD="+env.ARIPassword,
		"PRESENCED_INSTANCE_ID=fo-a",
		fmt.Sprintf("PRESENCED_HTTP_LISTEN=127.0.0.1:%d", port),
		"PRESENCED_REDIS_URL="+env.RedisURL,
		"PRESENCED_LOG_FORMAT=json",
	)
	a.Stdout, a.Stderr = testWriter{t}, testWriter{t}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = a.Process.Kill()
		}
		_ = a.Wait()
	})
	waitRoleAt(t, leaderURL, "leader", 20*time.Second)

	// The standby, in-process, driving feature-code calls.
	f := &fcLab{t: t, cfg: cfgB, outcomes: make(chan featurecode.Outcome, 1024), seen: map[string]bool{}}
	f.cfg.observeFeatureCode = func(o featurecode.Outcome) { f.outcomes <- o }
	f.ami = newProbe(t).c
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	f.rdb = redis.NewClient(opt)
	t.Cleanup(func() { f.rdb.Close() })
	f.d = startDaemon(t, f.cfg)
	f.d.waitRole(t, "standby", 20*time.Second)
	p := &pbx{t: t, c: f.ami}
	const iface = "Local/1001@presenced-queue-member/n"

	// Switches acknowledged by the leader (one through the standby).
	f.d.switchTo(t, "carol", "available", "")
	f.d.switchTo(t, "alice", "available", "")
	f.d.switchTo(t, "alice", "meeting", "before the kill")

	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	killedAt := time.Now()
	// Drift made while nobody leads: the new leader's first repair.
	if err := p.c.QueuePause(p.ctx(), iface, "support", true, "by hand"); err != nil {
		t.Fatal(err)
	}
	f.d.waitRole(t, "leader", 10*time.Second)
	leads := time.Since(killedAt)
	eventually(t, 10*time.Second, "the pause made by hand after the kill repaired by the new leader", func() bool {
		m := p.member("support", iface)
		return m != nil && !m.Paused
	})
	firstRepair := time.Since(killedAt)
	appB := cfgB.Asterisk.ARI.App + "-fo-b"
	eventually(t, 10*time.Second, "PRESENCED_APP is the new leader's", func() bool { return p.getvar(appVariable) == appB })
	owns := time.Since(killedAt)

	// Nothing acknowledged is lost.
	if got := f.activeProfile("alice"); got != "meeting" {
		t.Fatalf("alice's profile after the failover %q, want meeting (acknowledged before the kill)", got)
	}
	// A feature code from Alice's phone, served by the new leader.
	id, _ := f.dial("*553", "1001")
	f.expect(f.outcome(id, 20*time.Second), featurecode.ResultSwitched, "alice", "1001", "lunch")
	served := time.Since(killedAt)
	if served > 10*time.Second+5*time.Second { // the call itself (answer, digits, prompt) takes a few seconds
		t.Errorf("the feature code was served %v after the kill", served)
	}
	// Drift is repaired by the new leader.
	if err := p.c.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	repaired := eventually(t, 2*time.Second, "the hand unpause repaired by the new leader", func() bool {
		m := p.member("support", iface)
		return m != nil && m.Paused && m.PausedReason == "Lunch"
	})
	t.Logf("kill -9 of the leader: the standby leads after %v, has repaired the drift made after the kill %v after it, owns PRESENCED_APP after %v, a *553 call switched alice %v after the kill; a hand unpause repaired in %v",
		leads.Round(time.Millisecond), firstRepair.Round(time.Millisecond), owns.Round(time.Millisecond), served.Round(time.Millisecond), repaired.Round(time.Millisecond))
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitRoleAt waits until the presenced at base is ready in role.
func waitRoleAt(t *testing.T, base, role string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var rd readiness
			_ = json.NewDecoder(resp.Body).Decode(&rd)
			resp.Body.Close()
			if rd.Ready && rd.Role == role {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not a ready %s after %v: %+v", base, role, within, rd)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s not a ready %s after %v: %v", base, role, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// amiWrites sums the daemon's AMI actions on the writing sessions (main, write2..., changes)
// that went on the wire, Pings aside: presenced_ami_actions_total{connection=~"main|write.*|changes"}
// without result "gated".
func (d *daemonUnderTest) amiWrites(t *testing.T) float64 {
	t.Helper()
	_, body := d.get(t, "/metrics")
	var n float64
	for _, s := range parseMetrics(t, body) {
		conn := s.label["connection"]
		if s.name == "presenced_ami_actions_total" && (conn == "main" || conn == "changes" || strings.HasPrefix(conn, "write")) &&
			s.label["action"] != "Ping" && s.label["result"] != "gated" {
			n += s.value
		}
	}
	return n
}

// TestLeaderCutOffFromRedisStopsWriting: the leader loses Redis (through a cutting proxy). It
// steps down before its lease can expire, and sends no AMI action from then on; the standby
// leads only after that, and repairs what the cut-off leader no longer does.
func TestLeaderCutOffFromRedisStopsWriting(t *testing.T) {
	proxy, err := lab.NewProxy(strings.TrimSuffix(strings.TrimPrefix(env.RedisURL, "redis://"), "/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfgA := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfgB := cfgA
	cfgA.InstanceID, cfgB.InstanceID = "cut-a", "cut-b"
	cfgA.Redis.URL = Secret("redis://" + proxy.Addr() + "/0")
	cfgA.Redis.DialTimeout, cfgA.Redis.ReadTimeout, cfgA.Redis.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"

	a := startDaemon(t, cfgA)
	a.waitRole(t, "leader", 20*time.Second)
	b := startDaemon(t, cfgB)
	b.waitRole(t, "standby", 20*time.Second)
	a.switchTo(t, "alice", "available", "")
	a.switchTo(t, "alice", "lunch", "")

	proxy.SetUp(false)
	cut := time.Now()
	var steppedDown time.Time
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, rd := a.readiness(t); rd.Role == "standby" {
			steppedDown = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cut-off leader did not step down")
		}
	}
	writes := a.amiWrites(t)
	// What the cut-off leader would have repaired.
	if err := p.c.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	b.waitRole(t, "leader", 15*time.Second)
	takenOver := time.Now()
	if !steppedDown.Before(takenOver) {
		t.Fatalf("the standby led (%v after the cut) before the cut-off leader stepped down (%v)", takenOver.Sub(cut), steppedDown.Sub(cut))
	}
	eventually(t, 5*time.Second, "the hand unpause repaired by the new leader", func() bool {
		m := p.member("support", iface)
		return m != nil && m.Paused && m.PausedReason == "Lunch"
	})
	time.Sleep(time.Second)
	if got := a.amiWrites(t); got != writes {
		t.Fatalf("the cut-off leader sent %v AMI actions after it stepped down", got-writes)
	}
	t.Logf("cut off from Redis: stepped down %v after the cut, the standby led %v after it (%v later); no AMI write from the old leader since",
		steppedDown.Sub(cut).Round(time.Millisecond), takenOver.Sub(cut).Round(time.Millisecond), takenOver.Sub(steppedDown).Round(time.Millisecond))
	proxy.SetUp(true)
}
