package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
)

// Asterisk's idempotent refusals (apps/app_queue.c, docs/asterisk.md §2.2).
const (
	msgAlreadyThere = "Unable to add interface: Already there"
	msgNotThere     = "Unable to remove interface: Not there"
)

// Apply performs one user's queue operations and returns one outcome per operation, in the
// same order. The operations name distinct queues, so they are sent at once
// (presence.ApplyAll). Operations of other kinds fail. Calls for different users may run in
// parallel; calls for the same interface are serialised.
//
//   - queue_add sends one QueueAdd with the member's name, state interface and penalty, and,
//     when the member must join paused, Paused and Reason: it logs in already paused, never
//     add-then-pause (a moment unpaused could ring the member).
//   - queue_remove sends QueueRemove; "Not there" is ResultUnchanged. A static member
//     ("Member not dynamic") fails.
//   - queue_pause sends QueuePause for the queue with Paused and Reason.
//   - queue_penalty sends QueuePenalty for the queue.
//
// "Already there" is not enough to report ResultUnchanged: Plan asked for the add because the
// member was absent when observed, so whoever added it meanwhile chose its paused state and
// penalty, and a member that should have joined paused might be taking calls. Apply therefore
// reads the member back (one QueueStatus for that queue and member) and reports
// ResultUnchanged only when its paused state, reason (if paused) and penalty (unless static)
// are what the op wants, the attributes Plan compares. Otherwise it sets them with QueuePause
// and QueuePenalty and reports ResultApplied. Member name and state interface cannot be changed
// without removing the member (which would drop the call it may be on), so they are left as
// they are. When the member cannot be read back (its interface was added with a different
// spelling, or it left again) the op fails and the engine's retry re-observes.
//
// Asterisk applies about 2,000 QueueAdd/s but only about 460 QueuePause/s, and a QueuePause
// without Queue pauses an interface in every queue it is in with one action. (It still does
// the per-queue work in each queue, e.g. rewriting the queue's persistentmembers astdb entry,
// so what it saves is the per-action cost; BenchmarkMassPause measures both.) So when the ops
// are made of queue_pause ops (at least two) and, optionally, queue_penalty ops, and the pause
// ops all set the same paused state and reason for the same interface and cover exactly the
// queues that interface is in, Apply sends one QueuePause without Queue in place of the first
// of them and reports its result for all of them. Replacing "pause in these queues" by "pause
// in all queues" is only right if the interface is in no other queue when the action runs.
// Apply knows the queues from the last observation and follows the membership changes it makes
// itself, and it is conservative about everything else:
//
//   - no queue_add or queue_remove among the ops (they change the membership as they go);
//   - the observation is at most Options.CoalesceWindow old (or Options.KnownFor while the
//     concern's watch has followed every event since it was taken, as Observe requires to
//     answer from it) and was taken on the same AMI connection (a reconnect may hide an
//     Asterisk restart or missed changes);
//   - no action of the concern on that interface timed out or raced with the observation
//     since it was taken, and no other Apply for the interface runs meanwhile (the per-interface
//     lock), so between the observation and the action only somebody other than presenced
//     could have changed the interface's queues: a phone's AddQueueMember with presenced's own
//     interface naming, a queues.conf reload, within seconds. That residual risk is accepted:
//     a member gone from a covered queue gets a wrong "applied" that the next observation
//     corrects; a member added to a queue presenced does not manage would be paused there too;
//   - if Asterisk refuses the single action (e.g. "Interface not found" because the member
//     left every queue), Apply falls back to one action per queue, which tells which queue is
//     wrong. A timeout or a dropped connection fails the covered ops without retrying.
//
// Pauses and penalties are independent, so moving the pauses of later queues ahead of the
// penalty ops between them changes nothing.
func (c *Concern) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	out := make([]presence.Outcome, len(ops))
	log := c.log
	if u != nil {
		log = log.With("user", u.ID)
	}
	var ifaces []string
	for _, op := range ops {
		if op.Member != nil && op.Member.Interface != "" && !slices.Contains(ifaces, key(op.Member.Interface)) {
			ifaces = append(ifaces, key(op.Member.Interface))
		}
	}
	slices.Sort(ifaces) // a fixed order: no deadlock between calls sharing interfaces
	for _, iface := range ifaces {
		unlock, err := c.mem.lock(ctx, iface)
		if err != nil {
			for i, op := range ops {
				out[i] = presence.Failed(op, fmt.Errorf("queue: %s: %w", op, err))
			}
			return out
		}
		defer unlock()
		defer c.mem.settle(iface)
	}

	done := make([]bool, len(ops))
	if group := c.coalescible(ops); len(group) > 0 && c.pauseAll(ctx, log, ops, group, out) {
		for _, j := range group {
			done[j] = true
		}
	}
	// The rest name distinct queues (a pause and a penalty in one queue are independent): they
	// are sent at once.
	var rest []presence.Op
	var at []int
	for i, op := range ops {
		if !done[i] {
			rest, at = append(rest, op), append(at, i)
		}
	}
	for k, o := range presence.ApplyAll(rest, func(op presence.Op) presence.Outcome { return c.apply(ctx, log, op) }) {
		out[at[k]] = o
	}
	return out
}

