package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitRole waits until the daemon is ready in the given role ("leader" or "standby").
func (d *daemonUnderTest) waitRole(t testing.TB, role string, within time.Duration) readiness {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, rd := d.readiness(t)
		if code == http.StatusOK && rd.Ready && rd.Role == role {
			return rd
		}
		if time.Now().After(deadline) {
			t.Fatalf("not a ready %s after %v: %d %+v", role, within, code, rd)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTwoInstancesOneWriter: two daemons on one Redis and one Asterisk. One leads, the other
// stands by and is ready; PRESENCED_APP stays the leader's; a switch sent to the standby is
// carried out by the leader and answered with its outcomes; both answer the same status; a
// hand unpause is repaired exactly once; when the leader stops, the standby takes over.
func TestTwoInstancesOneWriter(t *testing.T) {
	cfgA := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfgB := cfgA
	cfgA.InstanceID, cfgB.InstanceID = "pair-a", "pair-b"
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"

	a := startDaemon(t, cfgA)
	a.waitRole(t, "leader", 20*time.Second)
	// Alice out of her queues, whatever an earlier test left: the switch to available through
	// the standby below has operations to answer with.
	a.switchTo(t, "alice", "gone", "")
	b := startDaemon(t, cfgB)
	rd := b.waitRole(t, "standby", 20*time.Second)
	if !strings.HasPrefix(rd.Leader, "pair-a ") {
		t.Fatalf("the standby names the leader %q, want pair-a", rd.Leader)
	}
	appA, appB := cfgA.Asterisk.ARI.App+"-pair-a", cfgB.Asterisk.ARI.App+"-pair-b"
	eventually(t, 5*time.Second, "PRESENCED_APP is the leader's", func() bool { return p.getvar(appVariable) == appA })

	// A switch sent to the standby: the leader carries it out and the answer has its outcomes.
	res := b.switchTo(t, "alice", "available", "")
	if outs, _ := res["outcomes"].([]any); len(outs) == 0 {
		t.Fatalf("the standby's answer has no outcomes: %v", res)
	}
	b.switchTo(t, "alice", "lunch", "")
	if m := p.member("support", iface); m == nil || !m.Paused || m.PausedReason != "Lunch" {
		t.Fatalf("after a switch through the standby: member %+v, want paused (Lunch)", m)
	}

	// Both instances answer the same status (from Redis and the PBX).
	status := func(d *daemonUnderTest) map[string]any {
		code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("alice"), nil)
		if code != http.StatusOK {
			t.Fatalf("status: %d %v", code, st)
		}
		return st
	}
	if sa, sb := status(a), status(b); !reflect.DeepEqual(sa, sb) {
		ja, _ := json.Marshal(sa)
		jb, _ := json.Marshal(sb)
		t.Fatalf("the instances answer different statuses:\nleader  %s\nstandby %s", ja, jb)
	}

	// A hand unpause is repaired exactly once: only the leader writes.
	sub := p.c.Subscribe(1024)
	defer sub.Close()
	var repauses atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.Events() {
			if ev.Event() == "QueueMemberPause" && strings.EqualFold(ev.Get("Interface"), iface) &&
				ev.Get("Queue") == "support" && ev.Get("Paused") == "1" {
				repauses.Add(1)
			}
		}
	}()
	if err := p.c.QueuePause(p.ctx(), iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 2*time.Second, "the hand unpause repaired", func() bool {
		m := p.member("support", iface)
		return m != nil && m.Paused
	})
	time.Sleep(time.Second) // long enough for a second writer's repair to show
	if n := repauses.Load(); n != 1 {
		t.Fatalf("the hand unpause was repaired %d times, want once", n)
	}
	t.Logf("hand unpause repaired once, in %v", took.Round(time.Millisecond))
	if got := p.getvar(appVariable); got != appA {
		t.Fatalf("PRESENCED_APP = %q while the leader lives, want %q", got, appA)
	}

	// The leader stops: the standby takes over, owns PRESENCED_APP, and carries out switches.
	start := time.Now()
	a.stop(t)
	b.waitRole(t, "leader", 15*time.Second)
	eventually(t, 5*time.Second, "PRESENCED_APP is the new leader's", func() bool { return p.getvar(appVariable) == appB })
	t.Logf("graceful handover: the standby leads and owns PRESENCED_APP %v after the leader stopped", time.Since(start).Round(time.Millisecond))
	b.switchTo(t, "alice", "available", "")
	if m := p.member("support", iface); m == nil || m.Paused {
		t.Fatalf("after the handover: member %+v, want unpaused", m)
	}
}
