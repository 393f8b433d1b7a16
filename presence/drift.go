package presence

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DriftKind is a kind of PBX state, for the drift policy and the drift metrics.
type DriftKind string

// The kinds of state presenced manages.
const (
	DriftQueueMembership DriftKind = "queue_membership" // in a queue or not
	DriftQueuePause      DriftKind = "queue_pause"      // paused (and why) or not
	DriftQueuePenalty    DriftKind = "queue_penalty"    // the member's penalty
	DriftAstDB           DriftKind = "astdb"            // DND, forwarding, ring list, caller ID... (astdb keys)
	DriftLamp            DriftKind = "lamp"             // Custom: device states (BLF lamps)
	DriftPresence        DriftKind = "presence"         // CustomPresence: states
	DriftGlobal          DriftKind = "global"           // global variables

	// DriftDND is the user's DND as the dialplan and the phones see it: the astdb key
	// DND/<ext> and the lamp Custom:DND<ext>. It is a kind of its own only for the policy
	// (reconcile.policy.dnd); unset, those two follow the astdb and lamp policies, and the
	// drift metrics count them as astdb and lamp.
	DriftDND DriftKind = "dnd"
)

// DriftKinds lists every kind, in a stable order.
func DriftKinds() []DriftKind {
	return []DriftKind{DriftQueueMembership, DriftQueuePause, DriftQueuePenalty, DriftAstDB, DriftLamp, DriftPresence, DriftGlobal}
}

// KindOf says which kind of state an operation changes; "" for operations that are effects,
// not state (webhooks).
func KindOf(k OpKind) DriftKind {
	switch k {
	case OpQueueAdd, OpQueueRemove:
		return DriftQueueMembership
	case OpQueuePause:
		return DriftQueuePause
	case OpQueuePenalty:
		return DriftQueuePenalty
	case OpDBPut, OpDBDel:
		return DriftAstDB
	case OpDeviceState:
		return DriftLamp
	case OpPresence:
		return DriftPresence
	case OpGlobal:
		return DriftGlobal
	}
	return ""
}

// Policy is what presenced does about drift of one kind: state on the PBX that differs from
// what the user's profile says, changed by someone else.
type Policy string

// The policies.
const (
	// PolicyEnforce puts the profile's value back (the default).
	PolicyEnforce Policy = "enforce"
	// PolicyReport leaves the PBX alone and warns: the user's status shows "your device status
	// does not match your profile", and a reconcile puts the profile's value back on request.
	PolicyReport Policy = "report"
	// PolicyAdopt accepts the PBX's value as the user's desired state until their next switch.
	PolicyAdopt Policy = "adopt"
	// PolicySwitch, for the kind dnd only, turns a change of the user's DND on the PBX (the DND
	// key of their phone) into a profile switch: DND on to their DND profile, DND off back to
	// the profile before (EngineOptions.DNDKey).
	PolicySwitch Policy = "switch"
)

// Policies maps kinds of state to their policy; a kind not named is enforced.
type Policies map[DriftKind]Policy

// Of returns the policy for kind k.
func (p Policies) Of(k DriftKind) Policy {
	if pol, ok := p[k]; ok && pol != "" {
		return pol
	}
	return PolicyEnforce
}

// Validate names every unknown kind and policy.
func (p Policies) Validate() error {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if !slices.Contains(DriftKinds(), k) && k != DriftDND {
			bad = append(bad, fmt.Sprintf("unknown kind of state %q (known: %s, %s)", k, joinKinds(), DriftDND))
			continue
		}
		switch p[k] {
		case PolicyEnforce, PolicyReport, PolicyAdopt, "":
		case PolicySwitch:
			if k != DriftDND {
				bad = append(bad, fmt.Sprintf("%s: policy switch is only for dnd (enforce, report or adopt)", k))
			}
		default:
			if k == DriftDND {
				bad = append(bad, fmt.Sprintf("%s: unknown policy %q (enforce, report, adopt or switch)", k, p[k]))
			} else {
				bad = append(bad, fmt.Sprintf("%s: unknown policy %q (enforce, report or adopt)", k, p[k]))
			}
		}
	}
	if bad != nil {
		return fmt.Errorf("presence: drift policy: %s", strings.Join(bad, "; "))
	}
	return nil
}

