package ami

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Queue actions (apps/app_queue.c). QueueAdd, QueueRemove, QueuePause and
// QueuePenalty need write class agent; QueueStatus and QueueSummary none.
// Interfaces are matched case-insensitively by Asterisk.

// QueueMemberSpec describes a dynamic queue member to add.
type QueueMemberSpec struct {
	Queue          string // required
	Interface      string // required: the dial location, e.g. "Local/1001@queue-member/n"
	MemberName     string // default: Interface
	StateInterface string // default: Interface; may be "hint:<exten>@<context>"
	Penalty        int    // >= 0
	Paused         bool
	Reason         string // pause reason, used when Paused
}

// QueueAdd is the QueueAdd action; encoded here, as goami would (TestEncodersMatchGoami).
type QueueAdd QueueMemberSpec

// ActionName implements [Action].
func (QueueAdd) ActionName() string { return "QueueAdd" }

// ActionHeaders implements [Action].
func (a QueueAdd) ActionHeaders() ([]Header, error) {
	if err := require("QueueAdd", "Queue", a.Queue, "Interface", a.Interface); err != nil {
		return nil, err
	}
	if err := checkValues("QueueAdd", "Queue", a.Queue, "Interface", a.Interface, "MemberName", a.MemberName,
		"StateInterface", a.StateInterface, "Reason", a.Reason); err != nil {
		return nil, err
	}
	if a.Penalty < 0 {
		return nil, fmt.Errorf("%w: QueueAdd: Penalty must not be negative, got %d", ErrInvalidHeader, a.Penalty)
	}
	return headers("Queue", a.Queue, "Interface", a.Interface, "Penalty", strconv.Itoa(a.Penalty),
		"Paused", boolString(a.Paused), "?MemberName", a.MemberName, "?StateInterface", a.StateInterface,
		"?Reason", a.Reason), nil
}

// QueueAdd adds a dynamic member to a queue. A member that is already
// there gives a *ResponseError with Asterisk's "Unable to add interface:
// Already there".
func (c *Client) QueueAdd(ctx context.Context, m QueueMemberSpec) error {
	if _, err := c.Do(ctx, QueueAdd(m)); err != nil {
		return fmt.Errorf("ami: queue add %s to %s: %w", m.Interface, m.Queue, err)
	}
	return nil
}

// QueueRemove is the QueueRemove action; encoded here, as goami would (TestEncodersMatchGoami).
type QueueRemove struct {
	Queue, Interface string
}

// ActionName implements [Action].
func (QueueRemove) ActionName() string { return "QueueRemove" }

// ActionHeaders implements [Action].
func (a QueueRemove) ActionHeaders() ([]Header, error) {
	if err := require("QueueRemove", "Queue", a.Queue, "Interface", a.Interface); err != nil {
		return nil, err
	}
	if err := checkValues("QueueRemove", "Queue", a.Queue, "Interface", a.Interface); err != nil {
		return nil, err
	}
	return headers("Queue", a.Queue, "Interface", a.Interface), nil
}

// QueueRemove removes a dynamic member from a queue. Asterisk answers
// "Unable to remove interface: Not there" for a non-member and "Member not
// dynamic" for one from queues.conf.
func (c *Client) QueueRemove(ctx context.Context, iface, queue string) error {
	if _, err := c.Do(ctx, QueueRemove{Queue: queue, Interface: iface}); err != nil {
		return fmt.Errorf("ami: queue remove %s from %s: %w", iface, queue, err)
	}
	return nil
}

// QueuePause is the QueuePause action; encoded here, as goami would (TestEncodersMatchGoami). Queue "" pauses
// or unpauses the interface in every queue it is a member of.
type QueuePause struct {
	Queue     string
	Interface string
	Paused    bool
	Reason    string
}

// ActionName implements [Action].
func (QueuePause) ActionName() string { return "QueuePause" }

// ActionHeaders implements [Action].
func (a QueuePause) ActionHeaders() ([]Header, error) {
	if err := require("QueuePause", "Interface", a.Interface); err != nil {
		return nil, err
	}
	if err := checkValues("QueuePause", "Queue", a.Queue, "Interface", a.Interface, "Reason", a.Reason); err != nil {
		return nil, err
	}
	return headers("?Queue", a.Queue, "Interface", a.Interface, "Paused", boolString(a.Paused), "?Reason", a.Reason), nil
}

// QueuePause pauses or unpauses iface in queue ("" = all its queues).
// Pausing a paused member succeeds. Unknown queue or member: "Interface
// not found".
func (c *Client) QueuePause(ctx context.Context, iface, queue string, paused bool, reason string) error {
	if _, err := c.Do(ctx, QueuePause{Queue: queue, Interface: iface, Paused: paused, Reason: reason}); err != nil {
		verb := "unpause"
		if paused {
			verb = "pause"
		}
		return fmt.Errorf("ami: queue %s %s in %s: %w", verb, iface, queueOrAll(queue), err)
	}
	return nil
}

func queueOrAll(q string) string {
	if q == "" {
		return "all queues"
	}
	return q
}

