package queue

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// inQueues is an interface's queues: queue → the member there, nil when the concern knows the
// interface is in that queue but not how it is (paused, penalty).
type inQueues map[string]*presence.QueueMember

// memberships remembers, from the last observation, which queues each interface is in and
// how it is there, and keeps that up to date with the changes the concern itself makes and
// with what the concern's events show (saw). Apply uses it to decide whether a set of
// queue_pause operations covers every queue of an interface (see Concern.Apply); Observe
// answers from it, without reading, for an interface it knows (known). It also serialises
// Apply calls per interface. Interfaces are keyed in lower case, as Asterisk matches them
// case-insensitively.
//
// What it knows of an interface is the last read of it (a read of every queue, or of the
// interface alone), followed by the concern's own changes and by events. An event that shows
// the interface otherwise than it says (someone else's change, or one of the concern's own
// older changes arriving late: an event does not say which) makes the interface unsure until
// it is read again; so does an action whose outcome is unclear or that Asterisk refused. Only
// while a watch (Concern.Watch) receives every event since before the read is the
// interface known: lost events, a reload of app_queue, a new AMI connection forget everything
// read before them (invalidate).
type memberships struct {
	mu sync.Mutex
	// taken is when the QueueStatus of the snapshot was sent (zero: no snapshot yet), conn
	// the AMI client's Status.Since at that moment: a different Since later means the
	// connection was re-established and Asterisk may have restarted meanwhile.
	taken, conn time.Time
	takenSeq    uint64              // the change counter when the snapshot's read was sent
	queues      map[string]inQueues // interface → its queues
	// unsure lists interfaces whose membership may have changed since the snapshot in a way
	// the concern could not follow (an action that timed out, a change racing the snapshot).
	unsure  map[string]struct{}
	seq     uint64            // counts recorded changes
	changed map[string]uint64 // interface → seq of its last recorded change
	locks   map[string]*ifaceLock
	// read and readConn are, for an interface read on its own (installFor) after the last
	// whole snapshot, when and on which connection; readSeq the change counter when it was
	// sent; its entry in queues is that read's.
	read, readConn map[string]time.Time
	readSeq        map[string]uint64
	// watchers counts the watches under way (Concern.Watch); floor is the change counter from
	// which a read can be known: reads sent before the last invalidate are not.
	watchers int
	floor    uint64
	// expected holds, while Apply changes an interface, what each queue's member will be once
	// the action under way is done (nil: gone): its event may come before its answer.
	expected map[string]inQueues
}

type ifaceLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; the entry is dropped at 0
}

func newMemberships() *memberships {
	return &memberships{
		queues:   map[string]inQueues{},
		unsure:   map[string]struct{}{},
		changed:  map[string]uint64{},
		locks:    map[string]*ifaceLock{},
		read:     map[string]time.Time{},
		readConn: map[string]time.Time{},
		readSeq:  map[string]uint64{},
		expected: map[string]inQueues{},
	}
}

func key(iface string) string { return strings.ToLower(iface) }

// mark returns the change counter; an observation calls it before sending QueueStatus and
// hands it to install.
func (m *memberships) mark() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq
}

// install replaces the snapshot with one whose QueueStatus was sent at taken, on the
// connection identified by conn, after change number seq. A snapshot older than the current
// one (observations that overlapped) is dropped. Interfaces the concern changed after seq
// may or may not be reflected in it, so they are marked unsure.
func (m *memberships) install(taken, conn time.Time, seq uint64, queues map[string]inQueues) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if taken.Before(m.taken) {
		return
	}
	old, oldUnsure := m.queues, m.unsure
	m.taken, m.conn, m.takenSeq, m.queues = taken, conn, seq, queues
	m.unsure = map[string]struct{}{}
	for k, s := range m.changed {
		if s > seq {
			m.unsure[k] = struct{}{}
		} else {
			delete(m.changed, k)
		}
	}
	// An interface read on its own after this snapshot was taken keeps what that read said.
	for k, t := range m.read {
		if !t.After(taken) || !m.readConn[k].Equal(conn) {
			delete(m.read, k)
			delete(m.readConn, k)
			delete(m.readSeq, k)
			continue
		}
		if q, ok := old[k]; ok {
			m.queues[k] = q
		} else {
			delete(m.queues, k)
		}
		if _, ok := oldUnsure[k]; ok {
			m.unsure[k] = struct{}{}
		} else {
			delete(m.unsure, k)
		}
	}
}

