package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
)

func unstarted(t *testing.T) *ami.Client {
	t.Helper()
	c, err := ami.New(ami.Config{Addr: "127.0.0.1:1", Username: "u", Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	client := unstarted(t)
	for _, tc := range []struct {
		name    string
		opts    Options
		wantCap int // MaxInFlight in effect
		wantErr string
	}{
		{"defaults", Options{AMI: client}, DefaultMaxInFlight, ""},
		{"everything", Options{AMI: client, MaxInFlight: 3, CoalesceWindow: -1, Registerer: prometheus.NewRegistry()}, 3, ""},
		{"no client", Options{}, 0, "queue: Options.AMI is required"},
		{"negative in flight", Options{AMI: client, MaxInFlight: -1}, 0, "queue: Options.MaxInFlight must not be negative, got -1"},
		{"negative wait", Options{AMI: client, MaxWait: -time.Second}, 0, "queue: Options.MaxWait must not be negative, got -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("New: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name() != "queue" {
				t.Errorf("Name = %q", c.Name())
			}
			if c.sem.Max() != tc.wantCap {
				t.Errorf("MaxInFlight = %d, want %d", c.sem.Max(), tc.wantCap)
			}
			if len(c.writers) != 1 || c.writers[0].slots.Max() != tc.wantCap {
				t.Errorf("write limits: %d sessions, the first %d, want 1 of %d", len(c.writers), c.writers[0].slots.Max(), tc.wantCap)
			}
			kinds := c.Kinds()
			for _, k := range []presence.OpKind{presence.OpQueueAdd, presence.OpQueueRemove, presence.OpQueuePause, presence.OpQueuePenalty} {
				if !slices.Contains(kinds, k) {
					t.Errorf("Kinds %v lack %s", kinds, k)
				}
			}
		})
	}
}

func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{AMI: unstarted(t), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{AMI: unstarted(t), Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), "queue: Options.Registerer") {
		t.Fatalf("second New on the same registry: %v", err)
	}
}

