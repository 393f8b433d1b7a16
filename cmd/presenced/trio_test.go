package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// pbxEvents is a separate AMI login that also reads the dialplan class (VarSet), recording
// what the tests count: QueueMemberPause events that paused a member, and the values global
// variables were set to.
type pbxEvents struct {
	mu      sync.Mutex
	pauses  map[string]int      // "queue iface" → QueueMemberPause events with Paused=1
	globals map[string][]string // variable → the values it was set to, in order
}

func newPBXEvents(t *testing.T) *pbxEvents {
	t.Helper()
	c, err := ami.New(ami.Config{Addr: env.AMIAddr, Username: env.AMITestUser, Secret: env.AMITestSecret,
		Events: "system,agent,dialplan"})
	if err != nil {
		t.Fatal(err)
	}
	e := &pbxEvents{pauses: map[string]int{}, globals: map[string][]string{}}
	sub := c.Subscribe(4096)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	go func() {
		for ev := range sub.Events() {
			switch ev.Event() {
			case "QueueMemberPause":
				if ev.Get("Paused") == "1" {
					e.mu.Lock()
					e.pauses[ev.Get("Queue")+" "+strings.ToLower(ev.Get("Interface"))]++
					e.mu.Unlock()
				}
			case "VarSet":
				if ev.Get("Channel") == "" || ev.Get("Channel") == "none" {
					e.mu.Lock()
					e.globals[ev.Get("Variable")] = append(e.globals[ev.Get("Variable")], ev.Get("Value"))
					e.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; sub.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for !c.Status().FullyBooted {
		if time.Now().After(deadline) {
			t.Fatalf("event AMI connection not ready: %+v", c.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// paused is how many times the member iface of queue was paused since the login.
func (e *pbxEvents) paused(queue, iface string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pauses[queue+" "+strings.ToLower(iface)]
}

// sets returns the values the global name was set to since the login.
func (e *pbxEvents) sets(name string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.globals[name]...)
}

// TestThreeInstancesOneWriter: three daemons (trio-a, -b, -c) on one Redis and one Asterisk,
// their /readyz asked in turn throughout. Exactly one leads in every round of answers; the
// answers never prove two leaders at once. PRESENCED_APP is set once, to the leader's
// application, and not again while the leader lives (VarSet events on a separate AMI login).
// A switch sent to each standby is carried out and answered with its outcomes; the three
// answer the same status; a hand unpause is repaired exactly once (QueueMemberPause events).
// Carol's own schedule entry, at the next whole minute at least 25 s ahead, switches her once:
// one journal entry, fired by the leader (its trigger metric; the standbys' stay 0), one
// pause on the PBX. When the leader stops, one standby leads and the other names it.
func TestThreeInstancesOneWriter(t *testing.T) {
	// Schedules have a minute's resolution: the entry is at the first whole minute (UTC) at
	// least 25 s away, time for the daemons to start and the rest of the test to run.
	due := time.Now().UTC().Add(25 * time.Second).Truncate(time.Minute).Add(time.Minute)
	yaml := fixture(t, "config/end-to-end.yaml", userKeys{"carol": {
		"time_zone: UTC",
		"schedules:",
		`  - {name: trio-lunch, at: "` + due.Format("15:04") + `", profile: lunch}`,
	}})
	names := []string{"trio-a", "trio-b", "trio-c"}
	cfgs := make([]Config, 3)
	for i, name := range names {
		cfgs[i] = profileConfig(t, yaml)
		cfgs[i].InstanceID = name
	}
	const alice, carol = "Local/1001@presenced-queue-member/n", "Local/1003@presenced-queue-member/n"
	p := &pbx{t: t, c: newProbe(t).c}
	// A stale value, so that the leader has to set PRESENCED_APP, and the test sees it do so.
	if err := p.c.Setvar(p.ctx(), "", appVariable, "stale-by-hand"); err != nil {
		t.Fatal(err)
	}
	events := newPBXEvents(t)
	apps := func() []string {
		var out []string
		for _, v := range events.sets(appVariable) {
			if v != "stale-by-hand" {
				out = append(out, v)
			}
		}
		return out
	}

	a := startDaemon(t, cfgs[0])
	a.waitRole(t, "leader", 20*time.Second)
	b, c := startDaemon(t, cfgs[1]), startDaemon(t, cfgs[2])
	b.waitRole(t, "standby", 20*time.Second)
	c.waitRole(t, "standby", 20*time.Second)
	w := watchRoles(t, names, a, b, c)
	steady := time.Now()
	appA := cfgs[0].Asterisk.ARI.App + "-trio-a"
	eventually(t, 5*time.Second, "PRESENCED_APP is the leader's", func() bool { return p.getvar(appVariable) == appA })
	if due.Sub(time.Now()) < 5*time.Second {
		t.Fatalf("the daemons took until %v before the schedule's %v to start", time.Now().UTC(), due)
	}

	// A switch sent to each standby: the leader carries it out, the answer has its outcomes.
	a.switchTo(t, "carol", "available", "")
	a.switchTo(t, "alice", "available", "")
	for _, sw := range []struct {
		d       *daemonUnderTest
		profile string
		paused  bool
	}{{b, "lunch", true}, {c, "available", false}, {c, "lunch", true}} {
		res := sw.d.switchTo(t, "alice", sw.profile, "")
		if outs, _ := res["outcomes"].([]any); len(outs) == 0 {
			t.Fatalf("a standby's answer to a switch to %s has no outcomes: %v", sw.profile, res)
		}
		if m := p.member("support", alice); m == nil || m.Paused != sw.paused {
			t.Fatalf("after the switch to %s through a standby: member %+v, want paused %v", sw.profile, m, sw.paused)
		}
	}

	// The three answer the same status.
	var statuses []map[string]any
	for _, d := range []*daemonUnderTest{a, b, c} {
		code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("alice"), nil)
		if code != http.StatusOK {
			t.Fatalf("status: %d %v", code, st)
		}
		statuses = append(statuses, st)
	}
	for i := 1; i < 3; i++ {
		if !reflect.DeepEqual(statuses[0], statuses[i]) {
			j0, _ := json.Marshal(statuses[0])
			ji, _ := json.Marshal(statuses[i])
			t.Fatalf("the instances answer different statuses:\n%s %s\n%s %s", names[0], j0, names[i], ji)
		}
	}

	// A hand unpause is repaired exactly once: one writer. The two switches to lunch paused
	// alice twice; their events may arrive after the answers.
	eventually(t, 5*time.Second, "the events of the two switches to lunch", func() bool { return events.paused("support", alice) == 2 })
	before := events.paused("support", alice)
	if err := p.c.QueuePause(p.ctx(), alice, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 2*time.Second, "the hand unpause repaired", func() bool {
		m := p.member("support", alice)
		return m != nil && m.Paused
	})
	time.Sleep(time.Second) // long enough for a second writer's repair to show
	if n := events.paused("support", alice) - before; n != 1 {
		t.Fatalf("the hand unpause was repaired %d times, want once", n)
	}

	// The schedule fires once, from the leader.
	var fired map[string]any
	eventually(t, time.Until(due)+15*time.Second, "carol's schedule fired", func() bool {
		for _, e := range a.journalEntries(t, "carol", 100) {
			if e["source"] == "schedule" {
				fired = e
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second) // long enough for a second firing to show
	var scheduled int
	for _, e := range a.journalEntries(t, "carol", 100) {
		if e["source"] == "schedule" {
			scheduled++
		}
	}
	at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(fired["at"]))
	if scheduled != 1 || fired["to"] != "lunch" {
		t.Errorf("carol's journal has %d schedule entries (the first: %v); want one switch to lunch", scheduled, fired)
	}
	if at.Before(due) || at.After(due.Add(5*time.Second)) {
		t.Errorf("the schedule due at %v switched carol at %v", due, at)
	}
	const firedMetric = `presenced_trigger_events_total{kind="at",result="switched"}`
	if got := []float64{a.metricOr0(t, firedMetric), b.metricOr0(t, firedMetric), c.metricOr0(t, firedMetric)}; !reflect.DeepEqual(got, []float64{1, 0, 0}) {
		t.Errorf("%s of trio-a (the leader), -b, -c: %v; want 1, 0, 0", firedMetric, got)
	}
	if n := events.paused("support", carol); n != 1 {
		t.Errorf("carol was paused %d times by her schedule, want once", n)
	}
	if m := p.member("support", carol); m == nil || !m.Paused || m.PausedReason != "Lunch" {
		t.Errorf("carol after her schedule: %+v, want paused (Lunch)", m)
	}

	// All along one leader, and PRESENCED_APP set once.
	if got := apps(); !reflect.DeepEqual(got, []string{appA}) {
		t.Fatalf("PRESENCED_APP was set to %q while the leader lived; want once, to %q", got, appA)
	}
	stopping := time.Now()
	if bad := w.roundsWithout(steady, stopping); len(bad) > 0 {
		t.Fatalf("rounds of answers without exactly one leader while trio-a led: %v", bad)
	}
	rounds := 0
	for _, s := range w.all() {
		if s.sent.After(steady) && s.sent.Before(stopping) {
			rounds++
		}
	}
	t.Logf("while trio-a led: %d /readyz answers, exactly one leader in every round; a hand unpause repaired once in %v; "+
		"the schedule due at %s fired once, %v after", rounds, took.Round(time.Millisecond), due.Format("15:04:05"),
		at.Sub(due).Round(time.Millisecond))

	// The leader stops: one standby leads, the other names it.
	a.stop(t)
	var next, other *daemonUnderTest
	var nextName string
	eventually(t, 15*time.Second, "a standby leading", func() bool {
		for i, d := range []*daemonUnderTest{b, c} {
			if _, rd := d.readiness(t); rd.Role == "leader" {
				next, other, nextName = d, []*daemonUnderTest{c, b}[i], names[1+i]
				return true
			}
		}
		return false
	})
	led := time.Now()
	w2 := watchRoles(t, names[1:], b, c)
	appNext := cfgs[0].Asterisk.ARI.App + "-" + nextName
	eventually(t, 5*time.Second, "PRESENCED_APP is the new leader's", func() bool { return p.getvar(appVariable) == appNext })
	if _, rd := other.readiness(t); rd.Role != "standby" || !strings.HasPrefix(rd.Leader, nextName+" ") {
		t.Errorf("the other standby: %+v, want a standby naming %s", rd, nextName)
	}
	if got := apps(); !reflect.DeepEqual(got, []string{appA, appNext}) {
		t.Errorf("PRESENCED_APP was set to %q; want %q, then once %q", got, appA, appNext)
	}
	next.switchTo(t, "alice", "available", "")
	w.close() // its answers are judged at the end; trio-a answers no more
	w2.waitAnswers(t, time.Now(), 3, 10*time.Second)
	if bad := w2.roundsWithout(led, time.Now()); len(bad) > 0 {
		t.Errorf("rounds of answers without exactly one leader after %s took over: %v", nextName, bad)
	}
	t.Logf("trio-a stopped: %s led %v later", nextName, led.Sub(stopping).Round(time.Millisecond))
}
