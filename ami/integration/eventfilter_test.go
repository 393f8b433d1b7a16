package integration

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

// daemonEvents are the events presenced's AMI sessions need, and so exactly the events the
// shipped manager.conf section (deploy/asterisk/manager_presenced.conf) lets through.
var daemonEvents = []string{
	"FullyBooted",         // the client waits for it after every connect (OnReady)
	"Shutdown",            // the client stops sending; the connection is about to end
	"Reload",              // a reload may have changed queues or the dialplan
	"QueueMemberAdded",    // drift: queue members changed by hand (cmd/presenced watchPBX)
	"QueueMemberRemoved",  //
	"QueueMemberPause",    //
	"QueueMemberPenalty",  //
	"QueueMemberStatus",   // a member's device status and calls
	"AgentRingNoAnswer",   // a queue call a member did not answer (package missedcalls)
	"AgentConnect",        // a queue call a member answered
	"DeviceStateChange",   // lamps (Custom:) and the users' phones (calls defer queue repairs)
	"PresenceStateChange", // presence (CustomPresence:)
	"ExtensionStatus",     // hints
}

// managerUser is what a manager.conf user section grants.
type managerUser struct {
	read, write []string // classes, sorted
	filters     []string // "eventfilter(...) = value", spaces around the key and value trimmed, sorted
}

// parseManagerUser reads the section [user] of the manager.conf at path.
func parseManagerUser(t *testing.T, path, user string) managerUser {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		u       managerUser
		section string
		found   bool
	)
	classes := func(v string) []string {
		var out []string
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				out = append(out, c)
			}
		}
		slices.Sort(out)
		return out
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), ";")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			name, _, ok := strings.Cut(line[1:], "]")
			if !ok {
				t.Fatalf("%s:%d: bad section header %q", path, n, line)
			}
			section = name
			found = found || section == user
			continue
		}
		if section != user {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not key = value: %q", path, n, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case key == "read":
			u.read = classes(value)
		case key == "write":
			u.write = classes(value)
		case strings.HasPrefix(key, "eventfilter"):
			u.filters = append(u.filters, key+" = "+value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s: no section [%s]", path, user)
	}
	slices.Sort(u.filters)
	return u
}

var filterName = regexp.MustCompile(`^eventfilter\(action\(include\),name\(([A-Za-z]+)\)[^=]*\) = `)

// TestShippedManagerConfMatchesLab keeps the shipped AMI user and the lab's in step: the same
// event filters and read classes, and the shipped write classes a subset of the lab's (the lab's
// tests also send UserEvent and Originate as the daemon's user). The filters include exactly
// daemonEvents.
func TestShippedManagerConfMatchesLab(t *testing.T) {
	root := lab.RepoRoot()
	shipped := parseManagerUser(t, filepath.Join(root, "deploy", "asterisk", "manager_presenced.conf"), lab.AMIUser)
	labUser := parseManagerUser(t, filepath.Join(root, "testdata", "asterisk", "conf", "manager.conf"), lab.AMIUser)

	if !slices.Equal(shipped.filters, labUser.filters) {
		t.Errorf("event filters differ:\nshipped %q\nlab     %q", shipped.filters, labUser.filters)
	}
	if !slices.Equal(shipped.read, labUser.read) {
		t.Errorf("read classes differ: shipped %q, lab %q", shipped.read, labUser.read)
	}
	for _, c := range shipped.write {
		if !slices.Contains(labUser.write, c) {
			t.Errorf("shipped write class %q is not in the lab's %q: the lab does not test it", c, labUser.write)
		}
	}
	var names []string
	for _, f := range shipped.filters {
		m := filterName.FindStringSubmatch(f)
		if m == nil {
			t.Errorf("filter %q is not an include filter by event name", f)
			continue
		}
		names = append(names, m[1])
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(daemonEvents))
	if !slices.Equal(names, want) {
		t.Errorf("the filters include %q, want %q", names, want)
	}
}

// eventLog keeps the events of a subscription, and wakes waiters on each.
type eventLog struct {
	mu     sync.Mutex
	events []*ami.Message
	notify chan struct{}
}

func logEvents(t *testing.T, sub *ami.Subscription) *eventLog {
	l := &eventLog{notify: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range sub.Events() {
			l.mu.Lock()
			l.events = append(l.events, m)
			close(l.notify)
			l.notify = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		sub.Close()
		<-done
	})
	return l
}

// wait returns the first logged event match accepts, waiting up to 15 s for it.
func (l *eventLog) wait(t *testing.T, what string, match func(*ami.Message) bool) *ami.Message {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		l.mu.Lock()
		for _, m := range l.events {
			if match(m) {
				l.mu.Unlock()
				return m
			}
		}
		notify := l.notify
		l.mu.Unlock()
		select {
		case <-notify:
		case <-timeout:
			t.Fatalf("no %s event within 15s", what)
		}
	}
}