// TestApplyNotConnected: every op fails at once, naming queue and interface, when the AMI
// client has no connection.
func TestApplyNotConnected(t *testing.T) {
	c, err := New(Options{AMI: unstarted(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := &presence.QueueMember{Interface: "Local/9000@presenced-queue-member/n", Paused: true, Reason: "x"}
	ops := []presence.Op{
		{Kind: presence.OpQueueAdd, Queue: "support", Member: m},
		{Kind: presence.OpQueueRemove, Queue: "sales", Member: m},
		{Kind: presence.OpQueuePause, Queue: "support", Member: m},
		{Kind: presence.OpQueuePenalty, Queue: "support", Member: m},
		{Kind: presence.OpDBPut, Key: "A/b", Value: "c"},
		{Kind: presence.OpQueuePause, Queue: "support"},
	}
	want := []string{
		"queue add Local/9000@presenced-queue-member/n to support: ami: not connected",
		"queue remove Local/9000@presenced-queue-member/n from sales: ami: not connected",
		"queue pause Local/9000@presenced-queue-member/n in support: ami: not connected",
		"queue penalty 0 for Local/9000@presenced-queue-member/n in support: ami: not connected",
		"queue: cannot apply db_put operations",
		"queue: queue_pause op without queue or member interface",
	}
	out := c.Apply(context.Background(), &presence.User{ID: "u"}, ops)
	if len(out) != len(ops) {
		t.Fatalf("%d outcomes for %d ops", len(out), len(ops))
	}
	for i, o := range out {
		if o.Result != presence.ResultFailed || o.Error != want[i] || o.Op.Kind != ops[i].Kind {
			t.Errorf("outcome %d = %+v, want failed %q", i, o, want[i])
		}
	}
}

func TestApplyCancelled(t *testing.T) {
	c, err := New(Options{AMI: unstarted(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &presence.QueueMember{Interface: "Local/9001@presenced-queue-member/n"}
	out := c.Apply(ctx, &presence.User{ID: "u"}, []presence.Op{{Kind: presence.OpQueueAdd, Queue: "support", Member: m}})
	if len(out) != 1 || out[0].Result != presence.ResultFailed || !strings.Contains(out[0].Error, "context canceled") {
		t.Errorf("outcomes %+v", out)
	}
}

func TestPauseGroup(t *testing.T) {
	const a = "Local/9100@presenced-queue-member/n"
	m := func(iface string, paused bool, reason string) *presence.QueueMember {
		return &presence.QueueMember{Interface: iface, Paused: paused, Reason: reason}
	}
	pause := func(q string, mm *presence.QueueMember) presence.Op {
		return presence.Op{Kind: presence.OpQueuePause, Queue: q, Member: mm}
	}
	op := func(k presence.OpKind, q string, mm *presence.QueueMember) presence.Op {
		return presence.Op{Kind: k, Queue: q, Member: mm}
	}
	for _, tc := range []struct {
		name string
		ops  []presence.Op
		want []int
	}{
		{"two pauses", []presence.Op{pause("sales", m(a, true, "Lunch")), pause("support", m(a, true, "Lunch"))}, []int{0, 1}},
		{"two unpauses, reasons ignored", []presence.Op{pause("sales", m(a, false, "")), pause("support", m(a, false, "old"))}, []int{0, 1}},
		{"penalties in between", []presence.Op{pause("a", m(a, true, "L")), op(presence.OpQueuePenalty, "a", m(a, true, "L")),
			pause("b", m(strings.ToLower(a), true, "L"))}, []int{0, 2}},
		{"one pause", []presence.Op{pause("sales", m(a, true, "Lunch"))}, nil},
		{"reasons differ", []presence.Op{pause("sales", m(a, true, "Lunch")), pause("support", m(a, true, "Meeting"))}, nil},
		{"pause and unpause", []presence.Op{pause("sales", m(a, true, "Lunch")), pause("support", m(a, false, ""))}, nil},
		{"same queue twice", []presence.Op{pause("sales", m(a, true, "L")), pause("sales", m(a, true, "L"))}, nil},
		{"two interfaces", []presence.Op{pause("sales", m(a, true, "L")), pause("support", m("PJSIP/1002", true, "L"))}, nil},
		{"with an add", []presence.Op{op(presence.OpQueueAdd, "x", m(a, true, "L")), pause("sales", m(a, true, "L")), pause("support", m(a, true, "L"))}, nil},
		{"with a remove", []presence.Op{op(presence.OpQueueRemove, "x", m(a, false, "")), pause("sales", m(a, true, "L")), pause("support", m(a, true, "L"))}, nil},
		{"member missing", []presence.Op{pause("sales", m(a, true, "L")), pause("support", nil)}, nil},
		{"no ops", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iface, got := pauseGroup(tc.ops)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pauseGroup = %v, want %v", got, tc.want)
			}
			if got != nil && !strings.EqualFold(iface, a) {
				t.Errorf("interface %q", iface)
			}
		})
	}
}

// set is an interface in the queues qs, how unknown.
func set(qs ...string) inQueues {
	s := inQueues{}
	for _, q := range qs {
		s[q] = nil
	}
	return s
}

func TestMemberships(t *testing.T) {
	const a = "Local/9200@presenced-queue-member/n"
	t0 := time.Now()
	conn := t0.Add(-time.Hour)
	for _, tc := range []struct {
		name   string
		steps  func(m *memberships)
		at     time.Time
		conn   time.Time
		want   []string // sorted queues; nil with ok false
		wantOK bool
	}{
		{"no observation", func(m *memberships) {}, t0, conn, nil, false},
		{"observed", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{"local/9200@presenced-queue-member/n": set("sales", "support")})
		}, t0.Add(time.Second), conn, []string{"sales", "support"}, true},
		{"observed absent", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{})
		}, t0, conn, []string{}, true},
		{"too old", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
		}, t0.Add(time.Minute), conn, nil, false},
		{"older, while a watch follows the events", func(m *memberships) {
			m.watch(1)
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
		}, t0.Add(time.Minute), conn, []string{"sales"}, true},
		{"older, read before the watch started", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.watch(1)
		}, t0.Add(time.Minute), conn, nil, false},
		{"too old even while a watch follows the events", func(m *memberships) {
			m.watch(1)
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
		}, t0.Add(11 * time.Minute), conn, nil, false},
		{"other connection", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
		}, t0, conn.Add(time.Second), nil, false},
		{"own add and remove followed", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.added(a, "support", nil)
			m.added(a, "x", nil)
			m.removed(strings.ToUpper(a), "sales")
		}, t0, conn, []string{"support", "x"}, true},
		{"timed out action", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.forget(a)
		}, t0, conn, nil, false},
		{"change racing the observation", func(m *memberships) {
			seq := m.mark()
			m.added(a, "support", nil) // the QueueStatus may or may not have seen it
			m.install(t0, conn, seq, map[string]inQueues{key(a): set("sales")})
		}, t0, conn, nil, false},
		{"change before the observation", func(m *memberships) {
			m.forget(a)
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
		}, t0, conn, []string{"sales"}, true},
		{"interface read on its own", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.installFor(t0.Add(time.Second), conn, m.mark(), map[string]inQueues{key(a): set("support")})
		}, t0.Add(time.Second), conn, []string{"support"}, true},
		{"interface read on its own after the snapshot aged", func(m *memberships) {
			m.install(t0.Add(-time.Minute), conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.installFor(t0, conn, m.mark(), map[string]inQueues{key(a): set("support")})
		}, t0.Add(time.Second), conn, []string{"support"}, true},
		{"interface read on its own, absent", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.installFor(t0.Add(time.Second), conn, m.mark(), map[string]inQueues{key(a): {}})
		}, t0.Add(time.Second), conn, []string{}, true},
		{"interface read on its own outlives an older snapshot installed later", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			seq := m.mark()
			m.installFor(t0.Add(2*time.Second), conn, m.mark(), map[string]inQueues{key(a): set("support")})
			m.install(t0.Add(time.Second), conn, seq, map[string]inQueues{key(a): set("x")})
		}, t0.Add(2 * time.Second), conn, []string{"support"}, true},
		{"newer snapshot replaces a read on its own", func(m *memberships) {
			m.installFor(t0.Add(time.Second), conn, m.mark(), map[string]inQueues{key(a): set("support")})
			m.install(t0.Add(2*time.Second), conn, m.mark(), map[string]inQueues{key(a): set("x")})
		}, t0.Add(2 * time.Second), conn, []string{"x"}, true},
		{"older read on its own is dropped", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.installFor(t0.Add(-time.Second), conn, m.mark(), map[string]inQueues{key(a): set("support")})
		}, t0, conn, []string{"sales"}, true},
		{"change racing a read on its own", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			seq := m.mark()
			m.added(a, "support", nil)
			m.installFor(t0.Add(time.Second), conn, seq, map[string]inQueues{key(a): set("sales")})
		}, t0.Add(time.Second), conn, nil, false},
		{"read on its own on another connection", func(m *memberships) {
			m.install(t0.Add(-time.Minute), conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.installFor(t0, conn.Add(time.Second), m.mark(), map[string]inQueues{key(a): set("support")})
		}, t0, conn, nil, false},
		{"older observation finishing later is dropped", func(m *memberships) {
			m.install(t0, conn, m.mark(), map[string]inQueues{key(a): set("sales")})
			m.install(t0.Add(-time.Second), conn, m.mark(), map[string]inQueues{})
		}, t0, conn, []string{"sales"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemberships()
			tc.steps(m)
			got, ok := m.queuesOf(a, tc.at, 15*time.Second, 10*time.Minute, tc.conn)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			var qs []string
			if ok {
				qs = []string{}
				for q := range got {
					qs = append(qs, q)
				}
				slices.Sort(qs)
			}
			if !slices.Equal(qs, tc.want) {
				t.Errorf("queues %v, want %v", qs, tc.want)
			}
		})
	}
}

