package ami

import (
	"context"
	"fmt"

	goami "github.com/heltonmarx/goami/ami"
)

// Extension (hint), device and presence state actions. All need write
// class call or reporting. DeviceStateList needs res_manager_devicestate,
// PresenceStateList res_manager_presencestate.

// ExtensionState is the ExtensionState action; encoded by goami. Context
// "" means Asterisk's "default".
type ExtensionState struct {
	Exten, Context string
}

// ActionName implements [Action].
func (ExtensionState) ActionName() string { return "ExtensionState" }

// ActionHeaders implements [Action].
func (a ExtensionState) ActionHeaders() ([]Header, error) {
	if err := require("ExtensionState", "Exten", a.Exten); err != nil {
		return nil, err
	}
	if err := checkValues("ExtensionState", "Exten", a.Exten, "Context", a.Context); err != nil {
		return nil, err
	}
	return viaGoami("ExtensionState", func(ctx context.Context, c goami.Client) error {
		return one(goami.ExtensionState(ctx, c, "", a.Exten, a.Context))
	})
}

// ExtensionStatus is the state of a hint: the ExtensionState reply, an
// ExtensionStateList item or an ExtensionStatus event.
type ExtensionStatus struct {
	Exten   string
	Context string
	Hint    string // "" if the extension has no hint
	// Status: -2 removed, -1 no hint / hint removed, 0 Idle, 1 InUse,
	// 2 Busy, 4 Unavailable, 8 Ringing, 9 InUse&Ringing, 16 Hold,
	// 17 InUse&Hold.
	Status     int
	StatusText string
	Raw        *Message
}

// ParseExtensionStatus reads an ExtensionState reply, ExtensionStatus
// event or ExtensionStateList item.
func ParseExtensionStatus(m *Message) ExtensionStatus {
	return ExtensionStatus{
		Exten:      m.Get("Exten"),
		Context:    m.Get("Context"),
		Hint:       m.Get("Hint"),
		Status:     fieldInt(m, "Status"),
		StatusText: m.Get("StatusText"),
		Raw:        m,
	}
}

// ExtensionState returns the state of the hint exten@context. An
// extension without a hint gives Status -1 and no error.
func (c *Client) ExtensionState(ctx context.Context, exten, context string) (ExtensionStatus, error) {
	m, err := c.Do(ctx, ExtensionState{Exten: exten, Context: context})
	if err != nil {
		return ExtensionStatus{}, fmt.Errorf("ami: extension state %s@%s: %w", exten, context, err)
	}
	return ParseExtensionStatus(m), nil
}

// ExtensionStateList is the ExtensionStateList list action; encoded by
// goami.
type ExtensionStateList struct{}

// ActionName implements [Action].
func (ExtensionStateList) ActionName() string { return "ExtensionStateList" }

// ActionHeaders implements [Action].
func (ExtensionStateList) ActionHeaders() ([]Header, error) {
	return viaGoami("ExtensionStateList", func(ctx context.Context, c goami.Client) error {
		return many(goami.ExtensionStateList(ctx, c, ""))
	})
}

// ExtensionStateList returns the state of every (non-pattern) hint.
func (c *Client) ExtensionStateList(ctx context.Context) ([]ExtensionStatus, error) {
	l, err := c.List(ctx, ExtensionStateList{})
	if err != nil {
		return nil, fmt.Errorf("ami: extension state list: %w", err)
	}
	var out []ExtensionStatus
	for _, m := range l.Items {
		if equalFold(m.Event(), "ExtensionStatus") {
			out = append(out, ParseExtensionStatus(m))
		}
	}
	return out, nil
}

// DeviceStateList is the DeviceStateList list action; encoded by goami.
type DeviceStateList struct{}

// ActionName implements [Action].
func (DeviceStateList) ActionName() string { return "DeviceStateList" }

// ActionHeaders implements [Action].
func (DeviceStateList) ActionHeaders() ([]Header, error) {
	return viaGoami("DeviceStateList", func(ctx context.Context, c goami.Client) error {
		return many(goami.DeviceStateList(ctx, c, ""))
	})
}