func (l *eventLog) all() []*ami.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func isEvent(name string, kv ...string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		if m.Event() != name || m.Synthetic() {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if m.Get(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// TestDaemonUserEventFilter: the daemon's user, logged in as the daemon does, receives the
// events it needs (queue member changes, device states of lamps and phones, presence, Reload)
// and none of the rest that the same test causes and the test user sees: UserEvent, and a
// call's Newchannel, Newexten, VarSet and Hangup.
func TestDaemonUserEventFilter(t *testing.T) {
	ctx := testCtx(t)
	daemon := newClient(t, clientOpts{}) // Events: the daemon's default, system,call,agent,user
	got := logEvents(t, daemon.Subscribe(10000))
	admin := newClient(t, clientOpts{test: true, mod: func(cfg *ami.Config) { cfg.Events = "on" }})
	seen := logEvents(t, admin.Subscribe(100000))

	// Noise a busy PBX is made of: a UserEvent, and a call through the dialplan (lab-sink
	// answers when astdb LABSINK/<dev> is "answer"; the ;1 half hangs up after Wait).
	userEvent := uniq("PDFilter")
	if err := admin.UserEvent(ctx, userEvent); err != nil {
		t.Fatal(err)
	}
	dev := "9" + uniqDigits(7)
	if err := admin.DBPut(ctx, "LABSINK", dev, "answer"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.DBDel(context.Background(), "LABSINK", dev) })
	call := uniq("pdf-")
	if err := admin.Originate(ctx, ami.OriginateSpec{Channel: "Local/" + dev + "@lab-sink", Application: "Wait",
		Data: "0.1", Async: true, ChannelID: call + "-1", OtherChannelID: call + "-2"}); err != nil {
		t.Fatal(err)
	}

	// What presenced watches.
	iface := memberIface()
	t.Cleanup(func() { _ = admin.QueueRemove(context.Background(), iface, "support") })
	if err := admin.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface}); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueuePause(ctx, iface, "support", true, "filter test"); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueuePenalty(ctx, iface, "support", 3); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueueRemove(ctx, iface, "support"); err != nil {
		t.Fatal(err)
	}
	lamp := "Custom:" + uniq("pdf")
	if err := admin.Setvar(ctx, "", "DEVICE_STATE("+lamp+")", "BUSY"); err != nil {
		t.Fatal(err)
	}
	presence := "CustomPresence:" + uniq("pdf")
	if err := admin.Setvar(ctx, "", "PRESENCE_STATE("+presence+")", "away,,filter test"); err != nil {
		t.Fatal(err)
	}
	// A Reload event without side effects: func_db cannot reload (Status 6).
	if _, err := admin.Command(ctx, "module reload func_db.so"); err != nil {
		t.Fatal(err)
	}

	// The noise happened: the test user saw it all, including the end of the call.
	for _, w := range []struct {
		what  string
		match func(*ami.Message) bool
	}{
		{"UserEvent", isEvent("UserEvent", "UserEvent", userEvent)},
		{"Newchannel", isEvent("Newchannel", "Uniqueid", call+"-2")},
		{"Newexten", isEvent("Newexten", "Uniqueid", call+"-2")},
		{"VarSet", isEvent("VarSet", "Uniqueid", call+"-2", "Variable", "MODE")},
		{"Hangup ;1", isEvent("Hangup", "Uniqueid", call+"-1")},
		{"Hangup ;2", isEvent("Hangup", "Uniqueid", call+"-2")},
		{"DeviceStateChange of the called device", isEvent("DeviceStateChange", "Device", "Local/"+dev+"@lab-sink", "State", "NOT_INUSE")},
	} {
		seen.wait(t, w.what, w.match)
	}

	// Events are queued for every session in one order: once the daemon's user has an event
	// raised after all the noise, it would have had the noise too.
	end := "Custom:" + uniq("pdfend")
	if err := admin.Setvar(ctx, "", "DEVICE_STATE("+end+")", "INUSE"); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "DeviceStateChange of the end marker", isEvent("DeviceStateChange", "Device", end))

	for _, w := range []struct {
		what  string
		match func(*ami.Message) bool
	}{
		{"QueueMemberAdded", isEvent("QueueMemberAdded", "Interface", iface)},
		{"QueueMemberPause", isEvent("QueueMemberPause", "Interface", iface, "Paused", "1")},
		{"QueueMemberPenalty", isEvent("QueueMemberPenalty", "Interface", iface, "Penalty", "3")},
		{"QueueMemberRemoved", isEvent("QueueMemberRemoved", "Interface", iface)},
		{"DeviceStateChange " + lamp, isEvent("DeviceStateChange", "Device", lamp, "State", "BUSY")},
		{"DeviceStateChange of the called device, in the call", isEvent("DeviceStateChange", "Device", "Local/"+dev+"@lab-sink", "State", "INUSE")},
		{"DeviceStateChange of the called device, after it", isEvent("DeviceStateChange", "Device", "Local/"+dev+"@lab-sink", "State", "NOT_INUSE")},
		{"PresenceStateChange " + presence, isEvent("PresenceStateChange", "Presentity", presence, "Status", "away")},
		{"Reload func_db.so", isEvent("Reload", "Module", "func_db.so")},
	} {
		got.wait(t, w.what, w.match)
	}
	counts := map[string]int{}
	for _, m := range got.all() {
		if m.Synthetic() {
			continue
		}
		counts[m.Event()]++
		if !slices.Contains(daemonEvents, m.Event()) {
			t.Errorf("the daemon's user received %s", m)
		}
	}
	t.Logf("the daemon's user received %v; the test user %d events", counts, len(seen.all()))
}
