package presence

import (
	"fmt"
	"strings"
)

// Difference is one way the PBX differs from what the user's profile says, in words.
type Difference struct {
	Kind DriftKind `json:"kind"`
	// What names the state, e.g. "queue support" or "do not disturb (astdb DND/1001)".
	What     string `json:"what"`
	Observed string `json:"observed"`
	Desired  string `json:"desired"`
	// Policy is what presenced does about it.
	Policy Policy `json:"policy"`
	Op     Op     `json:"op"`
}

// String reads like "queue support: not paused, the profile says paused (Lunch)".
func (d Difference) String() string {
	return fmt.Sprintf("%s: %s, the profile says %s", d.What, d.Observed, d.Desired)
}

// describe puts op, which would turn have into what the profile wants, into words.
func describe(op Op, have *Target, n Naming, ext string) Difference {
	d := Difference{Kind: KindOf(op.Kind), Op: op}
	member := func(m *QueueMember) string {
		switch {
		case m == nil:
			return "not a member"
		case m.Paused && m.Reason != "":
			return "paused (" + m.Reason + ")"
		case m.Paused:
			return "paused"
		}
		return "not paused"
	}
	quote := func(v *string) string {
		if v == nil {
			return "not set"
		}
		return fmt.Sprintf("%q", *v)
	}
	switch op.Kind {
	case OpQueueAdd:
		d.What, d.Observed, d.Desired = "queue "+op.Queue, "not a member", "member, "+member(op.Member)
	case OpQueueRemove:
		d.What, d.Observed, d.Desired = "queue "+op.Queue, "member", "not a member"
	case OpQueuePause:
		d.What, d.Observed, d.Desired = "queue "+op.Queue, member(have.Queues[op.Queue]), member(op.Member)
	case OpQueuePenalty:
		d.What = "penalty in queue " + op.Queue
		if h := have.Queues[op.Queue]; h != nil {
			d.Observed = fmt.Sprint(h.Penalty)
		}
		d.Desired = fmt.Sprint(op.Member.Penalty)
	case OpDBPut, OpDBDel:
		d.What = n.label(op.Key, ext) + " (astdb " + op.Key + ")"
		d.Observed = quote(have.AstDB[op.Key])
		d.Desired = "not set"
		if op.Kind == OpDBPut {
			d.Desired = fmt.Sprintf("%q", op.Value)
		}
	case OpDeviceState:
		d.What, d.Desired = "lamp "+op.Key, op.Value
		if d.Observed = have.Devices[op.Key]; d.Observed == "" {
			d.Observed = "unknown"
		}
	case OpPresence:
		d.What, d.Observed, d.Desired = "presence "+op.Key, "not set", presenceWords(op.Presence)
		if h := have.Presence[op.Key]; h != nil {
			d.Observed = presenceWords(h)
		}
	case OpGlobal:
		d.What, d.Observed, d.Desired = "global variable "+op.Key, quote(have.Globals[op.Key]), fmt.Sprintf("%q", op.Value)
		if op.Value == "" {
			d.Desired = "not set"
		}
	default:
		d.What, d.Observed, d.Desired = op.String(), "", ""
	}
	return d
}

func presenceWords(p *PresenceValue) string {
	if p.Message != "" {
		return fmt.Sprintf("%s (%s)", strings.ToLower(p.State), p.Message)
	}
	return strings.ToLower(p.State)
}

// label names an astdb key of the user's in words: "do not disturb", "ring list".
func (n Naming) label(key, ext string) string {
	family, rest, _ := strings.Cut(key, "/")
	switch {
	case family == n.DNDFamily && rest == ext:
		return "do not disturb"
	case family == n.ForwardFamily && rest == ext:
		return "call forwarding"
	case family == n.BusyFamily && rest == ext:
		return "forwarding on busy"
	case family == n.NoAnswerFamily && rest == ext:
		return "forwarding on no answer"
	case family == n.ProfileFamily:
		words := map[string]string{
			"active": "active profile", "info": "profile info", "dndtext": "DND text", "dialstring": "ring list",
			"ringmode": "ring mode", "ringtime": "ring time", "noanswer": "no-answer destination",
			"callerid": "caller ID", "location": "location",
		}
		if w, ok := words[strings.TrimPrefix(rest, ext+"/")]; ok {
			return w
		}
		if f, ok := strings.CutPrefix(rest, ext+"/callerid/"); ok {
			return "caller ID from the " + f + " phones"
		}
		if d, ok := n.deviceOfKey(key); ok {
			return "whose phone " + d + " is"
		}
	}
	return "setting"
}