// coalescible returns the indexes of the ops one QueuePause without Queue may serve, or nil.
func (c *Concern) coalescible(ops []presence.Op) []int {
	if c.window < 0 {
		return nil
	}
	iface, group := pauseGroup(ops)
	if group == nil {
		return nil
	}
	// The snapshot is tied to the connection that read it: a new one means Asterisk may have
	// restarted (which drops every connection) since.
	st := c.reader.Status()
	if !st.LoggedIn {
		return nil
	}
	in, ok := c.mem.queuesOf(iface, time.Now(), c.window, c.knownFor, st.Since)
	if !ok || !coversExactly(ops, group, in) {
		return nil
	}
	return group
}

// pauseGroup checks the shape of ops for a pause in all queues: only queue_pause and
// queue_penalty ops, all for one interface, at least two pauses, all with the same paused
// state and reason, each for a different queue. It returns the interface and the indexes of
// the pause ops, or a nil group.
func pauseGroup(ops []presence.Op) (iface string, group []int) {
	var pause *presence.QueueMember // the first pause op's member
	queues := map[string]bool{}
	for i, op := range ops {
		if op.Member == nil || op.Queue == "" || op.Member.Interface == "" {
			return "", nil
		}
		if !strings.EqualFold(op.Member.Interface, ops[0].Member.Interface) {
			return "", nil
		}
		switch op.Kind {
		case presence.OpQueuePenalty:
		case presence.OpQueuePause:
			if pause == nil {
				pause = op.Member
			}
			if op.Member.Paused != pause.Paused || reasonOf(op.Member) != reasonOf(pause) || queues[op.Queue] {
				return "", nil
			}
			queues[op.Queue] = true
			group = append(group, i)
		default:
			return "", nil
		}
	}
	if len(group) < 2 {
		return "", nil
	}
	return pause.Interface, group
}

// coversExactly reports whether the queues of the group's ops are exactly in.
func coversExactly(ops []presence.Op, group []int, in map[string]struct{}) bool {
	if len(group) != len(in) {
		return false
	}
	for _, i := range group {
		if _, ok := in[ops[i].Queue]; !ok {
			return false
		}
	}
	return true
}

// pauseAll sends one QueuePause without Queue for the group and sets the outcomes of its ops.
// It returns false, setting nothing, when Asterisk refused it and each op must be tried alone.
func (c *Concern) pauseAll(ctx context.Context, log *slog.Logger, ops []presence.Op, group []int, out []presence.Outcome) bool {
	m := ops[group[0]].Member
	change := pausing(m)
	c.mem.expectChange(m.Interface, "", change)
	_, err := c.send(ctx, ami.QueuePause{Interface: m.Interface, Paused: m.Paused, Reason: reasonOf(m)})
	if _, refused := ami.ResponseMessage(err); refused {
		log.Debug("queue pause in all queues refused; one action per queue instead", "interface", m.Interface, "err", err)
		return false
	}
	for _, i := range group {
		op := ops[i]
		if err != nil {
			out[i] = presence.Failed(op, fmt.Errorf("%s %s in %s (one QueuePause for all its queues): %w",
				pauseVerb(m.Paused), m.Interface, op.Queue, explain(err)))
			continue
		}
		out[i] = presence.Outcome{Op: op, Result: presence.ResultApplied}
	}
	if err == nil {
		c.met.coalesced.Add(float64(len(group)))
		c.mem.set(m.Interface, "", change)
	} else {
		c.mem.forget(m.Interface)
	}
	log.Debug("queue pause in all queues", "interface", m.Interface, "paused", m.Paused, "ops", len(group), "err", err)
	return true
}

