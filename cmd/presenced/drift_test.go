package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

// The drift tests of issue 5: hand changes on the lab Asterisk under each drift policy,
// changes found only by the periodic check, reloads, a restart that loses the queue members, and
// a user on a call. Each test has its own user and extension (26xx), so that what one leaves on
// the PBX does not matter to another.

// driftUser is the one user of a drift test, in the queues support and sales.
type driftUser struct {
	id, ext string
	device  string // dial string of the user's desk device; PJSIP/<ext> when empty
}

func (u driftUser) token() string { return testToken(u.id) }
func (u driftUser) iface() string { return "Local/" + u.ext + "@presenced-queue-member/n" }

// driftQueues are the queues every drift user is in.
var driftQueues = []string{"support", "sales"}

// startDriftDaemon runs presenced for u alone (testdata/config/drift.yaml), with reconcile (the
// YAML value of the reconcile key, e.g. "{policy: {queue_pause: report}}"; empty for the
// defaults), and returns it with an admin's AMI connection to the lab Asterisk. The daemon
// reconnects quickly (as labConfig's). tweaks change the loaded configuration, for values below
// the minimums loadConfig enforces. When the test ends the daemon stops and u's queue members
// are removed.
func startDriftDaemon(t *testing.T, u driftUser, reconcile string, tweaks ...func(*Config)) (*daemonUnderTest, *pbx) {
	t.Helper()
	if u.device == "" {
		u.device = "PJSIP/" + u.ext
	}
	cfg := profileConfig(t, fixture(t, "config/drift.yaml", map[string]string{
		"ID": u.id, "Ext": u.ext, "Device": u.device, "Reconcile": reconcile,
	}))
	cfg.Asterisk.AMI.PingInterval = time.Second
	cfg.Asterisk.AMI.BackoffMax = 500 * time.Millisecond
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	forgetUsers(t, u.id)
	p := &pbx{t: t, c: newProbe(t).c}
	d := startDaemon(t, cfg)
	t.Cleanup(func() {
		d.stop(t) // first, or it would put the members back
		if !p.c.Status().LoggedIn {
			return // best effort: a restart may have cut it
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, q := range driftQueues {
			_ = p.c.QueueRemove(ctx, u.iface(), q)
		}
	})
	d.waitReady(t, 15*time.Second)
	return d, p
}

// eventually polls cond until it holds and returns how long that took; after within it fails
// the test, naming what it waited for.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitMetric polls the sample until ok holds for its value (want says what ok wants); after 5 s
// it fails the test with the last value. A repair's counters move after its changes are on the
// PBX, so a test that saw the change waits for them.
func (d *daemonUnderTest) waitMetric(t *testing.T, name, want string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for v := d.metric(t, name); !ok(v); v = d.metric(t, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %s", name, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equal(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func above(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

// pausedFor reports whether the member is in the queue, paused with that reason, or unpaused
// when reason is "".
func pausedFor(m *ami.QueueMember, reason string) bool {
	if m == nil {
		return false
	}
	if reason == "" {
		return !m.Paused
	}
	return m.Paused && m.PausedReason == reason
}

// inQueues reports whether u is in every drift queue, paused for reason ("" unpaused).
func (p *pbx) inQueues(u driftUser, reason string) bool {
	p.t.Helper()
	for _, q := range driftQueues {
		if !pausedFor(p.member(q, u.iface()), reason) {
			return false
		}
	}
	return true
}

// driftStatus is the part of GET /api/v1/users/{user} the drift tests look at.
type driftStatus struct {
	Profile  string `json:"profile"`
	InSync   bool   `json:"in_sync"`
	OnCall   string `json:"on_call"`
	Warnings []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"warnings"`
	Differences []struct {
		Kind   string `json:"kind"`
		What   string `json:"what"`
		Policy string `json:"policy"`
	} `json:"differences"`
	Pending []struct {
		Kind  string `json:"kind"`
		Queue string `json:"queue"`
	} `json:"pending"`
	Adopted *struct {
		Queues map[string]*struct {
			Paused bool `json:"paused"`
		} `json:"queues"`
	} `json:"adopted"`
	raw string
}

// status is u's status as u reads it.
func (d *daemonUnderTest) status(t *testing.T, u driftUser) driftStatus {
	t.Helper()
	code, body := d.call(t, http.MethodGet, "/api/v1/users/"+u.id, u.token(), nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u.id, code, body)
	}
	st := driftStatus{raw: toJSON(body)}
	if err := json.Unmarshal([]byte(st.raw), &st); err != nil {
		t.Fatalf("GET %s: %v", u.id, err)
	}
	return st
}

// warning returns the message of the warning with that code, if the status has one.
func (s driftStatus) warning(code string) (string, bool) {
	for _, w := range s.Warnings {
		if w.Code == code {
			return w.Message, true
		}
	}
	return "", false
}

// pauseForLunchThenUnpauseByHand switches u to available and then lunch (paused in both
// queues), and then unpauses u in support from the
// admin's AMI connection.
func pauseForLunchThenUnpauseByHand(t *testing.T, d *daemonUnderTest, p *pbx, u driftUser) {
	t.Helper()
	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "lunch", "")
	if err := p.c.QueuePause(p.ctx(), u.iface(), "support", false, ""); err != nil {
		t.Fatal(err)
	}
}

// TestReportPolicyWarnsAndReconcileFixes: with reconcile.policy.queue_pause report, a member
// unpaused by hand stays unpaused; the user's status says their device status does not match
// their profile, naming the queue; the user counts as out of sync; and the user's one call to
// POST .../reconcile puts the pause back and clears the warning.
func TestReportPolicyWarnsAndReconcileFixes(t *testing.T) {
	u := driftUser{id: "drift-report", ext: "2601"}
	d, p := startDriftDaemon(t, u, "{policy: {queue_pause: report}}")
	pauseForLunchThenUnpauseByHand(t, d, p, u)

	// The hand change's event made presenced check the user, and it reported instead of
	// repairing.
	d.waitMetric(t, `presenced_drift_reported_total{kind="queue_pause"}`, "1", equal(1))
	if m := p.member("support", u.iface()); !pausedFor(m, "") {
		t.Fatalf("support member after the check: %+v, want left unpaused (policy report)", m)
	}
	if m := p.member("sales", u.iface()); !pausedFor(m, "Lunch") {
		t.Fatalf("sales member %+v, want still paused (Lunch)", m)
	}
	if v := d.metric(t, `presenced_drift_repaired_total{kind="queue_pause"}`); v != 0 {
		t.Errorf("presenced_drift_repaired_total{queue_pause} = %v under the report policy", v)
	}
	if v := d.metric(t, "presenced_users_out_of_sync"); v != 1 {
		t.Errorf("presenced_users_out_of_sync = %v, want 1", v)
	}
	st := d.status(t, u)
	msg, ok := st.warning("status_mismatch")
	if !ok || !strings.HasPrefix(msg, "Your device status does not match your profile: ") ||
		!strings.Contains(msg, "queue support") || strings.Contains(msg, "queue sales") {
		t.Fatalf("status_mismatch warning %q (present %v), want one naming queue support: %s", msg, ok, st.raw)
	}
	if len(st.Differences) != 1 || st.Differences[0].Kind != "queue_pause" || st.Differences[0].Policy != "report" {
		t.Errorf("differences: %s", st.raw)
	}

	code, res := d.call(t, http.MethodPost, "/api/v1/users/"+u.id+"/reconcile", u.token(), nil)
	if code != http.StatusOK || res["in_sync"] != true {
		t.Fatalf("POST reconcile: %d %v", code, res)
	}
	if m := p.member("support", u.iface()); !pausedFor(m, "Lunch") {
		t.Fatalf("support member after the reconcile: %+v, want paused (Lunch)", m)
	}
	st = d.status(t, u)
	if _, ok := st.warning("status_mismatch"); ok || !st.InSync || len(st.Differences) != 0 {
		t.Errorf("status after the reconcile: %s", st.raw)
	}
	if v := d.metric(t, "presenced_users_out_of_sync"); v != 0 {
		t.Errorf("presenced_users_out_of_sync = %v after the reconcile", v)
	}
	if v := d.metric(t, `presenced_drift_repaired_total{kind="queue_pause"}`); v != 1 {
		t.Errorf("presenced_drift_repaired_total{queue_pause} = %v after the reconcile, want 1", v)
	}
}

// TestAdoptPolicyKeepsHandChangeUntilNextSwitch: with reconcile.policy.queue_pause adopt, a
// member unpaused by hand becomes the user's desired state: the PBX stays unpaused, the status
// shows what was adopted and no warning; the user's next switch overrides it.
func TestAdoptPolicyKeepsHandChangeUntilNextSwitch(t *testing.T) {
	u := driftUser{id: "drift-adopt", ext: "2602"}
	d, p := startDriftDaemon(t, u, "{policy: {queue_pause: adopt}}")
	pauseForLunchThenUnpauseByHand(t, d, p, u)

	d.waitMetric(t, `presenced_drift_adopted_total{kind="queue_pause"}`, "1", equal(1))
	if m := p.member("support", u.iface()); !pausedFor(m, "") {
		t.Fatalf("support member after adopting: %+v, want unpaused", m)
	}
	st := d.status(t, u)
	if st.Adopted == nil || st.Adopted.Queues["support"] == nil || st.Adopted.Queues["support"].Paused {
		t.Fatalf("status does not show the adopted unpause: %s", st.raw)
	}
	if _, ok := st.warning("status_mismatch"); ok || !st.InSync || len(st.Differences) != 0 {
		t.Fatalf("status after adopting: %s, want in sync without a warning", st.raw)
	}
	if v := d.metric(t, "presenced_users_out_of_sync"); v != 0 {
		t.Errorf("presenced_users_out_of_sync = %v after adopting", v)
	}

	d.switchTo(t, u.id, "lunch", "again") // the next switch: the profile says paused again
	if !p.inQueues(u, "Lunch") {
		t.Fatalf("after the next switch: support %+v, sales %+v, want both paused (Lunch)",
			p.member("support", u.iface()), p.member("sales", u.iface()))
	}
	if st := d.status(t, u); st.Adopted != nil || !st.InSync {
		t.Errorf("status after the next switch: %s, want nothing adopted", st.raw)
	}
}

// TestHandQueueRemoveIsRepaired: an admin removes the user from a queue by hand; the
// QueueMemberRemoved event makes presenced add them back, paused as the profile says, within
// 2 s (enforce, the default).
func TestHandQueueRemoveIsRepaired(t *testing.T) {
	u := driftUser{id: "drift-remove", ext: "2603"}
	d, p := startDriftDaemon(t, u, "")
	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "lunch", "")
	if err := p.c.QueueRemove(p.ctx(), u.iface(), "support"); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 2*time.Second, "support member back, paused (Lunch)", func() bool {
		return pausedFor(p.member("support", u.iface()), "Lunch")
	})
	t.Logf("member back %v after the hand QueueRemove", took.Round(time.Millisecond))
	d.waitMetric(t, `presenced_drift_repaired_total{kind="queue_membership"}`, "1", equal(1))
	if !p.inQueues(u, "Lunch") {
		t.Errorf("after the repair: sales %+v", p.member("sales", u.iface()))
	}
}

// TestDeletedDNDKeyFoundByPeriodicCheck: astdb changes have no AMI event; a DND key deleted
// by hand is found by the periodic check (reconcile.interval 1s here, below the 10s a
// configuration may set) and put back.
func TestDeletedDNDKeyFoundByPeriodicCheck(t *testing.T) {
	u := driftUser{id: "drift-dnd", ext: "2604"}
	d, p := startDriftDaemon(t, u, "", func(c *Config) { c.Reconcile.Interval = time.Second })
	d.switchTo(t, u.id, "dnd", "")
	if v, ok := p.db("DND", u.ext); !ok || v != "YES" {
		t.Fatalf("DND/%s = %q (%v) after switching to dnd", u.ext, v, ok)
	}
	if err := p.c.DBDel(p.ctx(), "DND", u.ext); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 5*time.Second, "DND/"+u.ext+" back", func() bool {
		v, ok := p.db("DND", u.ext)
		return ok && v == "YES"
	})
	t.Logf("DND key back %v after the hand DBDel (reconcile.interval 1s)", took.Round(time.Millisecond))
	d.waitMetric(t, `presenced_drift_repaired_total{kind="astdb"}`, "≥ 1", above(0))
	d.waitMetric(t, "presenced_reconcile_last_users", "1", equal(1))
}

// TestReloadTriggersFullReconcile: with the periodic check an hour away, a DND key deleted by
// hand comes back only because a module reload (app_queue, or the dialplan's pbx_config) makes
// presenced check every user; app_queue's reload keeps the dynamic queue members.
func TestReloadTriggersFullReconcile(t *testing.T) {
	u := driftUser{id: "drift-reload", ext: "2605"}
	d, p := startDriftDaemon(t, u, "{interval: 1h}")
	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "dnd", "")
	for _, c := range []struct{ name, cli string }{
		{"app_queue", "module reload app_queue.so"},
		{"pbx_config", "module reload pbx_config.so"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &pbx{t: t, c: p.c}
			before := d.metric(t, "presenced_reconcile_last_completed_timestamp_seconds")
			membersAdded := d.metric(t, `presenced_drift_repaired_total{kind="queue_membership"}`)
			if err := p.c.DBDel(p.ctx(), "DND", u.ext); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if out, err := env.CLI(ctx, c.cli); err != nil || !strings.Contains(out, "reloaded successfully") {
				t.Fatalf("%s: %q %v", c.cli, out, err)
			}
			took := eventually(t, 5*time.Second, "DND/"+u.ext+" back after "+c.cli, func() bool {
				v, ok := p.db("DND", u.ext)
				return ok && v == "YES"
			})
			t.Logf("DND key back %v after %s", took.Round(time.Millisecond), c.cli)
			// A full reconcile completed after the reload.
			d.waitMetric(t, "presenced_reconcile_last_completed_timestamp_seconds", fmt.Sprint("after ", before), above(before))
			if !p.inQueues(u, "") {
				t.Errorf("after %s: support %+v, sales %+v, want both unpaused members", c.cli,
					p.member("support", u.iface()), p.member("sales", u.iface()))
			}
			if v := d.metric(t, `presenced_drift_repaired_total{kind="queue_membership"}`); v != membersAdded {
				t.Errorf("presenced_drift_repaired_total{queue_membership} went from %v to %v: the reload lost members", membersAdded, v)
			}
		})
	}
}

// TestRestartWithoutPersistentMembersRestoresQueues: with persistentmembers = no, "core
// restart now" loses every dynamic queue member; once Asterisk is fully booted presenced puts
// the user back in every queue, paused with the reason, by itself.
func TestRestartWithoutPersistentMembersRestoresQueues(t *testing.T) {
	u := driftUser{id: "drift-restart", ext: "2606"}
	d, p := startDriftDaemon(t, u, "")
	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "lunch", "")
	if !p.inQueues(u, "Lunch") {
		t.Fatalf("before the restart: support %+v, sales %+v", p.member("support", u.iface()), p.member("sales", u.iface()))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.SetPersistentMembers(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The lab ships with yes; app_queue's reload reads it again, so the running Asterisk
		// persists members again too (and Asterisk is up for the next test). The daemon stops
		// first: the reload is not part of the test.
		d.stop(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.SetPersistentMembers(ctx, true); err != nil {
			t.Errorf("persistentmembers back to yes: %v", err)
		}
		if err := env.WaitFullyBooted(ctx); err != nil {
			t.Error(err)
		}
		if _, err := env.CLI(ctx, "module reload app_queue.so"); err != nil {
			t.Errorf("module reload app_queue.so: %v", err)
		}
	})
	// An admin's connection that reconnects within 200 ms: when it sees FullyBooted again is
	// when Asterisk was back.
	watch := env.AMI(t, true, nil)
	resyncs := d.metric(t, "presenced_asterisk_resyncs_total")
	restart := time.Now()
	if _, err := env.CLI(ctx, "core restart now"); err != nil && !strings.Contains(err.Error(), "exit code") {
		t.Fatalf("core restart now: %v", err)
	}
	if err := env.WaitFullyBooted(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the admin's connection back", func() bool {
		s := watch.Status()
		return s.FullyBooted && s.Since.After(restart)
	})
	booted := watch.Status().Since
	p.c = watch
	eventually(t, 30*time.Second, "members back in support and sales, paused (Lunch)", func() bool {
		return p.inQueues(u, "Lunch")
	})
	t.Logf("every member and pause back %v after Asterisk reported FullyBooted (%v after core restart now)",
		time.Since(booted).Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))
	if v := d.metric(t, "presenced_asterisk_resyncs_total"); v <= resyncs {
		t.Errorf("presenced_asterisk_resyncs_total = %v, was %v before the restart", v, resyncs)
	}
	// presenced put them back, not Asterisk: the restart had lost them.
	d.waitMetric(t, `presenced_drift_repaired_total{kind="queue_membership"}`,
		fmt.Sprint(len(driftQueues), " (did persistentmembers = no take effect?)"), equal(float64(len(driftQueues))))
}

// TestQueueChangesWaitForTheCallToEnd: a user on a call is not yanked. While their desk device
// (a lab device, Local/<n>@lab-sink, called for real) is in a call, a member unpaused by hand
// is not repaired: the status shows the change pending and the device on the call. When the
// call ends the pause is back within 2 s. The user's own switch during a call applies at once.
func TestQueueChangesWaitForTheCallToEnd(t *testing.T) {
	const sinkID = "9626070"
	u := driftUser{id: "drift-call", ext: "2607", device: "Local/" + sinkID + "@lab-sink"}
	d, p := startDriftDaemon(t, u, "")
	if err := p.c.DBPut(p.ctx(), "LABSINK", sinkID, "answer"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.c.Hangup(ctx, "/^Local/"+sinkID+"@lab-sink-/", 16)
		_ = p.c.DBDel(ctx, "LABSINK", sinkID)
	})
	call := func() {
		t.Helper()
		if err := p.c.Originate(p.ctx(), ami.OriginateSpec{Channel: u.device, Application: "Wait", Data: "120", Async: true}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the daemon seeing the call on "+u.device+
			" (DeviceStateChange events of the users' devices must reach its AMI session)", func() bool {
			return d.status(t, u).OnCall == u.device
		})
	}
	hangUp := func() {
		t.Helper()
		if err := p.c.Hangup(p.ctx(), "/^Local/"+sinkID+"@lab-sink-/", 16); err != nil {
			t.Fatal(err)
		}
	}

	d.switchTo(t, u.id, "available", "")
	d.switchTo(t, u.id, "lunch", "")
	call()
	if err := p.c.QueuePause(p.ctx(), u.iface(), "support", false, ""); err != nil {
		t.Fatal(err)
	}
	d.waitMetric(t, `presenced_drift_deferred_total{kind="queue_pause"}`, "1", equal(1))
	if m := p.member("support", u.iface()); !pausedFor(m, "") {
		t.Fatalf("support member during the call: %+v, want left unpaused until the call ends", m)
	}
	st := d.status(t, u)
	if len(st.Pending) != 1 || st.Pending[0].Kind != "queue_pause" || st.Pending[0].Queue != "support" || st.OnCall != u.device {
		t.Fatalf("status during the call: %s, want the support pause pending and on_call %s", st.raw, u.device)
	}

	hangUp()
	took := eventually(t, 2*time.Second, "pause back after the call", func() bool {
		return pausedFor(p.member("support", u.iface()), "Lunch")
	})
	t.Logf("pause back %v after the hangup", took.Round(time.Millisecond))
	eventually(t, time.Second, "nothing pending after the call", func() bool { return len(d.status(t, u).Pending) == 0 })
	if st := d.status(t, u); len(st.Pending) != 0 || st.OnCall != "" || !st.InSync {
		t.Errorf("status after the call: %s, want nothing pending", st.raw)
	}

	// The user's own switch is not held back by a call.
	call()
	code, res := d.call(t, http.MethodPut, "/api/v1/users/"+u.id+"/profile", u.token(), map[string]string{"profile": "available"})
	if code != http.StatusOK || res["in_sync"] != true {
		t.Fatalf("switch during the call: %d %v", code, res)
	}
	if !p.inQueues(u, "") {
		t.Fatalf("right after the switch during the call: support %+v, sales %+v, want both unpaused",
			p.member("support", u.iface()), p.member("sales", u.iface()))
	}
	if st := d.status(t, u); len(st.Pending) != 0 {
		t.Errorf("pending after the user's switch during the call: %s", st.raw)
	}
	hangUp()
}

// TestAMIReconnectRepairsWhatChangedMeanwhile: presenced's AMI sessions drop while Asterisk
// keeps running; meanwhile an admin unpauses Alice and deletes her active-profile key, which
// presenced cannot see. When the sessions come back, the full reconcile of the ready hook puts
// both back by itself.
func TestAMIReconnectRepairsWhatChangedMeanwhile(t *testing.T) {
	proxy, err := lab.NewProxy(env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", nil))
	cfg.Asterisk.AMI.Address = proxy.Addr()
	cfg.Asterisk.AMI.PingInterval, cfg.Asterisk.AMI.BackoffMax = time.Second, 500*time.Millisecond
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	p := &pbx{t: t, c: newProbe(t).c}
	const iface = "Local/1001@presenced-queue-member/n"
	d.switchTo(t, "alice", "available", "")
	d.switchTo(t, "alice", "lunch", "")
	resyncs := d.metric(t, "presenced_asterisk_resyncs_total")

	proxy.SetUp(false)
	for deadline := time.Now().Add(10 * time.Second); d.metric(t, `presenced_ami_connected{connection="main"}`) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("presenced did not notice its AMI sessions dropped")
		}
	}
	if err := p.c.QueuePause(p.ctx(), iface, "sales", false, ""); err != nil {
		t.Fatal(err)
	}
	if err := p.c.DBDel(p.ctx(), "PROFILE", "1001/active"); err != nil {
		t.Fatal(err)
	}
	proxy.SetUp(true)
	deadline := time.Now().Add(15 * time.Second)
	for {
		sal := p.member("sales", iface)
		active, _ := p.db("PROFILE", "1001/active")
		if sal != nil && sal.Paused && sal.PausedReason == "Lunch" && active == "lunch" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired after the AMI reconnect: sales %+v, active %q", sal, active)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := d.metric(t, "presenced_asterisk_resyncs_total"); got <= resyncs {
		t.Fatalf("presenced_asterisk_resyncs_total = %v, want more than %v: the repair was not the reconnect's", got, resyncs)
	}
}
