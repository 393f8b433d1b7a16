package presence

import (
	"slices"
	"strings"
)

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