// installFor records what reads of single interfaces (QueueStatus with Member), sent at taken
// on the connection identified by conn after change number seq, found: queues holds, for each
// interface read, the queues it is in. Each interface's entry is replaced unless a newer read
// of it (or a newer whole snapshot) is installed already; one the concern changed after seq is
// marked unsure.
func (m *memberships) installFor(taken, conn time.Time, seq uint64, queues map[string]inQueues) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if taken.Before(m.taken) {
		return
	}
	for k, q := range queues {
		if t, ok := m.read[k]; ok && taken.Before(t) {
			continue
		}
		if m.queues == nil {
			m.queues = map[string]inQueues{}
		}
		m.queues[k] = q
		m.read[k], m.readConn[k], m.readSeq[k] = taken, conn, seq
		if m.changed[k] > seq {
			m.unsure[k] = struct{}{}
		} else {
			delete(m.unsure, k)
		}
	}
}

// added records that iface is now in q (QueueAdd succeeded or said "Already there"), as
// member (a copy is kept), or how is unknown (nil: somebody else added it).
func (m *memberships) added(iface, q string, member *presence.QueueMember) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.touch(iface)
	if m.queues[k] == nil {
		m.queues[k] = inQueues{}
	}
	if member != nil {
		c := *member
		member = &c
	}
	m.queues[k][q] = member
}

// set records a change the concern made to the member of iface in q, or in every queue it is
// in when q is "" (a QueuePause or QueuePenalty that succeeded): change applied to copies of
// the members known. A queue the interface is not known to be in makes it unsure.
func (m *memberships) set(iface, q string, change func(*presence.QueueMember)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.touch(iface)
	in := m.queues[k]
	if q != "" {
		if _, ok := in[q]; !ok {
			m.unsure[k] = struct{}{}
			return
		}
	}
	for name, c := range m.changedLocked(k, q, change) {
		in[name] = c
	}
}

// changedLocked returns copies of the members known of interface k in q (every queue when q
// is ""), changed by change; members whose state is unknown are left out. The caller holds
// m.mu.
func (m *memberships) changedLocked(k, q string, change func(*presence.QueueMember)) inQueues {
	out := inQueues{}
	for name, member := range m.queues[k] {
		if (q != "" && name != q) || member == nil {
			continue
		}
		c := *member
		change(&c)
		out[name] = &c
	}
	return out
}

// expect records, before the concern sends an action on iface in q, what the member there will
// be once it is done: member for an add, nil for a removal. An event showing just that is the
// action's own, even when it comes before the answer (saw).
func (m *memberships) expect(iface, q string, member *presence.QueueMember) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expectLocked(key(iface), q, member)
}

// expectChange is expect for a change of the member iface is known to be in q (every queue it
// is in when q is ""): a pause or a penalty.
func (m *memberships) expectChange(iface, q string, change func(*presence.QueueMember)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(iface)
	for name, c := range m.changedLocked(k, q, change) {
		m.expectLocked(k, name, c)
	}
}

func (m *memberships) expectLocked(k, q string, member *presence.QueueMember) {
	if m.expected[k] == nil {
		m.expected[k] = inQueues{}
	}
	m.expected[k][q] = member
}

// settle ends the expectations of Apply on iface: by then what it did is recorded.
func (m *memberships) settle(iface string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.expected, key(iface))
}

// saw records what a member event showed of iface in queue q: member, or nil when the event
// says it left q. When that is not what is known of the interface, it becomes unsure; either
// way it counts as changed for the reads under way (install).
func (m *memberships) saw(iface, q string, member *presence.QueueMember) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.touch(iface)
	shows := func(in inQueues) bool {
		got, ok := in[q]
		switch {
		case member == nil:
			return !ok
		case got != nil:
			return sameMember(got, member)
		}
		return false
	}
	exp, expecting := m.expected[k][q]
	own := expecting && ((exp == nil && member == nil) || (exp != nil && member != nil && sameMember(exp, member)))
	if !own && !shows(m.queues[k]) {
		m.unsure[k] = struct{}{}
	}
}

// sameMember reports whether a and b are the same as Plan compares members: paused, the
// reason if paused, the penalty, and whether the member is static.
func sameMember(a, b *presence.QueueMember) bool {
	return a.Paused == b.Paused && (!a.Paused || a.Reason == b.Reason) && a.Penalty == b.Penalty &&
		(a.Membership == presence.MembershipStatic) == (b.Membership == presence.MembershipStatic)
}

