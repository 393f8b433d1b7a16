package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/lab"
)

// TestLeadershipAcrossSentinelFailover: two daemons (sl-a, sl-b) on Redis with Sentinel (two
// replicas, one to confirm each write and each renewal of the leader lease), their /readyz
// asked in turn throughout, and a stream of API switches through both: alice through sl-a,
// carol through sl-b. The master hangs (docker pause) and the sentinels promote a replica. The
// lease is kept (the leader renews it on the new master) or the leader steps down and one
// of the two takes it again; never do the answers prove two leaders at once. Every switch
// answered 200, before, during and after the failover, is in the new master and in the
// journal; every other answer is a 503 or a 504. The old master comes back as a replica
// without disturbing the leader; then exactly one leads, and a switch through each lands on
// the PBX.
func TestLeadershipAcrossSentinelFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g, err := env.StartSentinel(ctx, lab.SentinelOptions{Replicas: 2, Passwords: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) }) // after the daemons have stopped

	names := []string{"sl-a", "sl-b"}
	var cfgs []Config
	for _, name := range names {
		cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
		cfg.InstanceID = name
		cfg.Redis.URL = ""
		cfg.Redis.Password = Secret(g.Password)
		cfg.Redis.Sentinel = SentinelConfig{MasterName: g.MasterName, Addresses: g.Addresses, Password: Secret(g.SentinelPassword),
			WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond}
		cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	a := startDaemon(t, cfgs[0])
	a.waitRole(t, "leader", 20*time.Second) // a new store: one lease first
	b := startDaemon(t, cfgs[1])
	b.waitRole(t, "standby", 20*time.Second)
	w := watchRoles(t, names, a, b)

	var (
		mu       sync.Mutex
		switches = map[string][]apiSwitch{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for user, d := range map[string]*daemonUnderTest{"alice": a, "carol": b} {
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
	time.Sleep(time.Second + rand.N(time.Second)) // switches before; any moment of the lease's renewals
	before, ok := w.latest()
	if !ok {
		t.Fatal("no instance said it led before the failover")
	}
	paused := time.Now()
	if err := g.Pause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	promoted, err := g.WaitForFailover(ctx, g.FirstMaster)
	if err != nil {
		t.Fatal(err)
	}
	failedOver := time.Now()
	// Switches after: until each user had one begun after the failover answered 200.
	eventually(t, 30*time.Second, "a switch of each user begun after the failover answered 200", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range switches {
			ok := false
			for _, s := range ss {
				ok = ok || (s.code == http.StatusOK && s.start.After(failedOver))
			}
			if !ok {
				return false
			}
		}
		return len(switches) == 2
	})
	close(stop)
	wg.Wait()
	checkSwitchAnswers(t, switches)

	// Every switch answered 200 is in the new master (the sentinels' master now: the one they
	// promoted, or another if they failed over again) and in the journal.
	master, err := g.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nc := g.Client(master)
	defer nc.Close()
	var ok200, failed int
	answers := map[string]int{} // the other answers, by code and message
	for user, ss := range switches {
		last := -1
		for i, s := range ss {
			switch s.code {
			case http.StatusOK:
				ok200++
				last = i
			case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				failed++
				answers[fmt.Sprintf("%d %s", s.code, s.errMsg)]++
			default:
				t.Errorf("%s: %d %q; want 200, 503 or 504", s.info, s.code, s.errMsg)
			}
		}
		raw, err := nc.HGet(ctx, "presenced:user:"+user, "state").Result()
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Info string }
		json.Unmarshal([]byte(raw), &st)
		found := false
		for _, s := range ss[last:] {
			found = found || st.Info == s.info
		}
		if !found {
			t.Errorf("%s: the new master holds %q; the last switch answered 200 was %q", user, st.Info, ss[last].info)
		}
		journal := map[string]bool{}
		for _, e := range b.journalEntries(t, user, 500) {
			journal[fmt.Sprint(e["info"])] = true
		}
		for _, s := range ss {
			if s.code == http.StatusOK && !journal[s.info] {
				t.Errorf("%s: answered 200, not in the journal", s.info)
			}
		}
	}

	// The old master comes back, as a replica of the new one: the leader is not disturbed.
	waitRoles := func() (*daemonUnderTest, *daemonUnderTest, string) {
		t.Helper()
		var leader, standby *daemonUnderTest
		var name string
		eventually(t, 20*time.Second, "one leader and one standby, both ready", func() bool {
			_, ra := a.readiness(t)
			_, rb := b.readiness(t)
			switch {
			case !ra.Ready || !rb.Ready:
				return false
			case ra.Role == "leader" && rb.Role == "standby":
				leader, standby, name = a, b, names[0]
			case rb.Role == "leader" && ra.Role == "standby":
				leader, standby, name = b, a, names[1]
			default:
				return false
			}
			return true
		})
		return leader, standby, name
	}
	// The term that runs a lease after the pause was renewed or taken on the new master: the
	// one before ended by then unless it was renewed there.
	time.Sleep(time.Until(paused.Add(cfgs[0].Leader.Lease)))
	_, _, _ = waitRoles()
	after, ok := w.latest()
	if !ok {
		t.Fatal("no instance said it led after the failover")
	}
	if err := g.Unpause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	oc := g.Client(g.FirstMaster)
	// The master now, as the sentinels name it: on a loaded machine they may fail over a second
	// time (a promotion that did not complete in time is retried with another replica).
	eventually(t, time.Minute, "the old master replicating from the new one", func() bool {
		master, err := g.MasterAddr(ctx)
		if err != nil || master == g.FirstMaster {
			return false
		}
		role, err := oc.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 3 && role[0] == "slave" && fmt.Sprint(role[3]) == "connected" &&
			net.JoinHostPort(fmt.Sprint(role[1]), fmt.Sprint(role[2])) == master
	})
	oc.Close()
	leader, standby, name := waitRoles()
	now, ok := w.latest()
	if !ok || now.epoch != after.epoch {
		t.Errorf("the term after the old master came back: %+v; want %s's (epoch %d) still", now, after.who, after.epoch)
	}
	leader.switchTo(t, "alice", "lunch", "after the failover, through the leader")
	standby.switchTo(t, "carol", "lunch", "after the failover, through the standby")
	p := &pbx{t: t, c: newProbe(t).c}
	for _, iface := range []string{"Local/1001@presenced-queue-member/n", "Local/1003@presenced-queue-member/n"} {
		if m := p.member("support", iface); m == nil || !m.Paused {
			t.Errorf("%s in support after the failover: %+v, want paused (lunch)", iface, m)
		}
	}

	// What happened to the lease.
	var epochs []int64
	for e := range w.terms() {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	outcome := fmt.Sprintf("%s kept the lease (epoch %d)", before.who, before.epoch)
	if after.epoch != before.epoch {
		gap := "unknown"
		if tb, ta := w.terms()[before.epoch], w.terms()[after.epoch]; tb != nil && ta != nil {
			gap = ta.from.Sub(tb.to).Round(time.Millisecond).String()
		}
		outcome = fmt.Sprintf("%s (epoch %d) stepped down, %s took the lease (epoch %d); at most %s without a leader seen",
			before.who, before.epoch, after.who, after.epoch, gap)
	}
	t.Logf("master paused at 0, the sentinels agreed on %s at %v: %s; terms seen %v; %d switches answered 200, %d not: %v; "+
		"%s leads after the old master came back", promoted, failedOver.Sub(paused).Round(time.Millisecond), outcome, epochs,
		ok200, failed, answers, name)
}
