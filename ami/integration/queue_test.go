package integration

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/presenced/presenced/ami"
)

// memberIface returns a unique queue member interface.
func memberIface() string {
	return "Local/9" + uniqDigits(7) + "@presenced-queue-member/n"
}

func findMember(t *testing.T, c *ami.Client, queue, iface string) (ami.QueueMember, bool) {
	t.Helper()
	st, err := c.QueueStatus(testCtx(t), queue, iface)
	if err != nil {
		t.Fatalf("QueueStatus(%s, %s): %v", queue, iface, err)
	}
	for _, m := range st.Members {
		if m.Queue == queue && strings.EqualFold(m.Location, iface) {
			return m, true
		}
	}
	return ami.QueueMember{}, false
}

func TestQueueMemberLifecycle(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	sub := c.Subscribe(1000)
	iface := memberIface()
	name := uniq("Member ")
	reason := "lunch: 50% done, back soon"
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.QueueRemove(ctx, iface, "support")
		_ = c.QueueRemove(ctx, iface, "sales")
	})

	err := c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface, MemberName: name,
		StateInterface: "hint:1003@hints", Penalty: 2, Paused: true, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, "QueueMemberAdded", func(m *ami.Message) bool {
		e, ok := parseQueueMemberEvent(m)
		return ok && e.Event == "QueueMemberAdded" && e.Interface == iface
	})
	added, _ := parseQueueMemberEvent(ev)
	if added.MemberName != name || added.Queue != "support" || added.Penalty != 2 || !added.Paused ||
		added.PausedReason != reason || added.Membership != "dynamic" || added.StateInterface != "hint:1003@hints" {
		t.Errorf("QueueMemberAdded %+v", added)
	}

	m, ok := findMember(t, c, "support", iface)
	if !ok {
		t.Fatalf("member %s not in QueueStatus", iface)
	}
	if m.Name != name || m.StateInterface != "hint:1003@hints" || m.Membership != "dynamic" || m.Penalty != 2 ||
		!m.Paused || m.PausedReason != reason || m.InCall || m.LoginTime.IsZero() || m.LastPause.IsZero() {
		t.Errorf("QueueMember %+v", m)
	}
	// The same member by MemberName.
	if st, err := c.QueueStatus(ctx, "support", name); err != nil || len(st.Members) != 1 {
		t.Errorf("QueueStatus by member name: %+v, %v", st, err)
	}

	// Asterisk's errors, reported verbatim.
	err = c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface})
	wantResponseError(t, "duplicate QueueAdd", err, "Unable to add interface: Already there")
	err = c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: strings.ToLower(iface)})
	wantResponseError(t, "duplicate QueueAdd, other case", err, "Unable to add interface: Already there")
	err = c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: uniq("noqueue"), Interface: iface})
	wantResponseError(t, "QueueAdd to unknown queue", err, "Unable to add interface to queue: No such queue")
	var re *ami.ResponseError
	if !errors.As(err, &re) || re.Action != "QueueAdd" || !strings.Contains(err.Error(), "queue add "+iface) {
		t.Errorf("error shape: %v", err)
	}

	// Unpause, penalty 0 (must be sent, not omitted).
	if err := c.QueuePause(ctx, iface, "support", false, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.QueuePenalty(ctx, iface, "support", 0); err != nil {
		t.Fatal(err)
	}
	m, _ = findMember(t, c, "support", iface)
	if m.Paused || m.Penalty != 0 {
		t.Errorf("after unpause and penalty 0: paused=%v penalty=%d", m.Paused, m.Penalty)
	}
	err = c.QueuePause(ctx, memberIface(), "support", true, "")
	wantResponseError(t, "QueuePause of non-member", err, "Interface not found")
	err = c.QueuePenalty(ctx, memberIface(), "support", 1)
	wantResponseError(t, "QueuePenalty of non-member", err, "Invalid interface, queuename or penalty")

	// Pause in every queue at once.
	if err := c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "sales", Interface: iface}); err != nil {
		t.Fatal(err)
	}
	if err := c.QueuePause(ctx, iface, "", true, "all queues"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"support", "sales"} {
		m, ok := findMember(t, c, q, iface)
		if !ok || !m.Paused || m.PausedReason != "all queues" {
			t.Errorf("%s after pause of all queues: %+v", q, m)
		}
	}
	// Pausing a paused member succeeds.
	if err := c.QueuePause(ctx, iface, "sales", true, "again"); err != nil {
		t.Errorf("re-pause: %v", err)
	}

	if err := c.QueueRemove(ctx, iface, "support"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, "QueueMemberRemoved", func(m *ami.Message) bool {
		e, ok := parseQueueMemberEvent(m)
		return ok && e.Event == "QueueMemberRemoved" && e.Interface == iface && e.Queue == "support"
	})
	err = c.QueueRemove(ctx, iface, "support")
	wantResponseError(t, "QueueRemove of non-member", err, "Unable to remove interface: Not there")
	err = c.QueueRemove(ctx, iface, uniq("noqueue"))
	wantResponseError(t, "QueueRemove from unknown queue", err, "Unable to remove interface from queue: No such queue")
	err = c.QueueRemove(ctx, "PJSIP/1002", "sales")
	wantResponseError(t, "QueueRemove of static member", err, "Member not dynamic")
	if _, ok := findMember(t, c, "support", iface); ok {
		t.Errorf("member still in support after QueueRemove")
	}
}

