// Package presencetest provides a recording in-memory PBX for tests of the presence engine
// (its own external tests) and of code built on it (the API, triggers): it proves that code and
// the engine's loop, not Asterisk. The concern packages test against the lab Asterisk.
package presencetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// PBX is a presence.Concern for every operation kind over an in-memory PBX state. Every
// operation succeeds unless Fail says otherwise. It is safe for concurrent use.
type PBX struct {
	mu       sync.Mutex
	state    presence.Target
	applied  []string
	failKind presence.OpKind // operations of this kind fail while set

	observes     atomic.Int64
	observeDelay atomic.Int64 // nanoseconds each Observe takes
}

// NewPBX returns an empty PBX.
func NewPBX() *PBX { return &PBX{state: *presence.NewTarget()} }

// Name implements presence.Concern.
func (m *PBX) Name() string { return "mem" }

// Kinds implements presence.Concern: every kind.
func (m *PBX) Kinds() []presence.OpKind {
	return []presence.OpKind{presence.OpQueueAdd, presence.OpQueueRemove, presence.OpQueuePause, presence.OpQueuePenalty,
		presence.OpDBPut, presence.OpDBDel, presence.OpDeviceState, presence.OpPresence, presence.OpGlobal, presence.OpWebhook}
}

// Observe implements presence.Concern.
func (m *PBX) Observe(_ context.Context, want, have map[presence.UserID]*presence.Target) error {
	m.observes.Add(1)
	time.Sleep(time.Duration(m.observeDelay.Load()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range want {
		h := have[id]
		for q := range w.Queues {
			if mem := m.state.Queues[q+"|"+w.Interface]; mem != nil {
				c := *mem
				h.Queues[q] = &c
			} else {
				h.Queues[q] = nil
			}
		}
		for k := range w.AstDB {
			h.AstDB[k] = m.state.AstDB[k]
		}
		for k := range w.Devices {
			h.Devices[k] = m.state.Devices[k]
		}
		for k := range w.Presence {
			h.Presence[k] = m.state.Presence[k]
		}
		for k := range w.Globals {
			h.Globals[k] = m.state.Globals[k]
		}
	}
	return nil
}

// Apply implements presence.Concern: it changes the in-memory state and records each
// operation as "user: operation". An operation of the kind Fail names fails instead, its
// attempt recorded all the same.
func (m *PBX) Apply(_ context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]presence.Outcome, len(ops))
	for i, op := range ops {
		m.applied = append(m.applied, string(u.ID)+": "+op.String())
		if m.failKind != "" && op.Kind == m.failKind {
			out[i] = presence.Failed(op, errInjected)
			continue
		}
		switch op.Kind {
		case presence.OpQueueAdd, presence.OpQueuePause, presence.OpQueuePenalty:
			c := *op.Member
			m.state.Queues[op.Queue+"|"+op.Member.Interface] = &c
		case presence.OpQueueRemove:
			delete(m.state.Queues, op.Queue+"|"+op.Member.Interface)
		case presence.OpDBPut:
			v := op.Value
			m.state.AstDB[op.Key] = &v
		case presence.OpDBDel:
			delete(m.state.AstDB, op.Key)
		case presence.OpDeviceState:
			m.state.Devices[op.Key] = op.Value
		case presence.OpPresence:
			p := *op.Presence
			m.state.Presence[op.Key] = &p
		case presence.OpGlobal:
			v := op.Value
			m.state.Globals[op.Key] = &v
		}
		out[i] = presence.Outcome{Op: op, Result: presence.ResultApplied}
	}
	return out
}

// errInjected is the error of the operations that Fail makes fail.
var errInjected = errors.New("injected failure")

// Fail makes every operation of kind k fail from now on, as a PBX that refuses it; the empty
// kind ends the failures.
func (m *PBX) Fail(k presence.OpKind) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failKind = k
}

// SetObserveDelay makes each Observe take d more, as a slow PBX; 0 ends the delay.
func (m *PBX) SetObserveDelay(d time.Duration) { m.observeDelay.Store(int64(d)) }

// Observes returns how many times the PBX was read (Observe).
func (m *PBX) Observes() int64 { return m.observes.Load() }

// Applied returns every operation applied so far, as "user: operation", in order.
func (m *PBX) Applied() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.applied...)
}

// Edit changes the PBX state as someone else than presenced would (by hand, a phone). Queue
// members are keyed "queue|interface".
func (m *PBX) Edit(f func(state *presence.Target)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.state)
}

// Results returns the result of each outcome, in order.
func Results(out []presence.Outcome) []presence.Result {
	r := make([]presence.Result, len(out))
	for i, o := range out {
		r[i] = o.Result
	}
	return r
}

// Run runs e until the test ends and returns once it runs (Engine.Run). The stop it returns
// ends the engine's term earlier, as a leader that steps down, and returns once Run has
// returned; calling it again does nothing.
func Run(t testing.TB, e *presence.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	t.Cleanup(stop)
	for !e.Running() {
		select {
		case err := <-done:
			t.Fatalf("engine Run: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	return stop
}