// apply performs one op.
func (c *Concern) apply(ctx context.Context, log *slog.Logger, op presence.Op) presence.Outcome {
	switch op.Kind {
	case presence.OpQueueAdd, presence.OpQueueRemove, presence.OpQueuePause, presence.OpQueuePenalty:
	default:
		return presence.Failed(op, fmt.Errorf("queue: cannot apply %s operations", op.Kind))
	}
	if op.Member == nil || op.Queue == "" || op.Member.Interface == "" {
		return presence.Failed(op, fmt.Errorf("queue: %s op without queue or member interface", op.Kind))
	}
	w, q := op.Member, op.Queue
	var o presence.Outcome
	switch op.Kind {
	case presence.OpQueueAdd:
		o = c.add(ctx, log, op)
	case presence.OpQueueRemove:
		c.mem.expect(w.Interface, q, nil)
		unchanged, err := c.send(ctx, ami.QueueRemove{Queue: q, Interface: w.Interface}, msgNotThere)
		switch {
		case err == nil || unchanged:
			c.mem.removed(w.Interface, q)
			o = outcome(op, unchanged)
		default:
			c.failed(w.Interface, err)
			o = presence.Failed(op, fmt.Errorf("queue remove %s from %s: %w", w.Interface, q, explain(err)))
		}
	case presence.OpQueuePause:
		change := pausing(w)
		c.mem.expectChange(w.Interface, q, change)
		_, err := c.send(ctx, ami.QueuePause{Queue: q, Interface: w.Interface, Paused: w.Paused, Reason: reasonOf(w)})
		o = outcome(op, false)
		if err != nil {
			c.failed(w.Interface, err)
			o = presence.Failed(op, fmt.Errorf("%s %s in %s: %w", pauseVerb(w.Paused), w.Interface, q, explain(err)))
		} else {
			c.mem.set(w.Interface, q, change)
		}
	case presence.OpQueuePenalty:
		change := func(m *presence.QueueMember) { m.Penalty = w.Penalty }
		c.mem.expectChange(w.Interface, q, change)
		_, err := c.send(ctx, ami.QueuePenalty{Queue: q, Interface: w.Interface, Penalty: w.Penalty})
		o = outcome(op, false)
		if err != nil {
			c.failed(w.Interface, err)
			o = presence.Failed(op, fmt.Errorf("queue penalty %d for %s in %s: %w", w.Penalty, w.Interface, q, explain(err)))
		} else {
			c.mem.set(w.Interface, q, change)
		}
	}
	log.Debug("queue op", "op", op.String(), "result", o.Result, "err", o.Error)
	return o
}

// add performs a queue_add op.
func (c *Concern) add(ctx context.Context, log *slog.Logger, op presence.Op) presence.Outcome {
	w, q := op.Member, op.Queue
	added := *w
	added.Membership = presence.MembershipManaged
	added.Reason = reasonOf(w)
	c.mem.expect(w.Interface, q, &added)
	unchanged, err := c.send(ctx, ami.QueueAdd{Queue: q, Interface: w.Interface, MemberName: w.MemberName,
		StateInterface: w.StateInterface, Penalty: w.Penalty, Paused: w.Paused, Reason: reasonOf(w)}, msgAlreadyThere)
	switch {
	case err == nil:
		c.mem.added(w.Interface, q, &added)
		return outcome(op, false)
	case unchanged:
		c.mem.added(w.Interface, q, nil)
		return c.alreadyThere(ctx, log, op)
	default:
		c.failed(w.Interface, err)
		return presence.Failed(op, fmt.Errorf("queue add %s to %s: %w", w.Interface, q, explain(err)))
	}
}

