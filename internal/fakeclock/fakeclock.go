// Package fakeclock is a clock for tests that moves only when the test moves it.
//
// The code under test takes its clock as a func() time.Time (pass Clock.Now) and, where it
// waits, as a timer constructor of the shape of Clock.NewTimer. Set and Advance move the time
// and fire the timers that fall due, in the calling goroutine, before they return.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable time with timers. It is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*timer]struct{}
}

type timer struct {
	at time.Time
	c  chan time.Time
}

// New returns a clock at start.
func New(start time.Time) *Clock {
	return &Clock{now: start, timers: map[*timer]struct{}{}}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too) and fires the timers due at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.fire()
}

// Advance moves the clock on by d and fires the timers due by then.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fire()
}

// NewTimer starts a timer that sends the clock's time on ch once the clock has moved on by d
// (at once when d <= 0), as time.NewTimer does on the real clock. stop cancels it and reports
// whether it was still pending, as time.Timer.Stop does.
func (c *Clock) NewTimer(d time.Duration) (ch <-chan time.Time, stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t.c, func() bool { return false }
	}
	c.timers[t] = struct{}{}
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, pending := c.timers[t]
		delete(c.timers, t)
		return pending
	}
}

// fire sends on every timer due by now; c.mu is held. Each timer's channel has room for its
// one send.
func (c *Clock) fire() {
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			delete(c.timers, t)
		}
	}
}
