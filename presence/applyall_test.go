package presence

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestApplyAll(t *testing.T) {
	t.Run("distinct things at once", func(t *testing.T) {
		ops := []Op{{Kind: OpDBPut, Key: "A/1"}, {Kind: OpDBPut, Key: "A/2"}, {Kind: OpQueuePause, Queue: "q1"}, {Kind: OpQueuePause, Queue: "q2"}}
		var started sync.WaitGroup
		started.Add(len(ops))
		all := make(chan struct{})
		go func() { started.Wait(); close(all) }()
		out := ApplyAll(ops, func(op Op) Outcome {
			started.Done()
			select {
			case <-all: // every op is in flight at the same time
				return Outcome{Op: op, Result: ResultApplied}
			case <-time.After(5 * time.Second):
				return Outcome{Op: op, Result: ResultFailed}
			}
		})
		for i, o := range out {
			if o.Op.Key != ops[i].Key || o.Op.Queue != ops[i].Queue || o.Result != ResultApplied {
				t.Errorf("outcome %d = %+v, want op %+v applied while the others were in flight", i, o, ops[i])
			}
		}
	})
	t.Run("same thing in order", func(t *testing.T) {
		ops := []Op{{Kind: OpDBPut, Key: "A/1", Value: "1"}, {Kind: OpDBPut, Key: "A/2"}, {Kind: OpDBDel, Key: "A/1"},
			{Kind: OpDBPut, Key: "A/1", Value: "2"}, {Kind: OpQueuePause, Queue: "q"}, {Kind: OpQueuePenalty, Queue: "q"}}
		var mu sync.Mutex
		var seen []int
		out := ApplyAll(ops, func(op Op) Outcome {
			for i := range ops {
				if ops[i] == op {
					mu.Lock()
					seen = append(seen, i)
					mu.Unlock()
				}
			}
			return Outcome{Op: op, Result: ResultApplied}
		})
		for _, chain := range [][]int{{0, 2, 3}, {4, 5}} {
			var got []int
			for _, i := range seen {
				if slices.Contains(chain, i) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, chain) {
				t.Errorf("ops on one thing ran as %v, want %v", got, chain)
			}
		}
		for i, o := range out {
			if o.Op != ops[i] {
				t.Errorf("outcome %d is for %+v, want %+v", i, o.Op, ops[i])
			}
		}
	})
}
