package blf

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/presenced/presenced/ami"
)

// Devices is the last known state of a fixed set of devices (the users' phones: PJSIP/1001,
// PJSIP/1001-mobile...), kept by the PBX's DeviceStateChange events and reloaded in one
// DeviceStateList after every (re)connect. It tells the engine who is on a call and which
// device is in use (presence.DeviceStates) without a round trip. Devices not in the set are
// ignored, so a busy PBX's channels and queues do not grow it. It is safe for concurrent use.
type Devices struct {
	events *ami.Client // whose DeviceStateChange events Watch follows
	reader *ami.Client // through which Reload lists every device's state

	mu     sync.RWMutex
	states map[string]string // device name, lower case → state, upper case ("" unknown)
}

// NewDevices tracks the named devices, as the events of client report them (Watch) and
// DeviceStateList through reader lists them (Reload). Names compare case-insensitively.
func NewDevices(client, reader *ami.Client, names []string) *Devices {
	d := &Devices{events: client, reader: reader, states: make(map[string]string, len(names))}
	for _, n := range names {
		d.states[strings.ToLower(n)] = ""
	}
	return d
}

// SetNames makes names the tracked devices (a configuration reload added or removed users'
// phones): the states of devices tracked before are kept, new ones are unknown until their
// next event or Reload.
func (d *Devices) SetNames(names []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	states := make(map[string]string, len(names))
	for _, n := range names {
		k := strings.ToLower(n)
		states[k] = d.states[k]
	}
	d.states = states
}

// DeviceState implements presence.DeviceStates: the device's state as Asterisk last reported
// it, upper case, or "" when not known (or not tracked).
func (d *Devices) DeviceState(device string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.states[strings.ToLower(device)]
}

// Handle takes a DeviceStateChange event (other events are ignored) and reports the device
// it changed, if it is tracked.
func (d *Devices) Handle(ev *ami.Message) (device string, changed bool) {
	if !strings.EqualFold(ev.Event(), "DeviceStateChange") {
		return "", false
	}
	name, state := ev.Get("Device"), strings.ToUpper(ev.Get("State"))
	key := strings.ToLower(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.states[key]
	if !ok || old == state {
		return "", false
	}
	d.states[key] = state
	return name, true
}

// Reset forgets every device's state (all unknown).
func (d *Devices) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forget()
}

// forget makes every device's state unknown; d.mu is held.
func (d *Devices) forget() {
	for k := range d.states {
		d.states[k] = ""
	}
}

// Reload replaces every tracked device's state with what one DeviceStateList reports;
// devices it does not list become unknown. It implements presence.PhoneStates.
func (d *Devices) Reload(ctx context.Context) error {
	list, err := d.reader.DeviceStateList(ctx)
	if err != nil {
		return fmt.Errorf("blf: load device states: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forget()
	for _, s := range list {
		key := strings.ToLower(s.Device)
		if _, ok := d.states[key]; ok {
			d.states[key] = strings.ToUpper(s.State)
		}
	}
	return nil
}
