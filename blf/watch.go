package blf

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// watchBuffer is how many events a subscription holds before it overflows (and the watcher
// asks for everyone to be checked).
const watchBuffer = 4096

var (
	_ presence.Watcher = (*Concern)(nil)
	_ presence.Watcher = (*Devices)(nil)
)

// Watch implements presence.Watcher for the lamps and presence presenced sets: a change of a
// user's DND lamp (a phone's DND key may toggle it) or of their presence provider names that
// user. Lost events ask for everyone.
func (c *Concern) Watch(ctx context.Context, w presence.Watch) error {
	owner := presence.NewUserIndex(w.Catalog, func(u *presence.User) []string {
		return []string{w.Naming.DNDLampOf(u), w.Naming.PresenceProviderOf(u)}
	})
	return amiwatch.Run(ctx, c.ami, watchBuffer, func() { w.All("lamp events were dropped") }, func(ev *ami.Message) {
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

// Watch implements presence.Watcher for the users' phones: keeps their states from
// DeviceStateChange and names the user whose phone changed (a call that ended lets the queue
// changes waiting for it go). A hot desk (a tracked phone that is no user's own) names the user
// bound to it who holds it (Watch.BoundTo), looked up off the event loop. Lost events ask for
// everyone.
func (d *Devices) Watch(ctx context.Context, w presence.Watch) error {
	owner := presence.NewUserIndex(w.Catalog, func(u *presence.User) []string {
		var out []string
		for _, dev := range u.Devices {
			out = append(out, dev.Dial)
		}
		return out
	})
	var lookups sync.WaitGroup
	defer lookups.Wait()
	return amiwatch.Run(ctx, d.events, watchBuffer, func() { w.All("phone state events were dropped") }, func(ev *ami.Message) {
		dev, changed := d.Handle(ev)
		if !changed {
			return
		}
		if id, ok := owner.User(dev); ok {
			w.Changed(id)
			return
		}
		if w.BoundTo == nil {
			return
		}
		lookups.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, boundLookupTimeout)
			defer cancel()
			if u, ok, err := w.BoundTo(lctx, dev); err == nil && ok {
				w.Changed(u.ID)
			} else if err != nil && ctx.Err() == nil {
				// Not known whose call it was: every user is looked at.
				w.All("the user bound to hot desk " + dev + " could not be read: " + err.Error())
			}
		})
	})
}

// boundLookupTimeout bounds the look-up of the user bound to a hot desk whose state changed.
const boundLookupTimeout = 10 * time.Second

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
