package presence

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// OpKind is a kind of change to the PBX.
type OpKind string

// The operations a plan is made of. Each concern applies some of them.
const (
	OpQueueAdd     OpKind = "queue_add"     // join a queue (already paused, with reason, when so desired)
	OpQueueRemove  OpKind = "queue_remove"  // leave a queue
	OpQueuePause   OpKind = "queue_pause"   // pause or unpause in a queue
	OpQueuePenalty OpKind = "queue_penalty" // change the penalty in a queue
	OpDBPut        OpKind = "db_put"        // write an astdb key
	OpDBDel        OpKind = "db_del"        // delete an astdb key
	OpDeviceState  OpKind = "device_state"  // set a Custom: lamp
	OpPresence     OpKind = "presence"      // set a CustomPresence: state
	OpGlobal       OpKind = "global"        // set (or clear, with "") a global variable
	OpWebhook      OpKind = "webhook"       // call a webhook
)

// ChangesPBX reports whether operations of kind k change the PBX: all but webhooks, which tell
// others what was done. A pass applies webhooks after the rest, and a failed webhook leaves the
// PBX in sync and is not retried.
func (k OpKind) ChangesPBX() bool { return k != OpWebhook }

// Op is one change to the PBX.
type Op struct {
	Kind OpKind `json:"kind"`
	// Queue and Member, for queue operations.
	Queue  string       `json:"queue,omitempty"`
	Member *QueueMember `json:"member,omitempty"`
	// Key is the astdb "FAMILY/key", the device, the presence provider or the global's name.
	Key string `json:"key,omitempty"`
	// Value is the value written (astdb, device state, global).
	Value    string         `json:"value,omitempty"`
	Presence *PresenceValue `json:"presence,omitempty"`
	Webhook  *Webhook       `json:"webhook,omitempty"`
	// Event is the switch a webhook reports.
	Event *SwitchEvent `json:"event,omitempty"`
}

// String describes the operation, e.g. "queue_pause support Local/1001@presenced-queue-member/n paused (Lunch)".
func (o Op) String() string {
	switch o.Kind {
	case OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty:
		s := fmt.Sprintf("%s %s %s", o.Kind, o.Queue, o.Member.Interface)
		switch o.Kind {
		case OpQueueAdd, OpQueuePause:
			if o.Member.Paused {
				s += " paused (" + o.Member.Reason + ")"
			} else if o.Kind == OpQueuePause {
				s += " unpaused"
			}
		case OpQueuePenalty:
			s += fmt.Sprintf(" penalty %d", o.Member.Penalty)
		}
		return s
	case OpDBDel:
		return fmt.Sprintf("%s %s", o.Kind, o.Key)
	case OpPresence:
		return fmt.Sprintf("%s %s %s %q", o.Kind, o.Key, o.Presence.State, o.Presence.Message)
	case OpWebhook:
		return fmt.Sprintf("%s %s", o.Kind, o.Webhook.URL)
	}
	return fmt.Sprintf("%s %s=%q", o.Kind, o.Key, o.Value)
}

// Plan lists the operations that turn have into want, in a deterministic order: queues, astdb,
// lamps, presence, globals, each sorted by name. It is empty when the two agree. Plan is pure.
func Plan(want *Desired, have *Target) []Op {
	var ops []Op
	for _, q := range slices.Sorted(maps.Keys(want.Queues)) {
		w, h := want.Queues[q], have.Queues[q]
		switch {
		case w == nil && h == nil:
		case w == nil:
			if h.Membership != MembershipStatic {
				ops = append(ops, Op{Kind: OpQueueRemove, Queue: q, Member: h})
			}
		case h == nil:
			if w.Membership != MembershipOptional {
				ops = append(ops, Op{Kind: OpQueueAdd, Queue: q, Member: w})
			}
		default:
			if w.Paused != h.Paused || (w.Paused && w.Reason != h.Reason) {
				ops = append(ops, Op{Kind: OpQueuePause, Queue: q, Member: w})
			}
			if w.Penalty != h.Penalty && h.Membership != MembershipStatic {
				ops = append(ops, Op{Kind: OpQueuePenalty, Queue: q, Member: w})
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want.AstDB)) {
		w, h := want.AstDB[k], have.AstDB[k]
		if mine, claim := want.Claims[k]; claim {
			switch {
			case w != nil && h == nil:
				ops = append(ops, Op{Kind: OpDBPut, Key: k, Value: *w})
			case w == nil && h != nil && *h == mine:
				ops = append(ops, Op{Kind: OpDBDel, Key: k})
			}
			continue
		}
		switch {
		case w == nil && h != nil:
			ops = append(ops, Op{Kind: OpDBDel, Key: k})
		case w != nil && (h == nil || *h != *w):
			ops = append(ops, Op{Kind: OpDBPut, Key: k, Value: *w})
		}
	}
	for _, d := range slices.Sorted(maps.Keys(want.Devices)) {
		if w := want.Devices[d]; !strings.EqualFold(w, have.Devices[d]) {
			ops = append(ops, Op{Kind: OpDeviceState, Key: d, Value: w})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(want.Presence)) {
		w, h := want.Presence[p], have.Presence[p]
		if w == nil {
			continue // presence cannot be removed, only set
		}
		if h == nil || !strings.EqualFold(w.State, h.State) || w.Message != h.Message {
			ops = append(ops, Op{Kind: OpPresence, Key: p, Presence: w})
		}
	}
	for _, g := range slices.Sorted(maps.Keys(want.Globals)) {
		w, h := deref(want.Globals[g]), deref(have.Globals[g])
		if w != h {
			ops = append(ops, Op{Kind: OpGlobal, Key: g, Value: w})
		}
	}
	return ops
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