// TestLockSerialisesPerInterface: a second lock of the same interface (any case) waits, and
// gives up with its ctx; other interfaces are independent.
func TestLockSerialisesPerInterface(t *testing.T) {
	m := newMemberships()
	unlock, err := m.lock(context.Background(), "Local/1@x")
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.lock(context.Background(), "Local/2@x")
	if err != nil {
		t.Fatal(err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.lock(ctx, "LOCAL/1@X"); err == nil {
		t.Fatal("second lock of a locked interface succeeded")
	}
	got := make(chan struct{})
	go func() {
		u, err := m.lock(context.Background(), "local/1@x")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	<-got
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.locks) != 0 {
		t.Errorf("locks left: %v", m.locks)
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"permission", &ami.ResponseError{Action: "QueuePause", Message: "Permission denied"},
			"the AMI user lacks write class agent (manager.conf): QueuePause failed: Permission denied"},
		{"static", &ami.ResponseError{Action: "QueueRemove", Message: "Member not dynamic"},
			"a static member (queues.conf) cannot be removed over AMI: QueueRemove failed: Member not dynamic"},
		{"no such queue", &ami.ResponseError{Action: "QueueRemove", Message: "Unable to remove interface from queue: No such queue"},
			"no such queue: QueueRemove failed: Unable to remove interface from queue: No such queue"},
		{"dropped", fmt.Errorf("ami: QueueAdd: %w", ami.ErrConnClosed),
			"the AMI connection dropped; Asterisk may or may not have done it: ami: QueueAdd: ami: connection closed"},
		{"not connected", ami.ErrNotConnected, "ami: not connected"},
		{"timeout", fmt.Errorf("ami: QueueAdd: %w", context.DeadlineExceeded), "ami: QueueAdd: context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explain(tc.err)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Errorf("explain = %q, want %q wrapping the original", got, tc.want)
			}
		})
	}
}

