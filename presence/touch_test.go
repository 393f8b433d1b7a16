package presence

import (
	"testing"
)

// TestReadStandsUntilSomethingHappens: a read of the PBX made before a pass (a switch's early
// read, a full check's) is used by the pass only if nothing happened about the user since it
// started (term.untouchedSince): an event about them, agreeing with the expectation or not, or
// about everyone, makes the pass read again; an event about someone else does not.
func TestReadStandsUntilSomethingHappens(t *testing.T) {
	cat, err := NewCatalogFrom(CatalogConfig{Users: []User{alice(), bob()}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Catalog: cat, Naming: DefaultNaming(), States: NewStateStore(nil, StateStoreOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	want := NewTarget()
	agreeing := func(*Target) bool { return true }
	tests := []struct {
		name    string
		between func(tm *term)
		used    bool
	}{
		{"nothing", func(*term) {}, true},
		{"an event about someone else", func(tm *term) { tm.saw("bob", agreeing) }, true},
		{"a change about someone else", func(tm *term) { tm.queueCheck("bob") }, true},
		{"an event about the user, agreeing", func(tm *term) { tm.saw("alice", agreeing) }, false},
		{"an event about the user, disagreeing", func(tm *term) {
			tm.saw("alice", func(*Target) bool { return false })
		}, false},
		{"a change about the user", func(tm *term) { tm.queueCheck("alice") }, false},
		{"an event about everyone", func(tm *term) { tm.queueCheckAll("lost events", nil) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := newWorkQueue[workKey](workQueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer q.ShutDown()
			tm := &term{e: e, q: q, touched: map[UserID]uint64{}, expect: map[UserID]*expectation{}}
			tm.saw("alice", agreeing) // what happened before the read does not count
			tm.queueCheck("bob")
			batch := &observeBatch{}
			h := &handoff{want: want, read: batch, mark: tm.mark()}
			tt.between(tm)
			got := tm.expectingEarly("alice", want, h)
			if used := got == batch; used != tt.used {
				t.Errorf("read used: %v, want %v", used, tt.used)
			}
			if x := tm.expect["alice"]; x == nil || x.want != want || !x.passing {
				t.Errorf("expectation %+v, want the pass's, passing", x)
			}
		})
	}
	q, err := newWorkQueue[workKey](workQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.ShutDown()
	tm := &term{e: e, q: q, touched: map[UserID]uint64{}, expect: map[UserID]*expectation{}}
	if tm.expectingEarly("alice", want, nil) != nil {
		t.Error("a read returned where the switch started none")
	}
}