func TestQueueStatusAllQueuesAndSummary(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	st, err := c.QueueStatus(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]ami.QueueParams{}
	for _, p := range st.Params {
		params[p.Queue] = p
	}
	if params["support"].Strategy != "ringall" || params["sales"].Strategy != "rrmemory" {
		t.Errorf("QueueParams %+v", st.Params)
	}
	var bob *ami.QueueMember
	for i, m := range st.Members {
		if m.Queue == "sales" && m.Location == "PJSIP/1002" {
			bob = &st.Members[i]
		}
	}
	if bob == nil || bob.Name != "Bob" || bob.Membership != "static" || bob.Status != ami.DeviceUnavailable || bob.Paused {
		t.Errorf("static member of sales: %+v", bob)
	}
	if st, err := c.QueueStatus(ctx, uniq("noqueue"), ""); err != nil || len(st.Params)+len(st.Members) != 0 {
		t.Errorf("QueueStatus of unknown queue: %+v, %v", st, err)
	}

	sum, err := c.QueueSummary(ctx, "sales")
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 1 || sum[0].Queue != "sales" || sum[0].LoggedIn != 0 {
		t.Errorf("QueueSummary(sales) = %+v (Bob's phone is not registered: not logged in)", sum)
	}

	// A member following a custom device that is NOT_INUSE is logged in
	// and available.
	dev := "Custom:" + uniq("pdq")
	if err := c.Setvar(ctx, "", "DEVICE_STATE("+dev+")", "NOT_INUSE"); err != nil {
		t.Fatal(err)
	}
	iface := memberIface()
	t.Cleanup(func() { _ = c.QueueRemove(context.Background(), iface, "support") })
	before, err := c.QueueSummary(ctx, "support")
	if err != nil || len(before) != 1 {
		t.Fatalf("QueueSummary(support) = %+v, %v", before, err)
	}
	if err := c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface, StateInterface: dev}); err != nil {
		t.Fatal(err)
	}
	if m, _ := findMember(t, c, "support", iface); m.Status != ami.DeviceNotInUse {
		t.Errorf("member status %v, want NOT_INUSE", m.Status)
	}
	after, err := c.QueueSummary(ctx, "support")
	if err != nil || len(after) != 1 {
		t.Fatalf("QueueSummary(support) = %+v, %v", after, err)
	}
	if after[0].LoggedIn != before[0].LoggedIn+1 || after[0].Available != before[0].Available+1 {
		t.Errorf("summary before %+v, after %+v", before[0], after[0])
	}
	all, err := c.QueueSummary(ctx, "")
	if err != nil || len(all) < 2 {
		t.Errorf("QueueSummary(all) = %+v, %v", all, err)
	}
}

func TestQueueEntry(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	id1, id2 := uniq("pdq1-"), uniq("pdq2-")
	// The ;2 half dials 7001 in context queues: Queue(support), where it
	// waits (joinempty = yes).
	err := c.Originate(ctx, ami.OriginateSpec{Channel: "Local/7001@queues", Application: "Wait", Data: "20",
		CallerID: `"PD Caller" <1998>`, Async: true, ChannelID: id1, OtherChannelID: id2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Hangup(context.Background(), id1, 0) })
	var entry *ami.QueueEntry
	waitFor(t, "caller in queue support", func() bool {
		st, err := c.QueueStatus(ctx, "support", "")
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range st.Entries {
			if e.Uniqueid == id2 {
				entry = &st.Entries[i]
			}
		}
		return entry != nil
	})
	if entry.Queue != "support" || entry.Position < 1 || entry.CallerIDNum != "1998" || entry.CallerIDName != "PD Caller" ||
		entry.Channel == "" || entry.Wait < 0 {
		t.Errorf("QueueEntry %+v", entry)
	}
	sum, err := c.QueueSummary(ctx, "support")
	if err != nil || len(sum) != 1 || sum[0].Callers < 1 {
		t.Errorf("QueueSummary with a caller waiting = %+v, %v", sum, err)
	}
}

// queueMemberEvent is the body shared by the QueueMemberAdded, QueueMemberRemoved,
// QueueMemberPause, QueueMemberPenalty, QueueMemberRinginuse and QueueMemberStatus events
// (class agent), what the tests look at. Unlike QueueStatus's QueueMember items they name the
// member MemberName and Interface.
type queueMemberEvent struct {
	Event, Queue, MemberName, Interface, StateInterface string
	Membership                                          string // dynamic, realtime or static
	Penalty                                             int
	Paused                                              bool
	PausedReason                                        string
}

// parseQueueMemberEvent reads a QueueMember* event; ok is false for other events.
func parseQueueMemberEvent(m *ami.Message) (ev queueMemberEvent, ok bool) {
	name := m.Event()
	if !slices.ContainsFunc([]string{"QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause",
		"QueueMemberPenalty", "QueueMemberRinginuse", "QueueMemberStatus"}, func(e string) bool { return strings.EqualFold(e, name) }) {
		return queueMemberEvent{}, false
	}
	penalty, _ := strconv.Atoi(strings.TrimSpace(m.Get("Penalty")))
	paused := slices.Contains([]string{"yes", "true", "y", "t", "1", "on"}, strings.ToLower(strings.TrimSpace(m.Get("Paused"))))
	return queueMemberEvent{Event: name, Queue: m.Get("Queue"), MemberName: m.Get("MemberName"),
		Interface: m.Get("Interface"), StateInterface: m.Get("StateInterface"), Membership: m.Get("Membership"),
		Penalty: penalty, Paused: paused, PausedReason: m.Get("PausedReason")}, true
}