func TestResultOf(t *testing.T) {
	for _, tc := range []struct {
		err        error
		idempotent bool
		want       string
	}{
		{nil, false, resultSuccess},
		{&ami.ResponseError{Message: "Unable to add interface: Already there"}, true, resultUnchanged},
		{&ami.ResponseError{Message: "Interface not found"}, false, resultError},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false, resultTimeout},
		{ami.ErrNotConnected, false, resultDisconnected},
		{fmt.Errorf("x: %w", ami.ErrConnClosed), false, resultDisconnected},
		{fmt.Errorf("x: %w", ami.ErrInvalidHeader), false, resultError},
	} {
		if got := resultOf(tc.err, tc.idempotent); got != tc.want {
			t.Errorf("resultOf(%v, %v) = %s, want %s", tc.err, tc.idempotent, got, tc.want)
		}
	}
}

// TestPerMember: interfaces are read one by one only where that costs Asterisk less than a
// read of every queue, by the size of the last one.
func TestPerMember(t *testing.T) {
	for _, tc := range []struct {
		name string
		size *pbxSize
		n    int
		want bool
	}{
		{"size unknown", nil, 1, false},
		{"empty PBX", &pbxSize{queues: 12}, 1, false},
		{"few members", &pbxSize{queues: 12, members: 10, interfaces: 5}, 1, false},
		{"40 members, one user", &pbxSize{queues: 12, members: 40, interfaces: 20}, 1, true},
		{"5,000 members, one user", &pbxSize{queues: 12, members: 5000, interfaces: 1000}, 1, true},
		{"5,000 members, 139 users", &pbxSize{queues: 12, members: 5000, interfaces: 1000}, 139, true},
		{"5,000 members, 140 users", &pbxSize{queues: 12, members: 5000, interfaces: 1000}, 140, false},
		{"100,000 members in 10 queues, 1,000 users", &pbxSize{queues: 10, members: 100000, interfaces: 10000}, 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Concern{}
			if tc.size != nil {
				c.size.Store(tc.size)
			}
			if got := c.perMember(tc.n); got != tc.want {
				t.Errorf("perMember(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

// TestKnown: what the concern knows of an interface stands for a read only while a watch has
// followed the events since the read, nothing since disagreed with it, and it is young enough
// and of the same connection.
func TestKnown(t *testing.T) {
	const a = "Local/9201@presenced-queue-member/n"
	t0 := time.Now()
	conn := t0.Add(-time.Hour)
	in := func(paused bool, reason string, penalty int) *presence.QueueMember {
		return &presence.QueueMember{Interface: a, Paused: paused, Reason: reason, Penalty: penalty}
	}
	read := func(m *memberships, members inQueues) {
		m.install(t0, conn, m.mark(), map[string]inQueues{key(a): members})
	}
	watched := func(m *memberships) { m.watch(1) }
	for _, tc := range []struct {
		name  string
		steps func(m *memberships)
		at    time.Time
		conn  time.Time
		want  inQueues // nil: not known
	}{
		{"no watch", func(m *memberships) { read(m, inQueues{"sales": in(false, "", 0)}) }, t0, conn, nil},
		{"read before the watch started", func(m *memberships) {
			read(m, inQueues{"sales": in(false, "", 0)})
			watched(m)
		}, t0, conn, nil},
		{"read while watched", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 2)})
		}, t0, conn, inQueues{"sales": in(false, "", 2)}},
		{"absent from every queue read", func(m *memberships) {
			watched(m)
			m.install(t0, conn, m.mark(), map[string]inQueues{})
		}, t0, conn, inQueues{}},
		{"watch ended", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.watch(-1)
		}, t0, conn, nil},
		{"too old", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
		}, t0.Add(11 * time.Minute), conn, nil},
		{"other connection", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
		}, t0, conn.Add(time.Second), nil},
		{"own changes followed, and their events agree", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.set(a, "sales", pausing(&presence.QueueMember{Paused: true, Reason: "lunch"}))
			m.added(a, "support", in(false, "", 1))
			m.set(a, "support", func(c *presence.QueueMember) { c.Penalty = 4 })
			m.saw(a, "sales", in(true, "lunch", 0))
			m.saw(a, "support", in(false, "", 4))
		}, t0, conn, inQueues{"sales": in(true, "lunch", 0), "support": in(false, "", 4)}},
		{"an own change's event before its answer", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.expect(a, "support", in(false, "", 1))
			m.expectChange(a, "sales", func(c *presence.QueueMember) { c.Paused, c.Reason = true, "lunch" })
			m.saw(a, "support", in(false, "", 1))
			m.saw(a, "sales", in(true, "lunch", 0))
			m.added(a, "support", in(false, "", 1))
			m.set(a, "sales", pausing(&presence.QueueMember{Paused: true, Reason: "lunch"}))
			m.settle(a)
		}, t0, conn, inQueues{"sales": in(true, "lunch", 0), "support": in(false, "", 1)}},
		{"someone else's change while an own one is under way", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.expect(a, "sales", nil)
			m.saw(a, "sales", in(true, "by hand", 0))
			m.removed(a, "sales")
			m.settle(a)
		}, t0, conn, nil},
		{"an own removal's event before its answer", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.expect(a, "sales", nil)
			m.saw(a, "sales", nil)
			m.removed(a, "sales")
			m.settle(a)
		}, t0, conn, inQueues{}},
		{"own pause in every queue", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0), "support": in(false, "", 0)})
			m.set(a, "", pausing(&presence.QueueMember{Paused: true, Reason: "dnd"}))
		}, t0, conn, inQueues{"sales": in(true, "dnd", 0), "support": in(true, "dnd", 0)}},
		{"own removal and its event", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.removed(a, "sales")
			m.saw(a, "sales", nil)
		}, t0, conn, inQueues{}},
		{"someone else's pause", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.saw(a, "sales", in(true, "by hand", 0))
		}, t0, conn, nil},
		{"someone else's removal", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.saw(a, "sales", nil)
		}, t0, conn, nil},
		{"someone else's add", func(m *memberships) {
			watched(m)
			read(m, inQueues{})
			m.saw(a, "support", in(false, "", 0))
		}, t0, conn, nil},
		{"an own older change's event arriving late", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.set(a, "sales", pausing(&presence.QueueMember{Paused: true, Reason: "lunch"}))
			m.set(a, "sales", pausing(&presence.QueueMember{}))
			m.saw(a, "sales", in(true, "lunch", 0)) // the first pause's event, after the unpause
		}, t0, conn, nil},
		{"read again after someone else's change", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.saw(a, "sales", in(true, "by hand", 0))
			read(m, inQueues{"sales": in(true, "by hand", 0)})
		}, t0, conn, inQueues{"sales": in(true, "by hand", 0)}},
		{"event during the read", func(m *memberships) {
			watched(m)
			seq := m.mark()
			m.saw(a, "sales", in(true, "by hand", 0)) // the read may or may not show it
			m.install(t0, conn, seq, map[string]inQueues{key(a): {"sales": in(true, "by hand", 0)}})
		}, t0, conn, nil},
		{"added by someone else before the concern's add", func(m *memberships) {
			watched(m)
			read(m, inQueues{})
			m.added(a, "sales", nil) // Already there: how is unknown
		}, t0, conn, nil},
		{"a pause in a queue it is not known in", func(m *memberships) {
			watched(m)
			read(m, inQueues{})
			m.set(a, "sales", pausing(&presence.QueueMember{Paused: true, Reason: "x"}))
		}, t0, conn, nil},
		{"failed action", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.forget(a)
		}, t0, conn, nil},
		{"events lost", func(m *memberships) {
			watched(m)
			read(m, inQueues{"sales": in(false, "", 0)})
			m.invalidate()
		}, t0, conn, nil},
		{"read after events were lost", func(m *memberships) {
			watched(m)
			m.invalidate()
			read(m, inQueues{"sales": in(false, "", 0)})
		}, t0, conn, inQueues{"sales": in(false, "", 0)}},
		{"read on its own", func(m *memberships) {
			watched(m)
			m.installFor(t0, conn, m.mark(), map[string]inQueues{key(a): {"support": in(false, "", 0)}})
		}, t0, conn, inQueues{"support": in(false, "", 0)}},
		{"read on its own before the watch started", func(m *memberships) {
			m.installFor(t0, conn, m.mark(), map[string]inQueues{key(a): {"support": in(false, "", 0)}})
			watched(m)
		}, t0, conn, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemberships()
			tc.steps(m)
			want := map[string]*presence.QueueMember{"sales": nil, "support": nil}
			got, ok := m.known(strings.ToUpper(a), want, tc.at, 10*time.Minute, tc.conn)
			if ok != (tc.want != nil) {
				t.Fatalf("known = %v, want %v", ok, tc.want != nil)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("known members %s, want %s", describeIn(got), describeIn(tc.want))
			}
		})
	}
}

func describeIn(in inQueues) string {
	var parts []string
	for _, q := range slices.Sorted(maps.Keys(in)) {
		parts = append(parts, fmt.Sprintf("%s:%+v", q, *in[q]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
