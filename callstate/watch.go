package callstate

import (
	"context"
	"sync"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/amiwatch"
	"github.com/presenced/presenced/presence"
)

// watchBuffer is how many events the subscription holds before it overflows (and Watch asks
// for everyone to be checked).
const watchBuffer = 4096

// boundLookupTimeout bounds the look-up of the user bound to a hot desk whose state changed.
const boundLookupTimeout = 10 * time.Second

var _ presence.Watcher = (*Phones)(nil)

// Watch implements presence.Watcher for the users' phones: keeps their states from
// DeviceStateChange and names the user whose phone changed (a call that ended lets the queue
// changes waiting for it go). A hot desk (a tracked phone that is no user's own) names the user
// bound to it who holds it (Watch.BoundTo), looked up off the event loop. Lost events ask for
// everyone.
func (p *Phones) Watch(ctx context.Context, w presence.Watch) error {
	owner := presence.NewUserIndex(w.Catalog, func(u *presence.User) []string {
		var out []string
		for _, dev := range u.Devices {
			out = append(out, dev.Dial)
		}
		return out
	})
	var lookups sync.WaitGroup
	defer lookups.Wait()
	return amiwatch.Run(ctx, p.events, watchBuffer, nil, func() { w.All("phone state events were dropped") }, func(ev *ami.Message) {
		dev, changed := p.Handle(ev)
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