// alreadyThere decides a queue_add that Asterisk answered with "Already there": see Apply.
func (c *Concern) alreadyThere(ctx context.Context, log *slog.Logger, op presence.Op) presence.Outcome {
	w, q := op.Member, op.Queue
	l, err := c.list(ctx, ami.QueueStatus{Queue: q, Member: w.Interface})
	if err != nil {
		return presence.Failed(op, fmt.Errorf("queue add %s to %s: already there, and reading it back failed: %w", w.Interface, q, err))
	}
	var m *ami.QueueMember
	st := ami.ParseQueueStatus(l)
	for i := range st.Members {
		if st.Members[i].Queue == q && strings.EqualFold(st.Members[i].Location, w.Interface) {
			m = &st.Members[i]
		}
	}
	if m == nil {
		return presence.Failed(op, fmt.Errorf("queue add %s to %s: Asterisk says already there, but QueueStatus does not list the member "+
			"under that interface (added with another spelling, or gone again); the next observation decides", w.Interface, q))
	}
	pausedOK := m.Paused == w.Paused && (!w.Paused || m.PausedReason == w.Reason)
	penaltyOK := m.Penalty == w.Penalty || strings.EqualFold(m.Membership, "static")
	if pausedOK && penaltyOK {
		return outcome(op, true)
	}
	log.Info("queue member added by someone else differs; correcting", "queue", q, "interface", w.Interface,
		"paused", m.Paused, "reason", m.PausedReason, "penalty", m.Penalty)
	if !pausedOK {
		if _, err := c.send(ctx, ami.QueuePause{Queue: q, Interface: w.Interface, Paused: w.Paused, Reason: reasonOf(w)}); err != nil {
			return presence.Failed(op, fmt.Errorf("queue add %s to %s: already there with paused=%t (%q); %s: %w",
				w.Interface, q, m.Paused, m.PausedReason, pauseVerb(w.Paused), explain(err)))
		}
	}
	if !penaltyOK {
		if _, err := c.send(ctx, ami.QueuePenalty{Queue: q, Interface: w.Interface, Penalty: w.Penalty}); err != nil {
			return presence.Failed(op, fmt.Errorf("queue add %s to %s: already there with penalty %d; queue penalty %d: %w",
				w.Interface, q, m.Penalty, w.Penalty, explain(err)))
		}
	}
	return outcome(op, false)
}

// failed forgets what the concern knows of iface after an action on it failed with err:
// Asterisk refused it (what the concern knew was wrong, as with "Interface not found"), or it
// is unclear whether Asterisk did it. An action that was never sent changes nothing.
func (c *Concern) failed(iface string, err error) {
	if ami.SafeToRetry(err) || errors.Is(err, ami.ErrInvalidHeader) {
		return
	}
	c.mem.forget(iface)
}

func outcome(op presence.Op, unchanged bool) presence.Outcome {
	if unchanged {
		return presence.Outcome{Op: op, Result: presence.ResultUnchanged}
	}
	return presence.Outcome{Op: op, Result: presence.ResultApplied}
}

// pausing changes a member as pausing it (or not) as want says does.
func pausing(want *presence.QueueMember) func(*presence.QueueMember) {
	return func(m *presence.QueueMember) { m.Paused, m.Reason = want.Paused, reasonOf(want) }
}

// reasonOf is the pause reason to send: only a paused member has one.
func reasonOf(m *presence.QueueMember) string {
	if m.Paused {
		return m.Reason
	}
	return ""
}

func pauseVerb(paused bool) string {
	if paused {
		return "queue pause"
	}
	return "queue unpause"
}

// explain prefixes err with what Asterisk's terse answer means for a queue member.
func explain(err error) error {
	msg, _ := ami.ResponseMessage(err)
	var hint string
	switch {
	case errors.Is(err, ami.ErrPermissionDenied):
		hint = "the AMI user lacks write class agent (manager.conf)"
	case strings.EqualFold(msg, "Member not dynamic"):
		hint = "a static member (queues.conf) cannot be removed over AMI"
	case strings.HasSuffix(msg, "No such queue"):
		hint = "no such queue"
	case strings.EqualFold(msg, "Interface not found"):
		hint = "not a member, or no such queue"
	case strings.EqualFold(msg, "Invalid interface, queuename or penalty"):
		hint = "not a member, no such queue, or an invalid penalty"
	case errors.Is(err, ami.ErrConnClosed):
		hint = "the AMI connection dropped; Asterisk may or may not have done it"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%s: %w", hint, err)
}
