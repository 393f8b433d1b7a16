package presence

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// probeConcern applies its kinds by calling apply, and answers every operation applied.
type probeConcern struct {
	name  string
	kinds []OpKind
	apply func(ops []Op)
}

func (p *probeConcern) Name() string    { return p.name }
func (p *probeConcern) Kinds() []OpKind { return p.kinds }
func (p *probeConcern) Observe(context.Context, map[UserID]*Target, map[UserID]*Target) error {
	return nil
}
func (p *probeConcern) Apply(_ context.Context, _ *User, ops []Op) []Outcome {
	p.apply(ops)
	out := make([]Outcome, len(ops))
	for i, op := range ops {
		out[i] = Outcome{Op: op, Result: ResultApplied}
	}
	return out
}

// TestApplyConcernsAtOnce: one switch's operations go to every concern at once (each gets its
// own, in plan order, in one call), and to the webhooks only after the others are done; the
// outcomes come back in plan order.
func TestApplyConcernsAtOnce(t *testing.T) {
	var (
		mu   sync.Mutex
		got  = map[string][][]OpKind{} // concern → the kinds of each call
		done = map[string]bool{}
	)
	queuesIn, astdbIn := make(chan struct{}), make(chan struct{})
	record := func(name string, ops []Op) {
		mu.Lock()
		defer mu.Unlock()
		var kinds []OpKind
		for _, op := range ops {
			kinds = append(kinds, op.Kind)
		}
		got[name] = append(got[name], kinds)
		done[name] = true
	}
	// Each of the two waits for the other to have started: they can only both finish if
	// they run at once.
	meet := func(mine, other chan struct{}) {
		close(mine)
		select {
		case <-other:
		case <-time.After(5 * time.Second):
			t.Error("a concern was not applied while another was")
		}
	}
	queues := &probeConcern{name: "queues", kinds: []OpKind{OpQueuePause, OpQueueAdd}, apply: func(ops []Op) {
		meet(queuesIn, astdbIn)
		record("queues", ops)
	}}
	astdb := &probeConcern{name: "astdb", kinds: []OpKind{OpDBPut, OpGlobal}, apply: func(ops []Op) {
		meet(astdbIn, queuesIn)
		record("astdb", ops)
	}}
	hooks := &probeConcern{name: "hooks", kinds: []OpKind{OpWebhook}, apply: func(ops []Op) {
		mu.Lock()
		if !done["queues"] || !done["astdb"] {
			t.Error("the webhooks were called before the PBX changes were done")
		}
		mu.Unlock()
		record("hooks", ops)
	}}
	cat, err := NewCatalogFrom(CatalogConfig{Users: []User{alice()}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineOptions{Catalog: cat, Naming: DefaultNaming(), States: NewStateStore(nil, StateStoreOptions{}),
		Concerns: []Concern{queues, astdb, hooks}})
	if err != nil {
		t.Fatal(err)
	}
	ops := []Op{{Kind: OpQueueAdd, Queue: "support"}, {Kind: OpQueuePause, Queue: "sales"}, {Kind: OpDBPut, Key: "DND/1001"},
		{Kind: OpWebhook}, {Kind: OpGlobal, Key: "G"}, {Kind: OpQueueAdd, Queue: "billing"}, {Kind: OpDeviceState, Key: "Custom:X"}}
	u, _ := cat.User("alice")
	out := e.apply(context.Background(), u, ops)
	for i, o := range out {
		want := ResultApplied
		if ops[i].Kind == OpDeviceState {
			want = ResultFailed // no concern applies it
		}
		if o.Op.Kind != ops[i].Kind || o.Op.Key != ops[i].Key || o.Op.Queue != ops[i].Queue || o.Result != want {
			t.Errorf("outcome %d: %+v, want %s of %+v", i, o, want, ops[i])
		}
	}
	for name, want := range map[string][]OpKind{"queues": {OpQueueAdd, OpQueuePause, OpQueueAdd}, "astdb": {OpDBPut, OpGlobal}, "hooks": {OpWebhook}} {
		if g := got[name]; len(g) != 1 || !slices.Equal(g[0], want) {
			t.Errorf("%s got %v, want %v in one call", name, g, want)
		}
	}
}
