package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
	"github.com/prometheus/client_golang/prometheus"
)

// faultyConn is a net.Conn in front of the real Asterisk that can delay
// what it reads or cut the connection in the middle of a reply.
type faultyConn struct {
	net.Conn

	mu       sync.Mutex
	delay    time.Duration // hold every Read this long
	cutAfter []byte        // cut the connection right after this text was read
	tail     []byte        // end of what was read, to find cutAfter across reads
	dead     bool
}

func (f *faultyConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	dead := f.dead
	f.mu.Unlock()
	if dead {
		return 0, errors.New("faultyConn: connection cut")
	}
	n, err := f.Conn.Read(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if len(f.cutAfter) > 0 && n > 0 {
		window := append(append([]byte(nil), f.tail...), p[:n]...)
		if i := bytes.Index(window, f.cutAfter); i >= 0 {
			end := max(0, i+len(f.cutAfter)-len(f.tail))
			f.dead = true
			f.Conn.Close()
			return min(end, n), nil
		}
		keep := min(len(window), len(f.cutAfter))
		f.tail = append(f.tail[:0], window[len(window)-keep:]...)
	}
	return n, err
}

func (f *faultyConn) set(delay time.Duration, cutAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = delay
	f.cutAfter = []byte(cutAfter)
}

// faultyDial returns a Config.Dial hook and a way to reach the latest
// connection it made.
func faultyDial() (func(ctx context.Context, network, addr string) (net.Conn, error), func() *faultyConn) {
	var cur atomic.Pointer[faultyConn]
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := &faultyConn{Conn: nc}
		cur.Store(fc)
		return fc, nil
	}
	return dial, cur.Load
}

// readyCounter counts OnReady calls and remembers their contexts.
type readyCounter struct {
	mu   sync.Mutex
	ctxs []context.Context
}

func (r *readyCounter) onReady(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxs = append(r.ctxs, ctx)
}

func (r *readyCounter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ctxs)
}

func (r *readyCounter) ctx(i int) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctxs[i]
}

func TestFullyBootedOnLoginAndOnReady(t *testing.T) {
	var ready readyCounter
	c := newClient(t, clientOpts{noBooted: true, mod: func(cfg *ami.Config) { cfg.OnReady = ready.onReady }})
	waitFor(t, "OnReady", func() bool { return ready.count() == 1 })
	st := c.Status()
	if !st.Connected || !st.LoggedIn || !st.FullyBooted || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	if ready.ctx(0).Err() != nil {
		t.Errorf("OnReady ctx already done")
	}
	time.Sleep(100 * time.Millisecond)
	if n := ready.count(); n != 1 {
		t.Errorf("OnReady ran %d times on one connection", n)
	}
}

