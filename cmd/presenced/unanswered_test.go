package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
)

// TestUnansweredQueueCallsSwitchTheAgent places real calls into a queue whose only member
// never answers: the first unanswered call is counted (the queue ringing her again for the
// same caller counts once), the second switches her to the configured profile, which pauses
// her in the queue on the PBX, journaled with source "unanswered" and the calls named. After
// she is back, an answered call starts the count again: one unanswered call after it switches
// nobody.
func TestUnansweredQueueCallsSwitchTheAgent(t *testing.T) {
	forgetUsers(t, "missy")
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	const countKey = "presenced:unanswered:missy"
	rdb.Del(context.Background(), countKey)
	cfg := profileConfig(t, fixture(t, "config/unanswered.yaml", nil))
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	probe := newProbe(t)
	p := &pbx{t: t, c: probe.c}
	const iface = "Local/9601@presenced-queue-member/n"
	dbDel := func() { _ = probe.c.DBDel(context.Background(), "LABSINK", "9601") }
	dbDel()
	t.Cleanup(dbDel)

	d.switchTo(t, "missy", "available", "")
	if m := p.member("unanswered", iface); m == nil || m.Paused {
		t.Fatalf("after the switch to available: member %+v, want in the queue, not paused", m)
	}
	counted := func() int64 {
		n, err := rdb.ZCard(context.Background(), countKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// call places a call into the queue, waits until cond holds, and hangs the caller up.
	calls := 0
	call := func(what string, cond func() bool) {
		t.Helper()
		calls++
		id := fmt.Sprintf("unanswered-%d-%d", time.Now().UnixNano(), calls)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := probe.c.Originate(ctx, ami.OriginateSpec{Channel: "Local/7003@queues", Application: "Wait", Data: "30",
			CallerID: `"Caller" <5550100>`, Async: true, ChannelID: id, OtherChannelID: id + "-2"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, what, cond)
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		for _, c := range []string{id, id + "-2"} {
			_ = probe.c.Hangup(hctx, c, 16) // either half may be gone already
		}
	}
	profileOf := func() string {
		code, st := d.call(t, "GET", "/api/v1/users/missy", testToken("admin"), nil)
		if code != 200 {
			t.Fatalf("status of missy: %d %v", code, st)
		}
		s, _ := st["profile"].(string)
		return s
	}

	// The member rings 2 s, then again after 1 s, for the same caller: one call.
	call("the first unanswered call counted", func() bool { return counted() == 1 })
	time.Sleep(4 * time.Second) // the queue rings her again for the same caller meanwhile
	if n := counted(); n != 1 {
		t.Fatalf("after one caller rang her several times: %d calls counted, want 1", n)
	}
	if got := profileOf(); got != "available" {
		t.Fatalf("after one unanswered call: profile %q, want available", got)
	}
	call("the second unanswered call switching her", func() bool { return profileOf() == "away" })
	eventually(t, 5*time.Second, "paused with the profile's reason on the PBX", func() bool {
		m := p.member("unanswered", iface)
		return m != nil && m.Paused && m.PausedReason == "Missed calls"
	})
	entries := d.journalEntries(t, "missy", 5)
	var found bool
	for _, e := range entries {
		if e["kind"] == "switch" && e["to"] == "away" {
			found = true
			if e["source"] != "unanswered" || e["actor"] != "2 unanswered calls from queue unanswered" {
				t.Errorf("journal entry of the switch: source %v, actor %v; want unanswered, %q", e["source"], e["actor"], "2 unanswered calls from queue unanswered")
			}
		}
	}
	if !found {
		t.Fatalf("no journal entry of the switch to away: %v", entries)
	}
	if n := counted(); n != 0 {
		t.Errorf("after the switch: %d calls still counted, want the count started again", n)
	}
	d.waitMetric(t, `presenced_unanswered_switches_total{result="switched"}`, "1", func(v float64) bool { return v == 1 })

	// Back to work: one unanswered call, an answered one, one unanswered: no switch.
	d.switchTo(t, "missy", "available", "")
	call("an unanswered call after her return", func() bool { return counted() == 1 })
	if err := probe.c.DBPut(context.Background(), "LABSINK", "9601", "answer"); err != nil {
		t.Fatal(err)
	}
	call("an answered call starting the count again", func() bool { return counted() == 0 })
	dbDel()
	call("an unanswered call after the answered one", func() bool { return counted() == 1 })
	if got := profileOf(); got != "available" {
		t.Fatalf("one unanswered call after an answered one switched her to %q", got)
	}
}
