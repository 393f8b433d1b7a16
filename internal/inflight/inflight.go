// Package inflight bounds how many actions the concern packages have sent to Asterisk and not
// yet got a reply for, over all their concurrent Observe and Apply calls: Limit by a fixed
// number, Paced by the time an action waits in line on its session, measured from the replies.
package inflight

import "context"

// Limit is a counting semaphore. The zero value is not usable; make one with New.
type Limit chan struct{}

// New returns a Limit of n slots.
func New(n int) Limit { return make(Limit, n) }

// Acquire takes a slot, waiting while all are taken. A ctx already done takes none, so a
// caller that gave up starts nothing; ctx's error is returned as it is.
func (l Limit) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives a slot back.
func (l Limit) Release() { <-l }
