package presence

import "context"

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

// PhoneStates are DeviceStates that can be forgotten and read again (callstate.Phones): after
// Asterisk became ready, what the events said before may be stale (a restart ends every call).
type PhoneStates interface {
	DeviceStates
	Reset()
	Reload(ctx context.Context) error
}
