package web

import (
	"net/http"
	"strings"

	"github.com/presenced/presenced/presence"
)

// The phone a person is at. "The device you use will not ring in this profile" is only useful
// when it names the phone the person sits at, which presenced cannot know: the person says it
// on My status, and the status is read for that device (presence.StatusOptions.Device).
//
// It is remembered per browser, in a cookie, rather than per user in Redis: it is a fact about
// where this browser is (the desk PC beside PJSIP/1001, the laptop at home with the softphone),
// and the same user's browsers at two places must not overwrite each other's choice. The
// cookie holds a dial string only; it is checked against the signed-in user's own devices at
// every read, so a forged or stale one (a device removed from the configuration, another
// user's phone) counts as no choice.

// deviceCookie names the device the browser's user is at.
const deviceCookie = "presenced_device"

// deviceChoice is one of the user's devices, as the status page offers it.
type deviceChoice struct {
	Dial  string
	Label string // e.g. "desk phone PJSIP/1001"
}

// familyWords name a device family in a sentence.
var familyWords = map[presence.Family]string{
	presence.FamilyDesk:      "desk phone",
	presence.FamilySoftphone: "softphone",
	presence.FamilyDECT:      "DECT phone",
	presence.FamilyMobile:    "mobile",
	presence.FamilyExternal:  "external phone",
}

// deviceLabel says which phone d is, e.g. "desk phone PJSIP/1001".
func deviceLabel(d presence.Device) string {
	if w, ok := familyWords[d.Family]; ok {
		return w + " " + d.Dial
	}
	return "phone " + d.Dial
}

// devicesOf are the choices of u's devices.
func devicesOf(u *presence.User) []deviceChoice {
	out := make([]deviceChoice, 0, len(u.Devices))
	for _, d := range u.Devices {
		out = append(out, deviceChoice{Dial: d.Dial, Label: deviceLabel(d)})
	}
	return out
}

// ownDevice returns u's device that dial names (letter case aside).
func ownDevice(u *presence.User, dial string) (presence.Device, bool) {
	if dial == "" {
		return presence.Device{}, false
	}
	for _, d := range u.Devices {
		if strings.EqualFold(d.Dial, dial) {
			return d, true
		}
	}
	return presence.Device{}, false
}

// deviceOf is the device of u's that the browser says it is at; false when it says none, or
// one that is not u's.
func deviceOf(r *http.Request, u *presence.User) (presence.Device, bool) {
	c, err := r.Cookie(deviceCookie)
	if err != nil {
		return presence.Device{}, false
	}
	return ownDevice(u, c.Value)
}

// setDevice remembers in this browser which of the user's devices they are at ("" for any).
func (h *Handler) setDevice(w http.ResponseWriter, r *http.Request, v *viewer) {
	dial := r.PostForm.Get("device")
	if dial == "" {
		h.setCookie(w, r, deviceCookie, "", -1)
		http.Redirect(w, r, "/?done=device", http.StatusSeeOther)
		return
	}
	d, ok := ownDevice(v.user, dial)
	if !ok {
		h.showStatus(w, r, v, v.user, http.StatusUnprocessableEntity, "", "That is not one of your devices.", "")
		return
	}
	h.setCookie(w, r, deviceCookie, d.Dial, 400*24*3600) // browsers keep a cookie at most 400 days
	http.Redirect(w, r, "/?done=device", http.StatusSeeOther)
}
