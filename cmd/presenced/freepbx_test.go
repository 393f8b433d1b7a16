package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// TestFreePBXQueueMembersAndDNDCodes (docs/freepbx.md, sections 3 and 4) against the lab
// Asterisk: FreePBX's own queue member of alice, Local/1001@from-queue/n with the state of
// hint:1001@ext-local (added here as FreePBX adds it), is the one presenced's queue_pause and
// queue_unpause act on, and presenced adds no member of its own; FreePBX's *78 and *79 as they
// write (DND/1001 in astdb and the lamp Custom:DEVDND1001 BUSY, then NOT_INUSE) switch her to
// her DND profile and back to the profile before, at once through the lamp's DeviceStateChange,
// with source phone, the member paused for DND and then for lunch again.
func TestFreePBXQueueMembersAndDNDCodes(t *testing.T) {
	const member, own = "Local/1001@from-queue/n", "Local/1001@presenced-queue-member/n"
	probe := newProbe(t).c
	p := &pbx{t: t, c: probe}
	for _, iface := range []string{member, own} {
		probe.QueueRemove(p.ctx(), iface, "support")
	}
	if err := probe.QueueAdd(p.ctx(), ami.QueueMemberSpec{Queue: "support", Interface: member,
		MemberName: "Alice", StateInterface: "hint:1001@ext-local"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		probe.QueueRemove(ctx, member, "support")
		probe.DBDel(ctx, "DND", "1001")
		probe.Setvar(ctx, "", "DEVICE_STATE(Custom:DEVDND1001)", "NOT_INUSE")
	})
	probe.DBDel(p.ctx(), "DND", "1001")
	probe.Setvar(p.ctx(), "", "DEVICE_STATE(Custom:DEVDND1001)", "NOT_INUSE")

	cfg := profileConfig(t, fixture(t, "config/freepbx.yaml", nil))
	// No periodic look within the test: only the DEVDND lamp's DeviceStateChange can make
	// presenced see *78 and *79 (astdb has no events).
	cfg.Reconcile.Interval = time.Hour
	d := startDaemon(t, cfg)
	d.waitReady(t, 20*time.Second)

	d.switchTo(t, "alice", "available", "")
	if m := p.member("support", member); m == nil || m.Paused {
		t.Fatalf("FreePBX's member after available: %+v", m)
	}
	d.switchTo(t, "alice", "lunch", "")
	if m := p.member("support", member); !pausedFor(m, "Lunch") {
		t.Fatalf("FreePBX's member after lunch: %+v, want paused for Lunch", m)
	}
	if m := p.member("support", own); m != nil {
		t.Errorf("presenced added a member of its own: %+v", m)
	}

	status := func() map[string]any {
		code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("alice"), nil)
		if code != http.StatusOK {
			t.Fatalf("GET alice: %d %v", code, st)
		}
		return st
	}
	// The look the lamp starts names what it found first: the astdb key or the lamp itself.
	onByLamp := map[any]bool{"DND key on (astdb DND/1001 = YES)": true, "DND key on (lamp Custom:DEVDND1001 BUSY)": true}
	offByLamp := map[any]bool{"DND key off (astdb DND/1001 not set)": true, "DND key off (lamp Custom:DEVDND1001 NOT_INUSE)": true}
	// *78 as FreePBX writes it: the astdb key and the device's DEVDND lamp.
	if err := probe.DBPut(p.ctx(), "DND", "1001", "YES"); err != nil {
		t.Fatal(err)
	}
	if err := probe.Setvar(p.ctx(), "", "DEVICE_STATE(Custom:DEVDND1001)", "BUSY"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice in dnd by FreePBX's *78", func() bool {
		st := status()
		return st["profile"] == "dnd" && st["source"] == "phone" && onByLamp[st["actor"]]
	})
	eventually(t, 10*time.Second, "FreePBX's member paused for DND", func() bool { return pausedFor(p.member("support", member), "DND") })

	// *79: both off.
	if err := probe.DBDel(p.ctx(), "DND", "1001"); err != nil {
		t.Fatal(err)
	}
	if err := probe.Setvar(p.ctx(), "", "DEVICE_STATE(Custom:DEVDND1001)", "NOT_INUSE"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice back in lunch by FreePBX's *79", func() bool {
		st := status()
		return st["profile"] == "lunch" && st["source"] == "phone" && offByLamp[st["actor"]]
	})
	eventually(t, 10*time.Second, "FreePBX's member paused for Lunch again", func() bool { return pausedFor(p.member("support", member), "Lunch") })
	if m := p.member("support", own); m != nil {
		t.Errorf("presenced added a member of its own: %+v", m)
	}
}
