package presencetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// WatchRecorder records what a presence.Watcher reports, for tests of watchers against the
// lab Asterisk.
type WatchRecorder struct {
	mu      sync.Mutex
	changed map[presence.UserID]int
	agrees  map[presence.UserID]func(*presence.Target) bool // the last Saw of each user
	all     []string
	wake    chan struct{}
}

// NewWatchRecorder returns an empty recorder.
func NewWatchRecorder() *WatchRecorder {
	return &WatchRecorder{changed: map[presence.UserID]int{}, agrees: map[presence.UserID]func(*presence.Target) bool{},
		wake: make(chan struct{}, 1)}
}

// Start runs w.Watch with cat and the default naming reporting to r, until the test ends, and
// waits until the watcher subscribed (settle: events before it are not seen).
func (r *WatchRecorder) Start(t testing.TB, w presence.Watcher, cat *presence.Catalog, settle time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, presence.Watch{Catalog: func() *presence.Catalog { return cat }, Naming: presence.DefaultNaming(), Changed: r.onChanged,
			Saw: r.onSaw, All: r.onAll})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	time.Sleep(settle)
}

func (r *WatchRecorder) onChanged(id presence.UserID) {
	r.mu.Lock()
	r.changed[id]++
	r.mu.Unlock()
	r.poke()
}

// onSaw counts as Changed (a recorder expects nothing, so every event is a look) and keeps
// what the event showed.
func (r *WatchRecorder) onSaw(id presence.UserID, agrees func(*presence.Target) bool) {
	r.mu.Lock()
	r.changed[id]++
	r.agrees[id] = agrees
	r.mu.Unlock()
	r.poke()
}

// Agrees reports whether want agrees with what the last event the watcher reported with Saw
// for id showed; false when there was none.
func (r *WatchRecorder) Agrees(id presence.UserID, want *presence.Target) bool {
	r.mu.Lock()
	f := r.agrees[id]
	r.mu.Unlock()
	return f != nil && f(want)
}

func (r *WatchRecorder) onAll(why string) {
	r.mu.Lock()
	r.all = append(r.all, why)
	r.mu.Unlock()
	r.poke()
}

func (r *WatchRecorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Changed is how often Changed(id) was reported.
func (r *WatchRecorder) Changed(id presence.UserID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed[id]
}

// All lists the reasons All was reported with, in order.
func (r *WatchRecorder) All() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.all...)
}

// WaitFor waits until cond holds, failing the test after within.
func (r *WatchRecorder) WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for !cond() {
		select {
		case <-r.wake:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}
