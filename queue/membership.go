package queue

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"
)

// memberships remembers, from the last observation, which queues each interface is in, and
// keeps that up to date with the membership changes the concern itself makes. Apply uses it
// to decide whether a set of queue_pause operations covers every queue of an interface (see
// Concern.Apply). It also serialises Apply calls per interface. Interfaces are keyed in lower
// case, as Asterisk matches them case-insensitively.
type memberships struct {
	mu sync.Mutex
	// taken is when the QueueStatus of the snapshot was sent (zero: no snapshot yet), conn
	// the AMI client's Status.Since at that moment: a different Since later means the
	// connection was re-established and Asterisk may have restarted meanwhile.
	taken, conn time.Time
	queues      map[string]map[string]struct{} // interface → the queues it is in
	// unsure lists interfaces whose membership may have changed since the snapshot in a way
	// the concern could not follow (an action that timed out, a change racing the snapshot).
	unsure  map[string]struct{}
	seq     uint64            // counts recorded changes
	changed map[string]uint64 // interface → seq of its last recorded change
	locks   map[string]*ifaceLock
	// read and readConn are, for an interface read on its own (installFor) after the last
	// whole snapshot, when and on which connection; its entry in queues is that read's.
	read, readConn map[string]time.Time
}

type ifaceLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; the entry is dropped at 0
}

func newMemberships() *memberships {
	return &memberships{
		queues:   map[string]map[string]struct{}{},
		unsure:   map[string]struct{}{},
		changed:  map[string]uint64{},
		locks:    map[string]*ifaceLock{},
		read:     map[string]time.Time{},
		readConn: map[string]time.Time{},
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
func (m *memberships) install(taken, conn time.Time, seq uint64, queues map[string]map[string]struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if taken.Before(m.taken) {
		return
	}
	old, oldUnsure := m.queues, m.unsure
	m.taken, m.conn, m.queues = taken, conn, queues
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
func (m *memberships) installFor(taken, conn time.Time, seq uint64, queues map[string]map[string]struct{}) {
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
			m.queues = map[string]map[string]struct{}{}
		}
		m.queues[k] = q
		m.read[k], m.readConn[k] = taken, conn
		if m.changed[k] > seq {
			m.unsure[k] = struct{}{}
		} else {
			delete(m.unsure, k)
		}
	}
}

// added records that iface is now in q (QueueAdd succeeded or said "Already there").
func (m *memberships) added(iface, q string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.touch(iface)
	if m.queues[k] == nil {
		m.queues[k] = map[string]struct{}{}
	}
	m.queues[k][q] = struct{}{}
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
// there is a snapshot, or a read of iface on its own, at most maxAge old at now, taken on the
// AMI connection identified by conn, and nothing since made iface's membership uncertain.
func (m *memberships) queuesOf(iface string, now time.Time, maxAge time.Duration, conn time.Time) (map[string]struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(iface)
	whole := !m.taken.IsZero() && now.Sub(m.taken) <= maxAge && conn.Equal(m.conn)
	t, own := m.read[k]
	own = own && now.Sub(t) <= maxAge && conn.Equal(m.readConn[k])
	if !whole && !own {
		return nil, false
	}
	if _, ok := m.unsure[k]; ok {
		return nil, false
	}
	return maps.Clone(m.queues[k]), true
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