// QueuePenalty is the QueuePenalty action; encoded here, as goami would (TestEncodersMatchGoami). Queue ""
// sets the penalty in every queue.
type QueuePenalty struct {
	Queue     string
	Interface string
	Penalty   int
}

// ActionName implements [Action].
func (QueuePenalty) ActionName() string { return "QueuePenalty" }

// ActionHeaders implements [Action].
func (a QueuePenalty) ActionHeaders() ([]Header, error) {
	if err := require("QueuePenalty", "Interface", a.Interface); err != nil {
		return nil, err
	}
	if err := checkValues("QueuePenalty", "Queue", a.Queue, "Interface", a.Interface); err != nil {
		return nil, err
	}
	return headers("?Queue", a.Queue, "Interface", a.Interface, "Penalty", strconv.Itoa(a.Penalty)), nil
}

// QueuePenalty sets iface's penalty in queue ("" = all its queues).
// Unknown member: "Invalid interface, queuename or penalty".
func (c *Client) QueuePenalty(ctx context.Context, iface, queue string, penalty int) error {
	if _, err := c.Do(ctx, QueuePenalty{Queue: queue, Interface: iface, Penalty: penalty}); err != nil {
		return fmt.Errorf("ami: queue penalty %d for %s in %s: %w", penalty, iface, queueOrAll(queue), err)
	}
	return nil
}

// QueueStatus is the QueueStatus list action. Queue "" lists every queue;
// Member (optional) matches a member's Interface or MemberName exactly.
// Encoded here: goami's QueueStatus reads one response and leaves the list
// in the socket, and its QueueStatuses drops QueueParams.
type QueueStatus struct {
	Queue, Member string
}

// ActionName implements [Action].
func (QueueStatus) ActionName() string { return "QueueStatus" }

// ActionHeaders implements [Action].
func (a QueueStatus) ActionHeaders() ([]Header, error) {
	if err := checkValues("QueueStatus", "Queue", a.Queue, "Member", a.Member); err != nil {
		return nil, err
	}
	return headers("?Queue", a.Queue, "?Member", a.Member), nil
}

// QueueStatusResult is the whole QueueStatus reply.
type QueueStatusResult struct {
	Params  []QueueParams
	Members []QueueMember
	Entries []QueueEntry
}

// QueueParams is one QueueParams event: a queue's settings and counters.
type QueueParams struct {
	Queue             string
	Max               int
	Strategy          string
	Calls             int
	Holdtime          int // seconds
	TalkTime          int // seconds
	Completed         int
	Abandoned         int
	ServiceLevel      int
	ServicelevelPerf  float64
	ServicelevelPerf2 float64
	Weight            int
	Raw               *Message
}

// QueueMember is one QueueMember event of a QueueStatus reply. Note the
// field names: this event says Name and Location where the QueueMember*
// events say MemberName and Interface.
type QueueMember struct {
	Queue          string
	Name           string // member name
	Location       string // interface
	StateInterface string
	Membership     string // "dynamic" or "static" (realtime members show as static)
	Penalty        int
	CallsTaken     int
	LastCall       time.Time // zero if never
	LastPause      time.Time // zero if never; reset when members are restored at start
	LoginTime      time.Time // reset when members are restored at start
	InCall         bool
	Status         DeviceStatus
	Paused         bool
	PausedReason   string
	Wrapuptime     int // seconds
	Raw            *Message
}

// QueueEntry is one QueueEntry event: a caller waiting in a queue.
type QueueEntry struct {
	Queue             string
	Position          int
	Channel           string
	Uniqueid          string
	CallerIDNum       string
	CallerIDName      string
	ConnectedLineNum  string
	ConnectedLineName string
	Wait              time.Duration
	Priority          int
	Raw               *Message
}

