package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ari/featurecode"
)

// TestDNDKeySwitchesProfiles (issue 15, item 2): the DND key of a phone switches profiles.
// *76 dialled from Alice's desk phone through the shipped dialplan (presenced-features) toggles
// her into the dnd profile and back to the profile before; the DND key as FreePBX's *78/*79
// write it (DBPut/DBDel DND/1001, found by the periodic check) and as a BLF key toggles it
// (DEVICE_STATE(Custom:DND1001), whose DeviceStateChange starts a look at once), both from a
// second AMI login, switch her too, with source phone and an actor naming what was seen, in the
// status and the journal; the fifth switch within the window is refused and DND put back.
func TestDNDKeySwitchesProfiles(t *testing.T) {
	cfg := profileConfig(t, fixture(t, "config/dnd-key.yaml", nil))
	cfg.Reconcile.Interval = time.Second // astdb has no events: the periodic check finds *78
	f := startFeatureCodeDaemonWith(t, cfg, 0)
	d := f.d
	p := &pbx{t: t, c: f.ami}
	const iface = "Local/1001@presenced-queue-member/n"
	d.switchTo(t, "alice", "available", "")
	d.switchTo(t, "alice", "lunch", "back at 2")

	// The PBX as the DND key left it, and alice's state as the status says.
	dndOn := func() bool {
		v, ok := p.db("DND", "1001")
		lamp := deviceState(t, p, "Custom:DND1001")
		return ok && v == "YES" && lamp == "BUSY"
	}
	dndOff := func() bool {
		_, ok := p.db("DND", "1001")
		return !ok && deviceState(t, p, "Custom:DND1001") == "INVALID"
	}
	status := func() map[string]any {
		code, st := d.call(t, http.MethodGet, "/api/v1/users/alice", testToken("alice"), nil)
		if code != http.StatusOK {
			t.Fatalf("GET alice: %d %v", code, st)
		}
		return st
	}
	waitState := func(profile, source, actor string) {
		t.Helper()
		eventually(t, 10*time.Second, "alice in "+profile+" by "+actor, func() bool {
			st := status()
			return st["profile"] == profile && st["source"] == source && st["actor"] == actor && st["in_sync"] == true
		})
	}

	// *76 from her desk phone: into dnd, and back to lunch.
	id, _ := f.dial("*76", "1001")
	o := f.outcome(id, 15*time.Second)
	if o.Result != featurecode.ResultSwitched || o.Profile != "dnd" || o.Actor != "*76 on phone PJSIP/1001" {
		t.Fatalf("*76: %s to %q by %q (%v)", o.Result, o.Profile, o.Actor, o.Err)
	}
	waitState("dnd", "feature_code", "*76 on phone PJSIP/1001")
	if !dndOn() {
		t.Fatal("DND/1001 and Custom:DND1001 not on after *76")
	}
	id, _ = f.dial("*76", "1001")
	if o := f.outcome(id, 15*time.Second); o.Result != featurecode.ResultSwitched || o.Profile != "lunch" {
		t.Fatalf("*76 again: %s to %q (%v)", o.Result, o.Profile, o.Err)
	}
	waitState("lunch", "feature_code", "*76 on phone PJSIP/1001")
	if !dndOff() || !pausedFor(p.member("support", iface), "Lunch") {
		t.Fatalf("after *76 again: DND off %v, support %+v", dndOff(), p.member("support", iface))
	}

	// The DND key as *78 and *79 write it: the astdb key, from another AMI login.
	if err := p.c.DBPut(p.ctx(), "DND", "1001", "YES"); err != nil {
		t.Fatal(err)
	}
	waitState("dnd", "phone", "DND key on (astdb DND/1001 = YES)")
	eventually(t, 5*time.Second, "the DND lamp on", dndOn)
	if err := p.c.DBDel(p.ctx(), "DND", "1001"); err != nil {
		t.Fatal(err)
	}
	waitState("lunch", "phone", "DND key off (astdb DND/1001 not set)")
	eventually(t, 5*time.Second, "the DND lamp off", dndOff)

	// A BLF key toggling the lamp: DeviceStateChange makes presenced look at once.
	if err := p.c.Setvar(p.ctx(), "", "DEVICE_STATE(Custom:DND1001)", "BUSY"); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 5*time.Second, "dnd after the lamp", func() bool {
		st := status()
		return st["profile"] == "dnd" && st["actor"] == "DND key on (lamp Custom:DND1001 BUSY)"
	})
	t.Logf("switched %v after the lamp", took.Round(time.Millisecond))
	eventually(t, 5*time.Second, "DND/1001 set", dndOn)
	if err := p.c.Setvar(p.ctx(), "", "DEVICE_STATE(Custom:DND1001)", "NOT_INUSE"); err != nil {
		t.Fatal(err)
	}
	waitState("lunch", "phone", "DND key off (lamp Custom:DND1001 NOT_INUSE)")
	eventually(t, 5*time.Second, "DND/1001 deleted", func() bool { _, ok := p.db("DND", "1001"); return !ok })

	entries := d.journalEntries(t, "alice", 20)
	phone := 0
	for _, e := range entries {
		if e["kind"] == "switch" && e["source"] == "phone" {
			phone++
		}
	}
	if phone != 4 {
		t.Errorf("journal: %d switches with source phone, want 4: %v", phone, entries)
	}
	d.waitMetric(t, `presenced_dnd_key_switches_total{result="switched"}`, "4", equal(4))
	if v := d.metric(t, `presenced_dnd_key_changes_total{direction="on"}`); v != 2 {
		t.Errorf("presenced_dnd_key_changes_total{on} = %v, want 2", v)
	}

	// A fifth change within the hour is not followed: DND goes back as lunch says, and why is
	// journaled.
	if err := p.c.DBPut(p.ctx(), "DND", "1001", "YES"); err != nil {
		t.Fatal(err)
	}
	d.waitMetric(t, `presenced_dnd_key_switches_total{result="refused"}`, "1", equal(1))
	eventually(t, 5*time.Second, "DND/1001 put back", func() bool { _, ok := p.db("DND", "1001"); return !ok })
	if st := status(); st["profile"] != "lunch" {
		t.Fatalf("profile %v after the refused key, want lunch", st["profile"])
	}
	found := false
	for _, e := range d.journalEntries(t, "alice", 5) {
		outcomes, _ := e["outcomes"].([]any)
		for _, o := range outcomes {
			if m, ok := o.(map[string]any); ok && strings.Contains(toJSON(m["note"]), "switched alice 4 times within 1h0m0s: not followed until") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no journal entry says why the DND key was not followed: %v", d.journalEntries(t, "alice", 5))
	}
}

// deviceState is the state of a device as DeviceStateList lists it ("" when not listed).
func deviceState(t *testing.T, p *pbx, device string) string {
	t.Helper()
	list, err := p.c.DeviceStateList(p.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if strings.EqualFold(d.Device, device) {
			return d.State
		}
	}
	return ""
}
