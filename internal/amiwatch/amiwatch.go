// Package amiwatch runs the event loop the concerns' watchers share (presence.Watcher): a
// subscription of its own to an ami.Client, every event handed to a function, and lost events
// (the subscription overflowed: ami.EventResync) reported as such.
package amiwatch

import (
	"context"

	"github.com/presenced/presenced/ami"
)

// Run subscribes to c with room for buffer events of the kinds named in events (nil: every
// event; the synthetic ones always) and hands each event to handle, on Run's goroutine, until
// ctx ends; when the subscription lost events it calls lost instead. It
// returns nil when ctx ends or the client's events end.
func Run(ctx context.Context, c *ami.Client, buffer int, events []string, lost func(), handle func(*ami.Message)) error {
	sub := c.SubscribeTo(buffer, events...)
	defer sub.Close()
	return Serve(ctx, sub, lost, handle)
}

// Serve is Run on a subscription the caller made (and closes): for a watcher that must know
// from when on it receives every event.
func Serve(ctx context.Context, sub *ami.Subscription, lost func(), handle func(*ami.Message)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Events():
			if !ok {
				return nil
			}
			if ev.Event() == ami.EventResync {
				if ev.Synthetic() {
					lost()
				}
				continue
			}
			handle(ev)
		}
	}
}
