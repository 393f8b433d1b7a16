package presence

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// applyMode is how a pass deals with the differences it found, decided from what the pass is
// (Engine.check): a repair follows the policies and waits for calls; a switch ignores the
// policies and waits for calls unless a person asked for it just now; an enforced pass does
// neither.
type applyMode struct {
	// policies: drift follows the policy of its kind (reported and adopted drift is recorded
	// instead of applied, the DND key may switch); without it every difference is put back.
	policies bool
	// waitForCall: queue operations wait while the user is on a call (ResultDeferred).
	waitForCall bool
}

// decideAndApply applies ops as mode says: under its policies reported and adopted drift is
// recorded instead, and with waitForCall queue operations wait while the user is on a call.
// have is the observed state (for adopting). Outcomes are in the order of ops.
func (e *Engine) decideAndApply(ctx context.Context, u *User, st UserState, ops []Op, have *Target, mode applyMode, dnd *dndDecision) []Outcome {
	out := make([]Outcome, len(ops))
	var (
		apply   []Op
		at      []int
		adopted *Target
		adopts  []int
	)
	device, busy := "", false
	if mode.waitForCall {
		device, busy = onCall(e.opts.Devices, u)
	}
	var notes []int // the DND key's fallback: the outcomes that say why
	for i, op := range ops {
		pol, kind := PolicyEnforce, KindOf(op.Kind)
		if mode.policies && kind != "" {
			pol, kind = e.policyOf(op, u)
		}
		dndOp := dnd != nil && e.isDNDOp(op, u)
		if dndOp && !dnd.switching {
			pol = dnd.policy
		}
		switch {
		case dndOp && dnd.switching:
			out[i] = Outcome{Op: op, Result: ResultSwitching, Note: dnd.note}
		case dndOp && pol == PolicyReport:
			out[i] = Outcome{Op: op, Result: ResultReported, Note: "left as it is: " + dnd.note}
		case pol == PolicyReport:
			out[i] = Outcome{Op: op, Result: ResultReported, Note: "left as it is: the " + string(kind) + " policy is report"}
		case pol == PolicyAdopt && have != nil:
			if adopted == nil {
				adopted = NewTarget()
				if st.Adopted != nil {
					overlayInto(adopted, st.Adopted)
				}
			}
			adopt(adopted, op, have)
			adopts = append(adopts, i)
			out[i] = Outcome{Op: op, Result: ResultAdopted, Note: "the PBX's value is now the desired state, until the next switch"}
		case busy && isQueueOp(op.Kind):
			out[i] = Outcome{Op: op, Result: ResultDeferred, Note: "waiting for the call on " + device + " to end"}
		default:
			apply = append(apply, op)
			at = append(at, i)
			if dndOp {
				notes = append(notes, i) // the DND key's fallback enforces: the outcome says why
			}
		}
	}
	if adopted != nil {
		if err := e.opts.States.SaveAdopted(ctx, u.ID, st.Version, adopted); err != nil {
			for _, i := range adopts {
				out[i] = Failed(out[i].Op, fmt.Errorf("adopt: %w", err))
			}
		}
	}
	for k, o := range e.apply(ctx, u, apply) {
		out[at[k]] = o
	}
	for _, i := range notes {
		out[i].Note = strings.TrimPrefix(out[i].Note+"; "+dnd.note, "; ")
	}
	return out
}

func isQueueOp(k OpKind) bool {
	switch k {
	case OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty:
		return true
	}
	return false
}

// apply hands each concern its operations, in plan order, to every concern at once (they change
// different things: a switch costs one round trip, not one per concern), but to the webhooks
// after the rest; it returns the outcomes in plan order.
func (e *Engine) apply(ctx context.Context, u *User, ops []Op) []Outcome {
	outcomes := make([]Outcome, len(ops))
	groups := map[Concern][]int{} // concern → its operations' indexes, in order
	var order []Concern
	for i, op := range ops {
		c := e.byKind[op.Kind]
		if c == nil {
			outcomes[i] = Outcome{Op: op, Result: ResultFailed, Error: "no concern applies " + string(op.Kind)}
			continue
		}
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], i)
	}
	run := func(c Concern) {
		idx := groups[c]
		mine := make([]Op, len(idx))
		for k, i := range idx {
			mine[k] = ops[i]
		}
		got := c.Apply(ctx, u, mine)
		for k, i := range idx {
			if k < len(got) {
				outcomes[i] = got[k]
			} else {
				outcomes[i] = Outcome{Op: ops[i], Result: ResultFailed, Error: c.Name() + " reported no outcome"}
			}
		}
	}
	// The concerns change different things: they apply at once, each its operations in
	// order. Webhooks tell others what was done, so they go after.
	changesPBX := func(c Concern) bool { return ops[groups[c][0]].Kind.ChangesPBX() }
	var wg sync.WaitGroup
	for _, c := range order {
		if changesPBX(c) {
			wg.Go(func() { run(c) })
		}
	}
	wg.Wait()
	for _, c := range order {
		if !changesPBX(c) {
			run(c)
		}
	}
	return outcomes
}

// noConcern is the concern label of an operation no concern applies.
const noConcern = "none"

// concernOf names the concern that applies operations of kind k, noConcern when none does.
func (e *Engine) concernOf(k OpKind) string {
	if c := e.byKind[k]; c != nil {
		return c.Name()
	}
	return noConcern
}

// inSync reports whether the PBX matches the desired state after these outcomes: nothing
// failed (but a webhook), was only reported, or waits for a call to end.
func inSync(outcomes []Outcome) bool {
	for _, o := range outcomes {
		switch {
		case o.Result == ResultFailed && o.Op.Kind.ChangesPBX(), o.Result == ResultReported, o.Result == ResultDeferred,
			o.Result == ResultSwitching:
			return false
		}
	}
	return true
}