func TestSubscriberSeesConnectedThenFullyBooted(t *testing.T) {
	cfg := ami.Config{Addr: env.AMIAddr, Username: env.AMIUser, Secret: env.AMISecret, Logger: logger(t)}
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	first := waitEvent(t, sub, "any", func(*ami.Message) bool { return true })
	second := waitEvent(t, sub, "any", func(*ami.Message) bool { return true })
	if first.Event() != ami.EventConnected || !first.Synthetic() || second.Event() != ami.EventFullyBooted || second.Synthetic() {
		t.Errorf("first events: %s / %s", first, second)
	}
	if second.Get("Status") != "Fully Booted" {
		t.Errorf("FullyBooted event %s", second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last := first
	for m := range sub.Events() {
		last = m
	}
	if last.Event() != ami.EventDisconnected {
		t.Errorf("last event %s", last)
	}
}

func TestConcurrentCalls(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	base := "PDCONC_" + uniq("")
	fam := uniq("pdc")
	for i := range 20 {
		if err := c.DBPut(ctx, fam, fmt.Sprint(i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.DBDelTree(context.Background(), fam, "")
		for i := range 50 {
			_ = c.Setvar(context.Background(), "", fmt.Sprintf("%s_%d", base, i), "")
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 50 {
		wg.Go(func() {
			name, want := fmt.Sprintf("%s_%d", base, i), fmt.Sprintf("value %d: %s", i, tricky)
			if err := c.Setvar(ctx, "", name, want); err != nil {
				errs <- err
				return
			}
			got, err := c.Getvar(ctx, "", name)
			if err != nil || got != want {
				errs <- fmt.Errorf("Getvar %s = %q, %v; want %q", name, got, err, want)
			}
			if i%10 == 0 {
				entries, err := c.DBGetTree(ctx, fam, "")
				if err != nil || len(entries) != 20 {
					errs <- fmt.Errorf("DBGetTree during concurrent calls: %d entries, %v", len(entries), err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTimeoutLateReplyRealAsterisk(t *testing.T) {
	dial, conn := faultyDial()
	c := newClient(t, clientOpts{mod: func(cfg *ami.Config) { cfg.Dial = dial }})
	ctx := testCtx(t)
	name := "PDLATE_" + uniq("")
	t.Cleanup(func() { _ = c.Setvar(context.Background(), "", name, "") })
	if err := c.Setvar(ctx, "", name, "late"); err != nil {
		t.Fatal(err)
	}

	conn().set(400*time.Millisecond, "")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Getvar(short, "", name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed Getvar: %v", err)
	}
	conn().set(0, "")
	// The late reply is dropped; this call gets its own reply.
	if err := c.Setvar(ctx, "", name, "fresh"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Getvar(ctx, "", name); err != nil || v != "fresh" {
		t.Fatalf("Getvar after a timeout = %q, %v", v, err)
	}
	if !c.Status().LoggedIn {
		t.Error("the timeout cost the connection")
	}
}

func TestDropMidListRealAsterisk(t *testing.T) {
	dial, conn := faultyDial()
	var ready readyCounter
	c := newClient(t, clientOpts{mod: func(cfg *ami.Config) {
		cfg.Dial = dial
		cfg.OnReady = ready.onReady
	}})
	ctx := testCtx(t)
	fam := uniq("pdm")
	t.Cleanup(func() { _ = c.DBDelTree(context.Background(), fam, "") })
	for i := range 30 {
		if err := c.DBPut(ctx, fam, fmt.Sprintf("k%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	sub := c.Subscribe(1000)
	waitFor(t, "first OnReady", func() bool { return ready.count() == 1 })

	conn().set(0, "Event: DBGetTreeResponse\r\n")
	_, err := c.DBGetTree(ctx, fam, "")
	if !errors.Is(err, ami.ErrConnClosed) {
		t.Fatalf("DBGetTree cut mid-list: %v, want ErrConnClosed", err)
	}
	waitEvent(t, sub, "Disconnected", func(m *ami.Message) bool { return m.Event() == ami.EventDisconnected })
	select {
	case <-ready.ctx(0).Done():
	case <-time.After(5 * time.Second):
		t.Error("OnReady ctx of the cut connection not cancelled")
	}
	waitEvent(t, sub, "Connected", func(m *ami.Message) bool { return m.Event() == ami.EventConnected })
	waitFor(t, "OnReady after reconnect", func() bool { return ready.count() == 2 })
	entries, err := c.DBGetTree(ctx, fam, "")
	if err != nil || len(entries) != 30 {
		t.Fatalf("DBGetTree after reconnect: %d entries, %v", len(entries), err)
	}
}

func TestOutageViaProxy(t *testing.T) {
	p, err := lab.NewProxy(env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	var ready readyCounter
	c := newClient(t, clientOpts{mod: func(cfg *ami.Config) {
		cfg.Addr = p.Addr()
		cfg.OnReady = ready.onReady
	}})
	sub := c.Subscribe(1000)
	waitFor(t, "first OnReady", func() bool { return ready.count() == 1 })

	p.SetUp(false)
	ev := waitEvent(t, sub, "Disconnected", func(m *ami.Message) bool { return m.Event() == ami.EventDisconnected })
	if ev.Get("Reason") == "" {
		t.Errorf("Disconnected without Reason")
	}
	start := time.Now()
	if _, err := c.Do(testCtx(t), ami.Ping{}); !errors.Is(err, ami.ErrNotConnected) || time.Since(start) > time.Second {
		t.Errorf("Do while down: %v after %v", err, time.Since(start))
	}
	waitFor(t, "LastError", func() bool { return !c.Status().LoggedIn && c.Status().LastError != "" })

	p.SetUp(true)
	waitEvent(t, sub, "Connected", func(m *ami.Message) bool { return m.Event() == ami.EventConnected })
	waitEvent(t, sub, "FullyBooted", func(m *ami.Message) bool { return m.Event() == ami.EventFullyBooted })
	waitFor(t, "OnReady after the outage", func() bool { return ready.count() == 2 })
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestBusySessionKeptAlive keeps a session's line in Asterisk several Ping intervals long (100
// callers each looping a CLI command that takes Asterisk about 10 ms, 25 ms on a loaded
// machine), so every keepalive Ping waits behind the commands far longer than its timeout.
// Asterisk answers the commands all the while, a reply every few tens of milliseconds: the
// session is busy, not dead, and must be kept. Before, two late Pings closed it and failed
// every call in flight. (A gap of a whole interval between two replies is silence, and counts
// as a missed Ping: the interval is set well above the time of one command.)
func TestBusySessionKeptAlive(t *testing.T) {
	reg := prometheus.NewRegistry()
	const interval = 150 * time.Millisecond
	c := newClient(t, clientOpts{test: true, mod: func(cfg *ami.Config) {
		cfg.PingInterval = interval
		cfg.Registerer = reg
		cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}})
	sub := c.Subscribe(1 << 10)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	var calls atomic.Int64
	const callers = 100
	errs := make(chan error, callers)
	flood := time.Now().Add(2500 * time.Millisecond)
	var slowest atomic.Int64
	for range callers {
		wg.Go(func() {
			for time.Now().Before(flood) {
				start := time.Now()
				if _, err := c.Command(ctx, "core show help"); err != nil {
					errs <- err
					return
				}
				calls.Add(1)
				d := int64(time.Since(start))
				for { // the largest d of every caller: a compare-and-swap, so none is lost
					m := slowest.Load()
					if d <= m || slowest.CompareAndSwap(m, d) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a command during the flood: %v", err)
	}
	t.Logf("%d commands in 2.5 s; the slowest waited %v (Ping interval %v)", calls.Load(), time.Duration(slowest.Load()), interval)
	if time.Duration(slowest.Load()) < 3*interval {
		t.Fatalf("the line never got longer than 3 Ping intervals (slowest command %v): the test proves nothing", time.Duration(slowest.Load()))
	}
	if got := metricValue(t, reg, "presenced_ami_reconnects_total"); got != 0 {
		t.Errorf("reconnects_total = %v: the busy session was dropped", got)
	}
	for {
		select {
		case m := <-sub.Events():
			if m.Event() == ami.EventDisconnected {
				t.Fatalf("the busy session was dropped: %s", m.Get("Reason"))
			}
			continue
		default:
		}
		break
	}
	if _, err := c.Command(ctx, "core show version"); err != nil {
		t.Errorf("after the flood: %v", err)
	}
}