// DeviceState is a device's state: a DeviceStateList item or a
// DeviceStateChange event.
type DeviceState struct {
	Device string // e.g. "Custom:DND1001", "PJSIP/1001", "Queue:sales_avail"
	State  string // e.g. "NOT_INUSE", "BUSY": a DeviceStatus's String
	Raw    *Message
}

// ParseDeviceState reads a DeviceStateChange event or list item.
func ParseDeviceState(m *Message) DeviceState {
	return DeviceState{Device: m.Get("Device"), State: m.Get("State"), Raw: m}
}

// DeviceStateList returns the state of every device Asterisk knows.
func (c *Client) DeviceStateList(ctx context.Context) ([]DeviceState, error) {
	l, err := c.List(ctx, DeviceStateList{})
	if err != nil {
		return nil, fmt.Errorf("ami: device state list: %w", err)
	}
	var out []DeviceState
	for _, m := range l.Items {
		if equalFold(m.Event(), "DeviceStateChange") {
			out = append(out, ParseDeviceState(m))
		}
	}
	return out, nil
}

// PresenceState is the PresenceState action; encoded here, as goami would (TestEncodersMatchGoami).
type PresenceState struct {
	Provider string // e.g. "CustomPresence:1001"
}

// ActionName implements [Action].
func (PresenceState) ActionName() string { return "PresenceState" }

// ActionHeaders implements [Action].
func (a PresenceState) ActionHeaders() ([]Header, error) {
	if err := require("PresenceState", "Provider", a.Provider); err != nil {
		return nil, err
	}
	if err := checkValues("PresenceState", "Provider", a.Provider); err != nil {
		return nil, err
	}
	return headers("Provider", a.Provider), nil
}

// PresenceStatus is a presence provider's state.
type PresenceStatus struct {
	Provider string
	State    string // not_set, unavailable, available, away, xa, chat, dnd
	Subtype  string
	Message  string
	Raw      *Message
}

// PresenceState returns a provider's state. The reply carries "Message:"
// twice ("Presence State" and the presence message); the presence
// message is read from PresenceMessage. An unset provider gives State
// "not_set"; an unknown provider type gives a *ResponseError.
func (c *Client) PresenceState(ctx context.Context, provider string) (PresenceStatus, error) {
	m, err := c.Do(ctx, PresenceState{Provider: provider})
	if err != nil {
		return PresenceStatus{}, fmt.Errorf("ami: presence state %s: %w", provider, err)
	}
	return PresenceStatus{
		Provider: provider,
		State:    m.Get("State"),
		Subtype:  m.Get("Subtype"),
		Message:  m.Get("PresenceMessage"),
		Raw:      m,
	}, nil
}

// PresenceStateList is the PresenceStateList list action. Encoded here:
// goami's PresenceStateList waits for the wrong event ("Agents").
type PresenceStateList struct{}

// ActionName implements [Action].
func (PresenceStateList) ActionName() string { return "PresenceStateList" }

// ActionHeaders implements [Action].
func (PresenceStateList) ActionHeaders() ([]Header, error) { return nil, nil }

// ParsePresenceStateChange reads a PresenceStateChange event or
// PresenceStateList item (Presentity, Status, Subtype, Message).
func ParsePresenceStateChange(m *Message) PresenceStatus {
	return PresenceStatus{
		Provider: m.Get("Presentity"),
		State:    m.Get("Status"),
		Subtype:  m.Get("Subtype"),
		Message:  m.Get("Message"),
		Raw:      m,
	}
}

// PresenceStateList returns the state of every presence provider that has
// one.
func (c *Client) PresenceStateList(ctx context.Context) ([]PresenceStatus, error) {
	l, err := c.List(ctx, PresenceStateList{})
	if err != nil {
		return nil, fmt.Errorf("ami: presence state list: %w", err)
	}
	var out []PresenceStatus
	for _, m := range l.Items {
		if equalFold(m.Event(), "PresenceStateChange") {
			out = append(out, ParsePresenceStateChange(m))
		}
	}
	return out, nil
}
