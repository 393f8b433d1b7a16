package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/lab"
)

// apiSwitch is one switch through the API and its answer.
type apiSwitch struct {
	user, profile, info string
	start, end          time.Time
	code                int
	errMsg              string // the answer's "error"
	invalid             error  // the answer is not as the OpenAPI document says
}

// put switches through the API without a testing.T (it runs on the stream's goroutines). An
// answer not as the OpenAPI document says is reported in the apiSwitch's invalid.
func (d *daemonUnderTest) put(user, profile, info string) apiSwitch {
	s := apiSwitch{user: user, profile: profile, info: info, start: time.Now()}
	defer func() { s.end = time.Now() }()
	b, _ := json.Marshal(map[string]string{"profile": profile, "info": info})
	req, _ := http.NewRequest(http.MethodPut, d.base+"/api/v1/users/"+user+"/profile", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testToken("admin"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.errMsg = err.Error()
		return s
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	s.code = resp.StatusCode
	if v, err := openAPIValidator(); err != nil {
		s.invalid = err
	} else if err := v.Check(req, resp.StatusCode, resp.Header, raw); err != nil {
		s.invalid = err
	}
	var body struct {
		Error string `json:"error"`
	}
	json.Unmarshal(raw, &body)
	s.errMsg = body.Error
	s.end = time.Now()
	return s
}

// checkSwitchAnswers fails the test for each switch whose answer was not as the OpenAPI
// document says (put ran without a testing.T).
func checkSwitchAnswers(t *testing.T, switches map[string][]apiSwitch) {
	t.Helper()
	for _, ss := range switches {
		for _, s := range ss {
			if s.invalid != nil {
				t.Errorf("%s to %s: %v", s.user, s.profile, s.invalid)
			}
		}
	}
}

// TestSentinelFailoverUnderAPISwitches: presenced with redis.sentinel (passwords on the
// sentinels and on the master, one of two replicas to confirm each write) answers a stream of
// API switches while the master is killed (docker kill) and a replica promoted. No switch begun
// after the kill is answered 200 before a replica can have been promoted (down-after, 1 s), the
// switches in flight wait or fail (or find no leader, while the new master's replicas cannot yet
// confirm the leader's lease), and one begun after the failover is answered 200. Every
// switch answered 200 is in the new master (the user's state is the last one answered 200, or a
// later one answered 503: an unconfirmed write may stay) and in the journal presenced serves;
// every other answer is 503 "state store unavailable: …"; presenced is ready again by itself
// and its next switch lands on the PBX.
func TestSentinelFailoverUnderAPISwitches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := env.StartSentinel(ctx, lab.SentinelOptions{Replicas: 2, Passwords: true})
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: the daemon (startDaemon's cleanup, registered later) stops first.
	t.Cleanup(func() { g.Close(context.Background()) })

	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.Redis.URL = ""
	cfg.Redis.Password = Secret(g.Password)
	cfg.Redis.Sentinel = SentinelConfig{MasterName: g.MasterName, Addresses: g.Addresses, Password: Secret(g.SentinelPassword),
		WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond}
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	// The README's metrics table names what only Sentinel registers (TestReadmeMetricsTableMatchesRegistered).
	for name := range sentinelOnlyMetrics {
		if _, ok := registeredMetrics(t, d.reg)[name]; !ok {
			t.Errorf("with redis.sentinel presenced does not register %s", name)
		}
	}

	var (
		mu       sync.Mutex
		switches = map[string][]apiSwitch{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for _, user := range []string{"alice", "carol"} {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				s := d.put(user, []string{"available", "lunch"}[n%2], fmt.Sprintf("%s #%d", user, n))
				mu.Lock()
				switches[user] = append(switches[user], s)
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	// The master the sentinels name now: on a loaded machine they once failed the first master
	// over by themselves while the daemon started (it did not answer within down-after), and
	// killing the first master then killed a replica, which the store never noticed.
	master, err := g.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if master != g.FirstMaster {
		t.Logf("the sentinels failed %s over to %s before the kill; killing %s", g.FirstMaster, master, master)
	}
	killed := time.Now()
	if err := g.Kill(ctx, master); err != nil {
		t.Fatal(err)
	}
	dead := time.Now() // docker kill has returned
	promoted, err := g.WaitForFailover(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	failedOver := time.Now()
	// Switches go on until one begun after the failover is answered 200 (at most 20 s: right
	// after a failover, too few replicas may confirm the leader's renewals, and it may have to
	// step down and lead again, leader/leader.go "Across a failover of Redis"), and a little
	// longer.
	settled := time.Time{}
	for deadline := time.Now().Add(20 * time.Second); settled.IsZero() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		for _, ss := range switches {
			for _, s := range ss {
				if s.code == http.StatusOK && s.start.After(failedOver) && (settled.IsZero() || s.start.Before(settled)) {
					settled = s.start
				}
			}
		}
		mu.Unlock()
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	checkSwitchAnswers(t, switches)

	nc := g.Client(promoted)
	defer nc.Close()
	var (
		ok, failed, during, leaderless int
		slowest                        time.Duration
		firstOKAfter                   time.Time
		okAfterFailover                bool
	)
	for user, ss := range switches {
		last := -1
		for i, s := range ss {
			slowest = max(slowest, s.end.Sub(s.start))
			if s.start.After(dead) && s.start.Before(failedOver) {
				during++
			}
			switch {
			case s.code == http.StatusOK:
				ok++
				last = i
				if s.start.After(dead) && (firstOKAfter.IsZero() || s.end.Before(firstOKAfter)) {
					firstOKAfter = s.end
				}
				okAfterFailover = okAfterFailover || s.start.After(failedOver)
			case s.code == http.StatusServiceUnavailable && strings.HasPrefix(s.errMsg, "state store unavailable: "):
				failed++
			case s.end.After(killed) && (settled.IsZero() || s.start.Before(settled)) &&
				(s.code == http.StatusServiceUnavailable && strings.HasPrefix(s.errMsg, "this instance is not the leader") ||
					s.code == http.StatusGatewayTimeout):
				// Answered after the kill: the leader stepped down when its renewals could not
				// be confirmed (the master gone, then the new master's replicas not yet
				// following it); the switch was refused, or waited in vain for a leader.
				leaderless++
			default:
				t.Errorf("%s: %d %q; want 200, or 503 for the store (or, until the leader leads again, for no leader)", s.info, s.code, s.errMsg)
			}
		}
		if last < 0 {
			t.Fatalf("%s: no switch answered 200", user)
		}
		raw, err := nc.HGet(ctx, "presenced:user:"+user, "state").Result()
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Info string }
		json.Unmarshal([]byte(raw), &st)
		found := st.Info == ss[last].info
		for _, s := range ss[last+1:] {
			found = found || st.Info == s.info
		}
		if !found {
			t.Errorf("%s: the new master holds %q; the last switch answered 200 was %q", user, st.Info, ss[last].info)
		}
		code, body := d.call(t, http.MethodGet, "/api/v1/users/"+user+"/journal?limit=500", testToken("admin"), nil)
		if code != http.StatusOK {
			t.Fatalf("journal of %s: %d %v", user, code, body)
		}
		inJournal := map[string]bool{}
		entries, _ := body["entries"].([]any)
		for _, e := range entries {
			if info, _ := e.(map[string]any)["info"].(string); info != "" {
				inJournal[info] = true
			}
		}
		for _, s := range ss {
			if s.code == http.StatusOK && !inJournal[s.info] {
				t.Errorf("%s: answered 200, not in the journal presenced serves", s.info)
			}
		}
	}
	// The sentinels cannot promote a replica before the master has not answered for
	// down-after (1 s); presenced may hear of the new master before the test sees every
	// sentinel agree.
	if !okAfterFailover {
		t.Fatal("no switch begun after the failover was answered 200")
	}
	// The master may die any time between the kill's start and docker kill's return (which
	// took 3 s on a loaded machine): the sentinels cannot have promoted a replica before one
	// second after the kill started.
	if !firstOKAfter.After(killed.Add(time.Second)) {
		t.Errorf("the first switch begun after the kill was answered 200 %v after the kill started, before the sentinels could fail over",
			firstOKAfter.Sub(killed))
	}
	if failed == 0 && slowest < time.Second {
		t.Errorf("no switch failed or waited a second (slowest %v): the kill did not reach the store", slowest)
	}
	t.Logf("%d switches answered 200, %d answered 503 for the store, %d found no leader, %d began between the kill and the failover; "+
		"the sentinels agreed on the new master %v after the kill, the first switch begun after the kill was answered 200 %v after it; "+
		"the slowest answer took %v",
		ok, failed, leaderless, during, failedOver.Sub(killed).Round(time.Millisecond), firstOKAfter.Sub(killed).Round(time.Millisecond),
		slowest.Round(time.Millisecond))

	d.waitReady(t, 15*time.Second)
	d.switchTo(t, "alice", "lunch", "after the failover")
	p := &pbx{t: t, c: newProbe(t).c}
	if m := p.member("support", "Local/1001@presenced-queue-member/n"); m == nil || !m.Paused {
		t.Errorf("alice in support after the failover: %+v, want paused (lunch)", m)
	}
}

// TestShutdownWithEverySentinelGone: every sentinel's address stopped answering (its
// container gone: connections time out). presenced runs on, not ready, and SIGTERM still stops
// it within shutdown_timeout: closing the store does not wait for the Sentinel lookups in
// progress, which go-redis makes holding the lock its Close needs.
func TestShutdownWithEverySentinelGone(t *testing.T) {
	var addrs []string
	for i := range 3 {
		// On Docker's default bridge, where the lab's sentinels live: nobody answers, a connection
		// times out (elsewhere it may be refused at once, which holds nothing up either).
		addrs = append(addrs, fmt.Sprintf("172.17.255.%d:26379", 251+i))
	}
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.Redis.URL = ""
	cfg.Redis.Sentinel = SentinelConfig{MasterName: "presenced", Addresses: addrs, WaitTimeout: 500 * time.Millisecond}
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	time.Sleep(3 * time.Second) // the store's lookups are under way
	if code, rd := d.readiness(t); code == http.StatusOK {
		t.Fatalf("ready with every sentinel gone: %+v", rd)
	}
	start := time.Now()
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		// Whether a Sentinel lookup is under way at the close is a matter of timing: the store
		// closes cleanly, or presenced says it left it to the process's exit.
		if err != nil && !strings.Contains(err.Error(), "the store did not close within 1s") {
			t.Errorf("presenced stopped with %v", err)
		}
	case <-time.After(cfg.ShutdownTimeout + time.Second):
		t.Fatalf("presenced did not stop within shutdown_timeout (%v) with every sentinel gone", cfg.ShutdownTimeout)
	}
	// HTTP at once, the engine in about a second (its lease cannot be released), the store a
	// second at most: a lookup in progress (seconds here) does not hold the shutdown.
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("presenced took %v to stop with every sentinel gone; want 4s at most", took)
	}
}