func joinKinds() string {
	var s []string
	for _, k := range DriftKinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

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

// DialstringKey is the astdb key of the user's ring list ("PROFILE/<ext>/dialstring").
func (n Naming) DialstringKey(u *User) string {
	return n.ProfileFamily + "/" + u.Extension + "/dialstring"
}

// adopt records in adopted the PBX's value of what op would change, so that the desired state
// accepts it.
func adopt(adopted *Target, op Op, have *Target) {
	switch op.Kind {
	case OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty:
		var m *QueueMember
		if h := have.Queues[op.Queue]; h != nil {
			c := *h
			m = &c
		}
		adopted.Queues[op.Queue] = m
	case OpDBPut, OpDBDel:
		adopted.AstDB[op.Key] = have.AstDB[op.Key]
	case OpDeviceState:
		adopted.Devices[op.Key] = have.Devices[op.Key]
	case OpPresence:
		adopted.Presence[op.Key] = have.Presence[op.Key]
	case OpGlobal:
		adopted.Globals[op.Key] = have.Globals[op.Key]
	}
}

// overlayInto copies every entry of src into dst.
func overlayInto(dst, src *Target) {
	maps.Copy(dst.Queues, src.Queues)
	maps.Copy(dst.AstDB, src.AstDB)
	maps.Copy(dst.Devices, src.Devices)
	maps.Copy(dst.Presence, src.Presence)
	maps.Copy(dst.Globals, src.Globals)
}

// overlay replaces in want what adopted names: the PBX values the user's desired state
// accepted under the adopt policy.
func overlay(want, adopted *Target) {
	if adopted == nil {
		return
	}
	for q, m := range adopted.Queues {
		if _, ok := want.Queues[q]; ok {
			want.Queues[q] = m
		}
	}
	for k, v := range adopted.AstDB {
		if _, ok := want.AstDB[k]; ok {
			want.AstDB[k] = v
		}
	}
	for k, v := range adopted.Devices {
		if _, ok := want.Devices[k]; ok {
			want.Devices[k] = v
		}
	}
	for k, v := range adopted.Presence {
		if _, ok := want.Presence[k]; ok && v != nil {
			want.Presence[k] = v
		}
	}
	for k, v := range adopted.Globals {
		if _, ok := want.Globals[k]; ok {
			want.Globals[k] = v
		}
	}
}

// Warning is something the user should know about their presence, in the words of the
// classic desk-phone managers, with what it is about.
type Warning struct {
	// Code is "status_mismatch" or "device_will_not_ring".
	Code    string `json:"code"`
	Message string `json:"message"`
	// Differences, for status_mismatch: what differs.
	Differences []Difference `json:"differences,omitempty"`
	// Devices, for device_will_not_ring: the devices in use that the profile does not ring.
	Devices []string `json:"devices,omitempty"`
}

// The warning codes.
const (
	WarningStatusMismatch = "status_mismatch"
	WarningWillNotRing    = "device_will_not_ring"
)

func mismatchWarning(diffs []Difference) Warning {
	parts := make([]string, len(diffs))
	for i, d := range diffs {
		parts[i] = d.String()
	}
	return Warning{Code: WarningStatusMismatch, Differences: diffs,
		Message: "Your device status does not match your profile: " + strings.Join(parts, "; ") +
			". A reconcile puts your profile's settings back."}
}

func willNotRingWarning(devices []string) Warning {
	return Warning{Code: WarningWillNotRing, Devices: devices,
		Message: "The device you use will not ring in this profile: " + strings.Join(devices, ", ") +
			". If it should ring, edit the profile or choose another one."}
}

// DeviceStates tells the engine the state of the users' own devices (PJSIP/1001...), as the
// PBX last reported them, so that it can tell who is on a call and which device is in use.
type DeviceStates interface {
	// DeviceState returns the device's state as Asterisk names it (NOT_INUSE, INUSE, BUSY,
	// RINGING, ONHOLD, UNAVAILABLE...), upper case, or "" when it is not known.
	DeviceState(device string) string
}

// onCall reports whether one of the user's devices is in a call, and which.
func onCall(ds DeviceStates, u *User) (string, bool) {
	if ds == nil {
		return "", false
	}
	for _, d := range u.Devices {
		switch ds.DeviceState(d.Dial) {
		case "INUSE", "BUSY", "ONHOLD", "RINGINUSE":
			return d.Dial, true
		}
	}
	return "", false
}

// phones are the known states of the user's devices.
func phones(ds DeviceStates, u *User) map[string]string {
	if ds == nil {
		return nil
	}
	var out map[string]string
	for _, d := range u.Devices {
		if s := ds.DeviceState(d.Dial); s != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[d.Dial] = s
		}
	}
	return out
}

// online lists the user's devices that are reachable (registered, in use or idle).
func online(ds DeviceStates, u *User) []string {
	if ds == nil {
		return nil
	}
	var out []string
	for _, d := range u.Devices {
		switch ds.DeviceState(d.Dial) {
		case "", "UNKNOWN", "UNAVAILABLE", "INVALID":
		default:
			out = append(out, d.Dial)
		}
	}
	return out
}

// Rings lists what a call to the user rings in the desired state want, as the shipped dialplan
// decides (deploy/asterisk/extensions_presenced.conf, presenced-dial and presenced-ring): the
// ring list (PROFILE/<ext>/dialstring, its steps split by "|", its devices by "&"; without one
// PJSIP/<ext>) and the hot-desk location. With DND or an unconditional forward nothing of the
// user's rings: nil, and why ("dnd", "forward"). It is pure.
func Rings(want *Target, n Naming, u *User) (devices []string, none string) {
	if dnd := want.AstDB[n.DNDFamily+"/"+u.Extension]; dnd != nil && *dnd == "YES" {
		return nil, "dnd"
	}
	if cf := want.AstDB[n.ForwardFamily+"/"+u.Extension]; cf != nil && *cf != "" {
		return nil, "forward"
	}
	list := "PJSIP/" + u.Extension
	if ds := want.AstDB[n.DialstringKey(u)]; ds != nil && *ds != "" {
		list = *ds
	}
	if loc := want.AstDB[n.ProfileFamily+"/"+u.Extension+"/location"]; loc != nil && *loc != "" {
		list += "&" + *loc
	}
	return strings.FieldsFunc(list, func(r rune) bool { return r == '&' || r == '|' }), ""
}

// notRinging returns which of devices a call to the user will not ring (Rings); nil when the
// profile sets DND or an unconditional forward: then nothing of the user's rings, on purpose.
func notRinging(want *Target, n Naming, u *User, devices []string) []string {
	ringing, none := Rings(want, n, u)
	if none != "" {
		return nil
	}
	var out []string
	for _, d := range devices {
		if !slices.ContainsFunc(ringing, func(r string) bool { return strings.EqualFold(r, d) }) {
			out = append(out, d)
		}
	}
	return out
}

// PhoneStates are DeviceStates that can be forgotten and read again (callstate.Phones): after
// Asterisk became ready, what the events said before may be stale (a restart ends every call).
type PhoneStates interface {
	DeviceStates
	Reset()
	Reload(ctx context.Context) error
}
