package ami_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ami/amitest"
)

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (w writeCounter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(p)
}

// TestActionsQueuedMeanwhileShareAWrite: actions sent while another is being written go out
// together in one write, Config.Gate is asked once for them, and every one gets its own reply.
// Inside such a batch, the gate refusing keeps the gated actions off the wire and lets the
// session's own (Ping) through.
func TestActionsQueuedMeanwhileShareAWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse bool // the gate refuses the second batch
	}{
		{"allowed", false},
		{"refused", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := amitest.NewServer(t)
			var setvars atomic.Int32
			srv.Handle("Setvar", func(c *amitest.Conn, req *ami.Message) {
				setvars.Add(1)
				_ = c.Send(ami.NewMessage("Response", "Success", "ActionID", req.ActionID()))
			})
			var (
				writes, gateCalls atomic.Int32
				holding           = make(chan struct{})
				release           = make(chan struct{})
				hold              atomic.Bool
			)
			c := startClient(t, srv, func(cfg *ami.Config) {
				dial := cfg.Dial
				if dial == nil {
					dial = (&net.Dialer{}).DialContext
				}
				cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := dial(ctx, network, addr)
					return writeCounter{Conn: nc, writes: &writes}, err
				}
				cfg.Gate = func() error {
					n := gateCalls.Add(1)
					if hold.CompareAndSwap(true, false) {
						close(holding)
						<-release // the first Setvar holds the socket while the others queue
					}
					if tc.refuse && n > 1 {
						return errors.New("not the leader")
					}
					return nil
				}
			})
			waitFor(t, "booted", func() bool { return c.Status().FullyBooted })
			ctx := ctxTimeout(t, 5*time.Second)
			hold.Store(true)
			gateCalls.Store(0)
			first := make(chan error, 1)
			go func() { first <- c.Setvar(ctx, "", "FIRST", "1") }()
			<-holding
			const n = 20
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = c.Setvar(ctx, "", "X", "1") })
			}
			var pingErr error
			wg.Go(func() { pingErr = c.Ping(ctx) })
			waitFor(t, "the actions queued", func() bool { return ami.QueuedForTest(c) == n+1 })
			before := writes.Load()
			close(release)
			if err := <-first; err != nil {
				t.Fatalf("first Setvar: %v", err)
			}
			wg.Wait()
			if pingErr != nil {
				t.Errorf("Ping: %v", pingErr)
			}
			if got := writes.Load() - before; got != 2 {
				t.Errorf("%d writes for %d actions queued behind one, want 2", got, n+1)
			}
			if got := gateCalls.Load(); got != 2 {
				t.Errorf("the gate was asked %d times, want once per write (2)", got)
			}
			for i, err := range errs {
				if tc.refuse && !errors.Is(err, ami.ErrGated) {
					t.Errorf("Setvar %d in the refused batch: %v, want ErrGated", i, err)
				}
				if !tc.refuse && err != nil {
					t.Errorf("Setvar %d: %v", i, err)
				}
			}
			want := int32(n + 1)
			if tc.refuse {
				want = 1
			}
			if got := setvars.Load(); got != want {
				t.Errorf("the server got %d Setvar, want %d", got, want)
			}
		})
	}
}
