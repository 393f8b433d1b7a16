// Package callstate keeps the call state of the users' phones: the device state
// (NOT_INUSE, INUSE, RINGING...) of every phone a user dials (PJSIP/1001, PJSIP/1001-mobile)
// and of the hot desks, as Asterisk last reported it. It tells the engine who is on a call
// and which device is in use (presence.DeviceStates) without a round trip, and names the user
// whose phone changed, so that queue changes waiting for a call to end can go.
//
// It is not a concern: presenced never sets these states, it only follows them. The lamps
// presenced sets (Custom: devices) are package blf's.
package callstate

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
)

// Phones is the last known state of a fixed set of devices (the users' phones), kept by the
// PBX's DeviceStateChange events (Watch) and reloaded in one DeviceStateList after every
// (re)connect (Reload). Devices not in the set are ignored, so a busy PBX's channels and queues
// do not grow it. It is safe for concurrent use.
type Phones struct {
	events *ami.Client // whose DeviceStateChange events Watch follows
	reader *ami.Client // through which Reload lists every device's state

	mu     sync.RWMutex
	states map[string]string // device name, lower case → state, upper case ("" unknown)
}

var _ presence.PhoneStates = (*Phones)(nil)

// New tracks the named devices, as the events of client report them (Watch) and
// DeviceStateList through reader lists them (Reload). Names compare case-insensitively.
func New(client, reader *ami.Client, devices []string) *Phones {
	p := &Phones{events: client, reader: reader, states: make(map[string]string, len(devices))}
	for _, n := range devices {
		p.states[strings.ToLower(n)] = ""
	}
	return p
}

// SetDevices makes devices the tracked ones (a configuration reload added or removed users'
// phones): the states of devices tracked before are kept, new ones are unknown until their
// next event or Reload.
func (p *Phones) SetDevices(devices []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	states := make(map[string]string, len(devices))
	for _, n := range devices {
		k := strings.ToLower(n)
		states[k] = p.states[k]
	}
	p.states = states
}

// DeviceState implements presence.DeviceStates: the device's state as Asterisk last reported
// it, upper case, or "" when not known (or not tracked).
func (p *Phones) DeviceState(device string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.states[strings.ToLower(device)]
}

// Handle takes a DeviceStateChange event (other events are ignored) and reports the device
// it changed, if it is tracked.
func (p *Phones) Handle(ev *ami.Message) (device string, changed bool) {
	if !strings.EqualFold(ev.Event(), "DeviceStateChange") {
		return "", false
	}
	name, state := ev.Get("Device"), strings.ToUpper(ev.Get("State"))
	key := strings.ToLower(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.states[key]
	if !ok || old == state {
		return "", false
	}
	p.states[key] = state
	return name, true
}

// Reset forgets every device's state (all unknown). It implements presence.PhoneStates.
func (p *Phones) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget()
}

// forget makes every device's state unknown; p.mu is held.
func (p *Phones) forget() {
	for k := range p.states {
		p.states[k] = ""
	}
}

// Reload replaces every tracked device's state with what one DeviceStateList reports;
// devices it does not list become unknown. It implements presence.PhoneStates.
func (p *Phones) Reload(ctx context.Context) error {
	list, err := p.reader.DeviceStateList(ctx)
	if err != nil {
		return fmt.Errorf("callstate: load device states: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget()
	for _, s := range list {
		key := strings.ToLower(s.Device)
		if _, ok := p.states[key]; ok {
			p.states[key] = strings.ToUpper(s.State)
		}
	}
	return nil
}
