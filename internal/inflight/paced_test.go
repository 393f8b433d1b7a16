package inflight

import (
	"context"
	"errors"
	"testing"
	"time"
)

// clock is a manual clock for Paced.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestPaced(t *testing.T, min, max int) (*Paced, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1e9, 0)}
	return NewPaced(PacedOptions{Wait: time.Second, Min: min, Max: max, Now: c.now}), c
}

// fill acquires n slots that must all be free.
func fill(t *testing.T, p *Paced, n int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.Acquire(ctx)
		cancel()
		if err != nil {
			t.Fatalf("acquire %d of %d: %v (limit %d)", i+1, n, err, p.Limit())
		}
	}
}

// TestPacedFollowsTheTimePerReply: with the line kept full, the bound settles at the number of
// actions answered within Wait, clamped to [Min, Max].
func TestPacedFollowsTheTimePerReply(t *testing.T) {
	tests := []struct {
		name     string
		perReply time.Duration
		want     int
	}{
		{"queue changes into large queues: 25 ms each", 25 * time.Millisecond, 40},
		{"slower than Wait allows for Min", 200 * time.Millisecond, 8},
		{"cheap actions: 0.2 ms each", 200 * time.Microsecond, 512},
		{"replies faster than the clock", 0, 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := newTestPaced(t, 8, 512)
			if got := p.Limit(); got != 8 {
				t.Fatalf("limit before any reply = %d, want Min 8", got)
			}
			fill(t, p, 8)
			for range 300 { // a reply, and the next action sent at once: the line stays full
				c.advance(tt.perReply)
				p.Release(true)
				fill(t, p, 1)
			}
			if got := p.Limit(); got != tt.want {
				t.Errorf("limit = %d, want %d (measured %v per reply)", got, tt.want, p.PerReply())
			}
		})
	}
}

// TestPacedIgnoresIdleGaps: the time between a reply that emptied the line and the next reply
// is presenced's, not Asterisk's, and must not shrink the bound; nor do actions that never got
// an answer.
func TestPacedIgnoresIdleGaps(t *testing.T) {
	p, c := newTestPaced(t, 4, 100)
	for range 50 {
		fill(t, p, 2)
		c.advance(time.Millisecond)
		p.Release(true)
		c.advance(time.Millisecond)
		p.Release(true) // the line is empty now
		c.advance(10 * time.Second)
	}
	if got := p.Limit(); got != 100 {
		t.Errorf("limit = %d after idle gaps of 10 s, want 100 (1 ms per reply while busy); measured %v", got, p.PerReply())
	}
	fill(t, p, 2)
	for range 50 {
		c.advance(time.Second)
		p.Release(false) // failed without an answer: not measured
		fill(t, p, 1)
	}
	if got := p.Limit(); got != 100 {
		t.Errorf("limit = %d after unanswered actions, want 100", got)
	}
}

// TestPacedWaitsInOrderAndHonoursCtx: at the bound Acquire waits; released slots go to the
// waiters first come first served; a waiter that gives up takes no slot, and a ctx already done
// takes none even when one is free.
func TestPacedWaitsInOrderAndHonoursCtx(t *testing.T) {
	p, _ := newTestPaced(t, 2, 2)
	fill(t, p, 2)

	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire at the bound = %v, want the deadline", err)
	}

	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			if err := p.Acquire(context.Background()); err == nil {
				order <- i
			}
		}()
		waitWaiters(t, p, i+1) // queued in the order 0, 1, 2
	}
	for want := range 2 {
		p.Release(true)
		if got := <-order; got != want {
			t.Fatalf("slot %d went to waiter %d", want, got)
		}
	}
	select {
	case got := <-order:
		t.Fatalf("waiter %d got a slot beyond the bound", got)
	case <-time.After(20 * time.Millisecond):
	}
	p.Release(true)
	if got := <-order; got != 2 {
		t.Fatalf("last slot went to %d", got)
	}

	p.Release(true)
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := p.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a done ctx = %v, want canceled even with a free slot", err)
	}
	fill(t, p, 1) // the free slot is still there
}

func waitWaiters(t *testing.T, p *Paced, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		got := len(p.waiters)
		p.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPacedCancelledWaiterReturnsAGrantedSlot: a waiter whose ctx ends just as it is granted a
// slot gives it back, so no slot leaks.
func TestPacedCancelledWaiterReturnsAGrantedSlot(t *testing.T) {
	p, _ := newTestPaced(t, 1, 1)
	for range 200 {
		fill(t, p, 1)
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- p.Acquire(ctx) }()
		waitWaiters(t, p, 1)
		go cancel()
		p.Release(true)
		if err := <-res; err == nil {
			p.Release(true) // it got the slot
		}
		if p.inFlight != 0 {
			t.Fatalf("%d slots held after every holder let go", p.inFlight)
		}
	}
}
