package ami

// QueueMemberEvent is the body shared by the QueueMemberAdded,
// QueueMemberRemoved, QueueMemberPause, QueueMemberPenalty,
// QueueMemberRinginuse and QueueMemberStatus events (class agent). Unlike
// QueueStatus's QueueMember items they name the member MemberName and
// Interface, and they carry Ringinuse.
type QueueMemberEvent struct {
	Event          string // which of the QueueMember* events
	Queue          string
	MemberName     string
	Interface      string
	StateInterface string
	Membership     string // dynamic, realtime or static
	Penalty        int
	CallsTaken     int
	InCall         bool
	Status         DeviceStatus
	Paused         bool
	PausedReason   string
	Ringinuse      bool
	Wrapuptime     int
	Raw            *Message
}

// ParseQueueMemberEvent reads a QueueMember* event. ok is false for other
// events.
func ParseQueueMemberEvent(m *Message) (ev QueueMemberEvent, ok bool) {
	name := m.Event()
	switch {
	case equalFold(name, "QueueMemberAdded"), equalFold(name, "QueueMemberRemoved"),
		equalFold(name, "QueueMemberPause"), equalFold(name, "QueueMemberPenalty"),
		equalFold(name, "QueueMemberRinginuse"), equalFold(name, "QueueMemberStatus"):
	default:
		return QueueMemberEvent{}, false
	}
	return QueueMemberEvent{
		Event:          name,
		Queue:          m.Get("Queue"),
		MemberName:     m.Get("MemberName"),
		Interface:      m.Get("Interface"),
		StateInterface: m.Get("StateInterface"),
		Membership:     m.Get("Membership"),
		Penalty:        fieldInt(m, "Penalty"),
		CallsTaken:     fieldInt(m, "CallsTaken"),
		InCall:         fieldBool(m, "InCall"),
		Status:         DeviceStatus(fieldInt(m, "Status")),
		Paused:         fieldBool(m, "Paused"),
		PausedReason:   m.Get("PausedReason"),
		Ringinuse:      fieldBool(m, "Ringinuse"),
		Wrapuptime:     fieldInt(m, "Wrapuptime"),
		Raw:            m,
	}, true
}
