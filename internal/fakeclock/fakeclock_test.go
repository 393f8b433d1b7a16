package fakeclock_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/internal/fakeclock"
)

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestNowMovesOnlyWhenMoved(t *testing.T) {
	c := fakeclock.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	time.Sleep(time.Millisecond)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now moved by itself to %v", got)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance: %v, want %v", got, want)
	}
	back := start.Add(-time.Hour)
	c.Set(back)
	if got := c.Now(); !got.Equal(back) {
		t.Fatalf("after Set: %v, want %v", got, back)
	}
}

// fired reports whether ch has a value ready, and which.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestTimers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		d        time.Duration
		move     func(c *fakeclock.Clock)
		wantFire bool
		wantAt   time.Time
	}{
		{"zero fires at once", 0, func(*fakeclock.Clock) {}, true, start},
		{"negative fires at once", -time.Second, func(*fakeclock.Clock) {}, true, start},
		{"not yet due", time.Minute, func(c *fakeclock.Clock) { c.Advance(59 * time.Second) }, false, time.Time{}},
		{"due exactly", time.Minute, func(c *fakeclock.Clock) { c.Advance(time.Minute) }, true, start.Add(time.Minute)},
		{"overdue sends the new time", time.Minute, func(c *fakeclock.Clock) { c.Advance(time.Hour) }, true, start.Add(time.Hour)},
		{"Set fires too", time.Minute, func(c *fakeclock.Clock) { c.Set(start.Add(2 * time.Minute)) }, true, start.Add(2 * time.Minute)},
		{"Set backwards does not", time.Minute, func(c *fakeclock.Clock) { c.Set(start.Add(-time.Hour)) }, false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeclock.New(start)
			ch, _ := c.NewTimer(tc.d)
			tc.move(c)
			at, ok := fired(ch)
			if ok != tc.wantFire || !at.Equal(tc.wantAt) {
				t.Fatalf("fired %v at %v, want %v at %v", ok, at, tc.wantFire, tc.wantAt)
			}
		})
	}
}

func TestTimerFiresOnce(t *testing.T) {
	c := fakeclock.New(start)
	ch, stop := c.NewTimer(time.Second)
	c.Advance(time.Second)
	if _, ok := fired(ch); !ok {
		t.Fatal("not fired when due")
	}
	c.Advance(time.Second)
	if _, ok := fired(ch); ok {
		t.Fatal("fired twice")
	}
	if stop() {
		t.Fatal("stop of a fired timer reported it pending")
	}
}

func TestStop(t *testing.T) {
	c := fakeclock.New(start)
	ch, stop := c.NewTimer(time.Second)
	if !stop() {
		t.Fatal("stop of a pending timer reported it not pending")
	}
	if stop() {
		t.Fatal("a second stop reported it pending")
	}
	c.Advance(time.Hour)
	if _, ok := fired(ch); ok {
		t.Fatal("a stopped timer fired")
	}
	_, stopNow := c.NewTimer(0)
	if stopNow() {
		t.Fatal("stop of a timer that fired at once reported it pending")
	}
}

// TestConcurrentUse is for the race detector: the clock is read, moved and timed from many
// goroutines at once.
func TestConcurrentUse(t *testing.T) {
	c := fakeclock.New(start)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				_, stop := c.NewTimer(time.Millisecond)
				c.Advance(time.Millisecond)
				_ = c.Now()
				stop()
			}
		}()
	}
	for range 4 {
		<-done
	}
	if got, want := c.Now(), start.Add(400*time.Millisecond); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
}
