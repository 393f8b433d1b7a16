package presence

import (
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

// Validate names every unknown kind and policy, as a *ValidationError (wrapped) whose
// problems each start with the kind: `queue_pause: "ignore" is not enforce, report or adopt`.
// A kind named must have a policy, but dnd, which may be empty (as astdb and lamp). Known
// kinds come in the order of DriftKinds, then dnd, then the unknown ones, sorted.
func (p Policies) Validate() error {
	var bad problems
	for _, k := range append(DriftKinds(), DriftDND) {
		pol, named := p[k]
		switch {
		case !named:
		case k == DriftDND:
			switch pol {
			case "", PolicyEnforce, PolicyReport, PolicyAdopt, PolicySwitch:
			default:
				bad.add(string(k), "%q is not enforce, report, adopt or switch (empty: as astdb and lamp)", pol)
			}
		default:
			switch pol {
			case PolicyEnforce, PolicyReport, PolicyAdopt:
			case PolicySwitch:
				bad.add(string(k), "%q is not enforce, report or adopt (switch is only for dnd)", pol)
			default:
				bad.add(string(k), "%q is not enforce, report or adopt", pol)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if !slices.Contains(DriftKinds(), k) && k != DriftDND {
			bad.add(string(k), "unknown kind of state %q (known: %s, %s)", k, joinKinds(), DriftDND)
		}
	}
	if err := bad.err(); err != nil {
		return fmt.Errorf("presence: drift policy: %w", err)
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
