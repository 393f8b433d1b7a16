package inflight

import (
	"context"
	"sync"
	"time"
)

// Paced bounds the actions in flight on one AMI session by the time they wait rather than by
// their number: it admits as many as the session answers within a wait, measured from its
// replies, and never fewer than a floor or more than a ceiling.
//
// Asterisk serves one session's actions one at a time, in order, so an action sent behind n
// others waits about n times the time Asterisk takes per action on that session. That time
// differs a hundredfold between sites and between actions: a DBPut takes a fraction of a
// millisecond, a queue change with persistentmembers rewrites the queue's member list (about
// 25 ms with 10,000 members). A bound counted in actions is either too small for the cheap ones
// (Asterisk's line runs dry whenever presenced stalls for a moment, and a mass switch goes half
// as fast) or too large for the expensive ones (a switch, or a Ping, waits seconds behind a
// wave of repairs). Paced keeps the line at about the same length in time.
//
// The time per action is the gap between two replies while the session was busy (an action
// was still in flight when the earlier reply came, so Asterisk went straight on to it), as an
// exponentially weighted moving average. Gaps after the line ran dry are not counted: they
// measure presenced, not Asterisk.
//
// A Paced is safe for concurrent use. Make one with NewPaced.
type Paced struct {
	wait     time.Duration
	min, max int
	now      func() time.Time

	mu       sync.Mutex
	inFlight int
	limit    int
	waiters  []chan struct{} // FIFO; a closed channel is a granted slot
	perReply float64         // seconds per reply while busy
	measured bool            // perReply holds a measure
	last     time.Time       // when the previous reply came
	busy     bool            // an action was in flight after the previous reply
}

// PacedOptions configures a Paced.
type PacedOptions struct {
	// Wait is how long, at most, an action should wait in line: the bound is Wait divided by
	// the measured time per action. Required, positive.
	Wait time.Duration
	// Min and Max bound the number of actions in flight whatever the measure says; Min
	// starts it. 1 <= Min <= Max.
	Min, Max int
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// replyWeight is the weight of one gap in the moving average: about the last 32 replies
// count.
const replyWeight = 1.0 / 32

// NewPaced returns a Paced for o. It panics if o breaks the rules PacedOptions states: the
// callers fill it from validated options.
func NewPaced(o PacedOptions) *Paced {
	if o.Wait <= 0 || o.Min < 1 || o.Max < o.Min {
		panic("inflight: NewPaced needs Wait > 0 and 1 <= Min <= Max")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Paced{wait: o.Wait, min: o.Min, max: o.Max, now: o.Now, limit: o.Min}
}

// Acquire takes a slot, waiting while the bound is reached; slots are granted in the order
// asked for. A ctx already done takes none, so a caller that gave up starts nothing; ctx's
// error is returned as it is.
func (p *Paced) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	if len(p.waiters) == 0 && p.inFlight < p.limit {
		p.inFlight++
		p.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	p.waiters = append(p.waiters, ready)
	p.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-ready: // granted meanwhile: give it back
		p.inFlight--
		p.grantLocked()
	default:
		for i, w := range p.waiters {
			if w == ready {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				break
			}
		}
	}
	return ctx.Err()
}

// Release gives a slot back. answered says that Asterisk replied to the action (with success
// or an error of its own); only answered actions are measured, so actions that failed without
// reaching Asterisk (not connected, gated, given up) do not make it look faster.
func (p *Paced) Release(answered bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	if answered {
		now := p.now()
		if p.busy {
			gap := now.Sub(p.last).Seconds()
			if !p.measured {
				p.perReply, p.measured = gap, true
			} else {
				p.perReply += replyWeight * (gap - p.perReply)
			}
			p.limit = p.bound()
		}
		p.last = now
		p.busy = p.inFlight > 0
	}
	p.grantLocked()
}

// bound is the number of actions the session answers within wait, between min and max.
func (p *Paced) bound() int {
	if p.perReply <= 0 {
		return p.max // replies faster than the clock resolves
	}
	n := p.wait.Seconds() / p.perReply
	switch {
	case n >= float64(p.max):
		return p.max
	case n <= float64(p.min):
		return p.min
	}
	return int(n)
}

// grantLocked hands free slots to the waiters, first come first served.
func (p *Paced) grantLocked() {
	for len(p.waiters) > 0 && p.inFlight < p.limit {
		close(p.waiters[0])
		p.waiters = p.waiters[1:]
		p.inFlight++
	}
}

// Limit returns how many actions may be in flight now.
func (p *Paced) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// Max returns the most actions it ever lets be in flight (PacedOptions.Max).
func (p *Paced) Max() int { return p.max }

// PerReply returns the measured time Asterisk takes per action on the session; 0 before the
// first measurement.
func (p *Paced) PerReply() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.perReply * float64(time.Second))
}