// watch records that a watch starts (+1) or ends (-1). A starting one invalidates what was read
// before it: the events of that time were not followed.
func (m *memberships) watch(delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchers += delta
	m.invalidateLocked()
}

// invalidate forgets, for known, whatever was read before now: events were lost, app_queue
// was reloaded, the AMI connection changed.
func (m *memberships) invalidate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invalidateLocked()
}

func (m *memberships) invalidateLocked() {
	m.seq++
	m.floor = m.seq
}

// known returns the members of iface in the queues want names (absent ones left out), when
// they are known well enough to stand for a read: a watch has followed the events since the
// read they come from was sent (floor); that read is at most maxAge old at now and was made
// on the AMI connection identified by conn; nothing since made the interface unsure; and the
// interface's member is known in every one of those queues it is in. The members are copies.
func (m *memberships) known(iface string, want map[string]*presence.QueueMember, now time.Time, maxAge time.Duration, conn time.Time) (inQueues, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(iface)
	if _, ok := m.unsure[k]; ok {
		return nil, false
	}
	taken, on, seq := m.taken, m.conn, m.takenSeq
	if t, own := m.read[k]; own {
		taken, on, seq = t, m.readConn[k], m.readSeq[k]
	}
	if !m.standsLocked(taken, on, seq, now, -1, maxAge, conn) {
		return nil, false
	}
	out := make(inQueues, len(want))
	for q := range want {
		member, in := m.queues[k][q]
		if !in {
			continue
		}
		if member == nil {
			return nil, false
		}
		c := *member
		out[q] = &c
	}
	return out, true
}

// removed records that iface is no longer in q (QueueRemove succeeded or said "Not there").
func (m *memberships) removed(iface, q string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.queues[m.touch(iface)], q)
}

// forget records that iface's membership is unknown until the next observation.
func (m *memberships) forget(iface string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unsure[m.touch(iface)] = struct{}{}
}

func (m *memberships) touch(iface string) string {
	k := key(iface)
	m.seq++
	m.changed[k] = m.seq
	return k
}

// queuesOf returns the queues iface is in, and whether that is known well enough to act on:
// there is a snapshot, or a read of iface on its own, taken on the AMI connection identified by
// conn and at most maxAge old at now, or at most knownFor old while a watch has followed the
// events since it was sent (as known requires); and nothing since made iface's membership
// uncertain.
func (m *memberships) queuesOf(iface string, now time.Time, maxAge, knownFor time.Duration, conn time.Time) (map[string]struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(iface)
	whole := m.standsLocked(m.taken, m.conn, m.takenSeq, now, maxAge, knownFor, conn)
	t, own := m.read[k]
	own = own && m.standsLocked(t, m.readConn[k], m.readSeq[k], now, maxAge, knownFor, conn)
	if !whole && !own {
		return nil, false
	}
	if _, ok := m.unsure[k]; ok {
		return nil, false
	}
	in := make(map[string]struct{}, len(m.queues[k]))
	for q := range m.queues[k] {
		in[q] = struct{}{}
	}
	return in, true
}

// standsLocked reports whether a read sent at taken on the connection identified by on, after
// change number seq, stands at now for the connection identified by conn: it was made on that
// connection, and it is at most maxAge old (negative: never enough), or at most knownFor old
// while a watch has followed the events since it was sent. The caller holds m.mu.
func (m *memberships) standsLocked(taken, on time.Time, seq uint64, now time.Time, maxAge, knownFor time.Duration, conn time.Time) bool {
	if taken.IsZero() || !conn.Equal(on) {
		return false
	}
	age := now.Sub(taken)
	return (maxAge >= 0 && age <= maxAge) || (m.watchers > 0 && seq >= m.floor && age <= knownFor)
}

// lock serialises Apply calls per interface, so that no other Apply changes an interface's
// membership between the decision to pause it in all its queues and the action.
func (m *memberships) lock(ctx context.Context, iface string) (unlock func(), err error) {
	k := key(iface)
	m.mu.Lock()
	l := m.locks[k]
	if l == nil {
		l = &ifaceLock{ch: make(chan struct{}, 1)}
		m.locks[k] = l
	}
	l.refs++
	m.mu.Unlock()
	drop := func() {
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, k)
		}
		m.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
}
