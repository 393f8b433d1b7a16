package inflight

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	l := New(1)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second acquire of a full limit = %v, want the deadline", err)
	}
	l.Release()
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := l.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a done ctx = %v, want canceled even with a free slot", err)
	}
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}