// ParseQueueStatus turns a QueueStatus list into typed results. Items of
// other event types are ignored.
func ParseQueueStatus(l *List) *QueueStatusResult {
	r := &QueueStatusResult{Members: make([]QueueMember, 0, len(l.Items))}
	for _, m := range l.Items {
		switch {
		case equalFold(m.Event(), "QueueParams"):
			r.Params = append(r.Params, QueueParams{
				Queue:             m.Get("Queue"),
				Max:               fieldInt(m, "Max"),
				Strategy:          m.Get("Strategy"),
				Calls:             fieldInt(m, "Calls"),
				Holdtime:          fieldInt(m, "Holdtime"),
				TalkTime:          fieldInt(m, "TalkTime"),
				Completed:         fieldInt(m, "Completed"),
				Abandoned:         fieldInt(m, "Abandoned"),
				ServiceLevel:      fieldInt(m, "ServiceLevel"),
				ServicelevelPerf:  fieldFloat(m, "ServicelevelPerf"),
				ServicelevelPerf2: fieldFloat(m, "ServicelevelPerf2"),
				Weight:            fieldInt(m, "Weight"),
				Raw:               m,
			})
		case equalFold(m.Event(), "QueueMember"):
			r.Members = append(r.Members, QueueMember{
				Queue:          m.Get("Queue"),
				Name:           m.Get("Name"),
				Location:       m.Get("Location"),
				StateInterface: m.Get("StateInterface"),
				Membership:     m.Get("Membership"),
				Penalty:        fieldInt(m, "Penalty"),
				CallsTaken:     fieldInt(m, "CallsTaken"),
				LastCall:       fieldUnix(m, "LastCall"),
				LastPause:      fieldUnix(m, "LastPause"),
				LoginTime:      fieldUnix(m, "LoginTime"),
				InCall:         fieldBool(m, "InCall"),
				Status:         DeviceStatus(fieldInt(m, "Status")),
				Paused:         fieldBool(m, "Paused"),
				PausedReason:   m.Get("PausedReason"),
				Wrapuptime:     fieldInt(m, "Wrapuptime"),
				Raw:            m,
			})
		case equalFold(m.Event(), "QueueEntry"):
			r.Entries = append(r.Entries, QueueEntry{
				Queue:             m.Get("Queue"),
				Position:          fieldInt(m, "Position"),
				Channel:           m.Get("Channel"),
				Uniqueid:          m.Get("Uniqueid"),
				CallerIDNum:       m.Get("CallerIDNum"),
				CallerIDName:      m.Get("CallerIDName"),
				ConnectedLineNum:  m.Get("ConnectedLineNum"),
				ConnectedLineName: m.Get("ConnectedLineName"),
				Wait:              fieldSeconds(m, "Wait"),
				Priority:          fieldInt(m, "Priority"),
				Raw:               m,
			})
		}
	}
	return r
}

// QueueStatus lists queue parameters, members and waiting callers. queue
// "" means every queue; member "" means every member. An unknown queue
// gives an empty result, not an error.
func (c *Client) QueueStatus(ctx context.Context, queue, member string) (*QueueStatusResult, error) {
	l, err := c.List(ctx, QueueStatus{Queue: queue, Member: member})
	if err != nil {
		return nil, fmt.Errorf("ami: queue status of %s: %w", queueOrAll(queue), err)
	}
	return ParseQueueStatus(l), nil
}

// QueueSummary is the QueueSummary list action. Encoded here: goami's
// QueueSummary is a list helper that swallows errors.
type QueueSummary struct {
	Queue string // "" = every queue
}

// ActionName implements [Action].
func (QueueSummary) ActionName() string { return "QueueSummary" }

// ActionHeaders implements [Action].
func (a QueueSummary) ActionHeaders() ([]Header, error) {
	if err := checkValues("QueueSummary", "Queue", a.Queue); err != nil {
		return nil, err
	}
	return headers("?Queue", a.Queue), nil
}

// QueueSummaryEntry is one QueueSummary event. LoggedIn counts members
// whose device is not UNAVAILABLE or INVALID; Available additionally
// requires them not paused and free.
type QueueSummaryEntry struct {
	Queue           string
	LoggedIn        int
	Available       int
	Callers         int
	HoldTime        int // seconds
	TalkTime        int // seconds
	LongestHoldTime int // seconds
	Raw             *Message
}

// QueueSummary returns one summary per queue (queue "" = every queue).
func (c *Client) QueueSummary(ctx context.Context, queue string) ([]QueueSummaryEntry, error) {
	l, err := c.List(ctx, QueueSummary{Queue: queue})
	if err != nil {
		return nil, fmt.Errorf("ami: queue summary of %s: %w", queueOrAll(queue), err)
	}
	var out []QueueSummaryEntry
	for _, m := range l.Items {
		if !equalFold(m.Event(), "QueueSummary") {
			continue
		}
		out = append(out, QueueSummaryEntry{
			Queue:           m.Get("Queue"),
			LoggedIn:        fieldInt(m, "LoggedIn"),
			Available:       fieldInt(m, "Available"),
			Callers:         fieldInt(m, "Callers"),
			HoldTime:        fieldInt(m, "HoldTime"),
			TalkTime:        fieldInt(m, "TalkTime"),
			LongestHoldTime: fieldInt(m, "LongestHoldTime"),
			Raw:             m,
		})
	}
	return out, nil
}

// DeviceStatus is Asterisk's numeric device state (enum ast_device_state),
// as in QueueMember's Status.
type DeviceStatus int

// Device states.
const (
	DeviceUnknown     DeviceStatus = 0
	DeviceNotInUse    DeviceStatus = 1
	DeviceInUse       DeviceStatus = 2
	DeviceBusy        DeviceStatus = 3
	DeviceInvalid     DeviceStatus = 4
	DeviceUnavailable DeviceStatus = 5
	DeviceRinging     DeviceStatus = 6
	DeviceRingInUse   DeviceStatus = 7
	DeviceOnHold      DeviceStatus = 8
)

// deviceStatusNames returns the names of the device states, by value.
func deviceStatusNames() [9]string {
	return [...]string{"UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"}
}

// String returns the state's name as Asterisk spells it, e.g. "NOT_INUSE".
func (s DeviceStatus) String() string {
	names := deviceStatusNames()
	if s >= 0 && int(s) < len(names) {
		return names[s]
	}
	return "DeviceStatus(" + strconv.Itoa(int(s)) + ")"
}
