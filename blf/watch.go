package blf

import (
	"context"
	"strings"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// watchBuffer is how many events a subscription holds before it overflows (and the watcher
// asks for everyone to be checked).
const watchBuffer = 4096

var _ presence.Watcher = (*Concern)(nil)

// Watch implements presence.Watcher for the lamps and presence presenced sets: a change of a
// user's DND lamp (a phone's DND key may toggle it) or of their presence provider names that
// user. Lost events ask for everyone.
func (c *Concern) Watch(ctx context.Context, w presence.Watch) error {
	owner := presence.NewUserIndex(w.Catalog, func(u *presence.User) []string {
		return []string{w.Naming.DNDLampOf(u), w.Naming.PresenceProviderOf(u)}
	})
	return amiwatch.Run(ctx, c.base.AMI, watchBuffer, []string{"DeviceStateChange", "PresenceStateChange"}, func() { w.All("lamp events were dropped") }, func(ev *ami.Message) {
		var name string
		var agrees func(*presence.Target) bool
		switch ev.Event() {
		case "DeviceStateChange":
			name = ev.Get("Device")
			agrees = lampShown(name, ev.Get("State"))
		case "PresenceStateChange":
			name = ev.Get("Presentity")
			agrees = presenceShown(name, ev.Get("Status"), unescapeC(ev.Get("Message")))
		default:
			return
		}
		if id, ok := owner.User(name); ok {
			w.Saw(id, agrees)
		}
	})
}

// lampShown is what a DeviceStateChange shows of a lamp: whether a desired Target agrees, as
// Plan compares lamps. A lamp the desired state does not name is not presenced's business.
func lampShown(device, state string) func(want *presence.Target) bool {
	return func(want *presence.Target) bool {
		for d, w := range want.Devices {
			if strings.EqualFold(d, device) && !strings.EqualFold(w, state) {
				return false
			}
		}
		return true
	}
}

// presenceShown is what a PresenceStateChange shows of a presence provider (its Message
// unescaped as Asterisk escapes it): whether a desired Target agrees, as Plan compares them.
func presenceShown(provider, state, message string) func(want *presence.Target) bool {
	return func(want *presence.Target) bool {
		for p, w := range want.Presence {
			if strings.EqualFold(p, provider) && w != nil && (!strings.EqualFold(w.State, state) || w.Message != message) {
				return false
			}
		}
		return true
	}
}
