package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
)

// A storm of one's own: setting any of these runs that one storm instead of the default or
// PRESENCED_STORM_BENCH=1 ones; the values not set are the default storm's.
var (
	stormDuration = flag.Duration("storm.duration", 0, "how long the storm senders send")
	stormSenders  = flag.Int("storm.senders", 0, "AMI connections sending UserEvents")
	stormRate     = flag.Int("storm.rate", 0, "UserEvents per second over all senders (0: as fast as Asterisk takes them)")
	stormCalls    = flag.Int("storm.calls", -1, "Local calls originated per second during the storm")
	stormAlone    = flag.Bool("storm.alone", false, "no unfiltered readers: the daemon's user is the only one reading events")
)

// storm sizes one storm.
type storm struct {
	name         string
	duration     time.Duration // the senders send at least this long
	senders      int           // AMI connections sending UserEvents
	rate         int           // UserEvents per second over all senders; 0 = as fast as Asterisk takes them
	window       int           // UserEvent actions in flight per sender
	calls        int           // Local calls originated per second
	callLength   time.Duration // how long each call stays up once answered
	alone        bool          // no unfiltered readers (the thin client and the unfiltered ami.Client)
	pauseEvery   time.Duration // gap between two QueuePause samples
	idleSamples  int           // QueuePause samples before the storm
	stormSamples int           // the storm lasts until at least this many samples were taken in it
}

// storms are the storms TestEventIngestStorm runs: a small one by default (a few seconds, for
// CI), those of docs/BENCHMARKS.md with PRESENCED_STORM_BENCH=1, or one set by the storm.* flags.
func storms() []storm {
	small := storm{name: "small", duration: 2 * time.Second, senders: 2, window: 512, calls: 10,
		callLength: 200 * time.Millisecond, pauseEvery: 100 * time.Millisecond, idleSamples: 5, stormSamples: 5}
	if *stormDuration > 0 || *stormSenders > 0 || *stormRate > 0 || *stormCalls >= 0 || *stormAlone {
		s := small
		s.name = "flags"
		if *stormDuration > 0 {
			s.duration = *stormDuration
		}
		if *stormSenders > 0 {
			s.senders = *stormSenders
		}
		s.rate = *stormRate
		if *stormCalls >= 0 {
			s.calls = *stormCalls
		}
		s.alone = *stormAlone
		return []storm{s}
	}
	if os.Getenv("PRESENCED_STORM_BENCH") != "1" {
		return []storm{small}
	}
	var out []storm
	for _, s := range []struct {
		name           string
		senders, rate  int
		calls          int
		presencedAlone bool
	}{
		{"userevents-flat-out", 4, 0, 0, false},
		{"userevents-20k", 4, 20000, 0, false},
		{"userevents-flat-out+calls-20", 4, 0, 20, false},
		{"userevents-10k+calls-50", 4, 10000, 50, false},
		{"calls-100", 0, 0, 100, false},
		{"alone:userevents-flat-out", 4, 0, 0, true},
		{"alone:userevents-flat-out+calls-20", 4, 0, 20, true},
	} {
		out = append(out, storm{name: s.name, duration: 15 * time.Second, senders: s.senders, rate: s.rate,
			window: 512, calls: s.calls, callLength: 200 * time.Millisecond, alone: s.presencedAlone,
			pauseEvery: 200 * time.Millisecond, idleSamples: 20})
	}
	return out
}

// filteredEvents are the events the daemon's AMI user may receive (manager.conf event filters,
// deploy/asterisk/manager_presenced.conf).
var filteredEvents = []string{"FullyBooted", "Shutdown", "Reload", "QueueMemberAdded", "QueueMemberRemoved",
	"QueueMemberPause", "QueueMemberPenalty", "QueueMemberStatus", "DeviceStateChange", "PresenceStateChange",
	"ExtensionStatus"}

// TestEventIngestStorm measures presenced's AMI event ingest while a busy PBX floods the
// manager interface: storm senders (the lab's test user) send UserEvents as fast as Asterisk
// takes them (or at a set rate), while Local calls through the dialplan are originated
// (Newchannel, Newexten, VarSet, Hangup, DeviceStateChange ... on the unfiltered stream).
// Meanwhile:
//
//   - a client logged in as the daemon's user (event-filtered in manager.conf) and subscribed
//     as the daemon is (Subscribe(4096)) must see every QueuePause the test makes by hand,
//     before, during and after the storm: the time from the action to the QueueMemberPause
//     event, p50/p99; it must drop nothing and receive none of the storm;
//   - an unfiltered ami.Client (the test user, Events: on, Subscribe(4096)) and the thinnest
//     possible client (a net.Conn read line by line and discarded) read the whole stream in
//     the same run: events per second (and their ratio), storm events received, how far behind
//     each was when the storm ended, drops, the same pause latencies, and the process heap
//     before, at its peak and after (after GC).
//
// Figures go to the test log. The default storm is small (CI); the storms of
// docs/BENCHMARKS.md are
//
//	PRESENCED_STORM_BENCH=1 go test -count=1 -run TestEventIngestStorm -v ./internal/bench
//
// Performance is not asserted; correctness is: every pause seen by the daemon's user, no drops
// and no reconnects there, nothing the filters exclude reaching it, every storm event reaching
// the thin client.
func TestEventIngestStorm(t *testing.T) {
	for _, s := range storms() {
		t.Run(s.name, func(t *testing.T) { runStorm(t, s) })
	}
}

func runStorm(t *testing.T, p storm) {
	ctx, cancel := context.WithTimeout(context.Background(), p.duration+5*time.Minute)
	defer cancel()
	run := lab.Unique("Storm")
	stormName, endName := run, run+"End"
	iface := "Local/" + lab.Unique("storm") + "@lab-sink/n"

	// The daemon's user, subscribed as the daemon is.
	regF := prometheus.NewRegistry()
	filtered := env.AMI(t, false, func(cfg *ami.Config) { cfg.Registerer = regF })
	fc := consumeFiltered(filtered.Subscribe(4096), iface)
	// The unfiltered stream, through presenced's client and through the thinnest client.
	var (
		regU *prometheus.Registry
		uc   *unfilteredConsumer
		raw  *thinClient
	)
	if !p.alone {
		regU = prometheus.NewRegistry()
		unfiltered := env.AMI(t, true, func(cfg *ami.Config) { cfg.Registerer = regU; cfg.Events = "on" })
		uc = consumeUnfiltered(unfiltered.Subscribe(4096), stormName, endName, iface)
		raw = dialThin(t, stormName, endName, iface)
	}
	// The hand that pauses, and the one that originates the calls (the test user).
	probe := env.AMI(t, true, func(cfg *ami.Config) { cfg.Events = "system" })
	churner := env.AMI(t, true, func(cfg *ami.Config) { cfg.Events = "system" })

	if err := probe.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.QueueRemove(context.Background(), iface, "support") })
	dev := fmt.Sprintf("7%07d", time.Now().UnixNano()%10_000_000) // a lab-sink device: digits
	if err := probe.DBPut(ctx, "LABSINK", dev, "answer"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.DBDel(context.Background(), "LABSINK", dev) })

	pauses := &pauser{c: probe, iface: iface, arrivals: fc.pauses}
	for range p.idleSamples {
		pauses.sample(t, ctx, "idle")
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := watchHeap()

	// The storm.
	senders := make([]*stormSender, p.senders)
	for i := range senders {
		senders[i] = dialStormSender(t)
	}
	stormCtx, stopStorm := context.WithCancel(ctx)
	defer stopStorm()
	var uStart, rStart, rBytes int64
	if !p.alone {
		uStart, rStart, rBytes = uc.events.Load(), raw.events.Load(), raw.bytes.Load()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.send(stormCtx, stormName, float64(p.rate)/float64(p.senders), p.window) })
	}
	var calls churn
	wg.Go(func() { calls.run(stormCtx, churner, dev, p.calls, p.callLength) })
	tick := time.NewTicker(p.pauseEvery)
	for pauses.count("storm") < p.stormSamples || time.Since(start) < p.duration {
		<-tick.C
		pauses.sample(t, ctx, "storm")
	}
	tick.Stop()
	stopStorm()
	wg.Wait()
	took := time.Since(start)
	var sent, failed int64
	for _, s := range senders {
		sent += s.ok.Load()
		failed += s.failed.Load()
		if err := s.err(); err != nil {
			t.Errorf("storm sender: %v", err)
		}
	}
	t.Logf("storm %s: %d senders for %v: %d UserEvents = %.0f/s; %d Local calls = %.0f/s (%v each)",
		p.name, p.senders, took.Round(time.Millisecond), sent, float64(sent)/took.Seconds(),
		calls.placed.Load(), float64(calls.placed.Load())/took.Seconds(), p.callLength)

	var thinPauses, uPauses []time.Time
	if !p.alone {
		// The end marker: whoever has it has everything Asterisk queued before it.
		marked := time.Now()
		if err := probe.UserEvent(ctx, endName); err != nil {
			t.Fatal(err)
		}
		endCtx, endCancel := context.WithTimeout(ctx, time.Minute)
		defer endCancel()
		rEnd, rErr := raw.waitEnd(endCtx)
		uEnd, uErr := uc.waitEnd(endCtx)
		uEvents, rEvents := uc.events.Load()-uStart, raw.events.Load()-rStart
		rBytes = raw.bytes.Load() - rBytes
		uDrops := counterSum(t, regU, "presenced_ami_events_dropped_total")
		rRate := 0.0
		if rErr == nil {
			secs := rEnd.Sub(start).Seconds()
			rRate = float64(rEvents) / secs
			t.Logf("unfiltered, thin client: %d events in %.2fs = %.0f events/s, %.1f MB/s; %d storm events; end marker %v after it was sent",
				rEvents, secs, rRate, float64(rBytes)/secs/1e6, raw.storm.Load(), rEnd.Sub(marked).Round(time.Microsecond))
		} else {
			t.Errorf("thin client: %v", rErr)
		}
		if uErr == nil {
			secs := uEnd.Sub(start).Seconds()
			uRate := float64(uEvents) / secs
			t.Logf("unfiltered, ami.Client:  %d events in %.2fs = %.0f events/s (%.3f of the thin client's); %d storm events; end marker %v after it was sent; %v dropped, %d Resync",
				uEvents, secs, uRate, uRate/rRate, uc.storm.Load(), uEnd.Sub(marked).Round(time.Microsecond), uDrops, uc.resyncs.Load())
		} else {
			t.Errorf("unfiltered ami.Client: %v; %v dropped, %d Resync", uErr, uDrops, uc.resyncs.Load())
		}
		if got := raw.storm.Load(); got != sent {
			t.Errorf("the thin client got %d of %d storm UserEvents", got, sent)
		}
	}
	waitNoCalls(t, ctx, probe, dev)
	pauses.sample(t, ctx, "after") // the daemon's user is still in step
	if !p.alone {
		// The unfiltered clients may still be behind with the last sample.
		waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
		defer waitCancel()
		thinPauses = raw.pauses.wait(waitCtx, len(pauses.samples))
		if uc.resyncs.Load() == 0 { // else events were dropped: the n-th arrival need not be sample n's
			uPauses = uc.pauses.wait(waitCtx, len(pauses.samples))
		}
	}

	heapPeak := peak()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	fDrops := counterSum(t, regF, "presenced_ami_events_dropped_total")
	counts, unexpected, fSynthetic := fc.result()
	t.Logf("filtered, daemon's user: %v; %v dropped", counts, fDrops)
	for _, phase := range []string{"idle", "storm", "after"} {
		t.Logf("QueuePause → QueueMemberPause, %-5s %s", phase+":", pauses.latencies(phase, thinPauses, uPauses))
	}
	t.Logf("heap: %.1f MB before, %.1f MB at the peak, %.1f MB after (GC): %+.2f MB",
		mb(before.HeapAlloc), mb(heapPeak), mb(after.HeapAlloc), mb(after.HeapAlloc)-mb(before.HeapAlloc))

	// Correctness.
	if p.senders > 0 && (sent == 0 || failed != 0) {
		t.Errorf("storm: %d UserEvents sent, %d failed", sent, failed)
	}
	if calls.failed.Load() != 0 {
		t.Errorf("churn: %d of %d originates failed", calls.failed.Load(), calls.placed.Load())
	}
	if fDrops != 0 || fSynthetic != 0 {
		t.Errorf("the daemon's user's client dropped %v events; %d Resync/Disconnected", fDrops, fSynthetic)
	}
	if n := counterSum(t, regF, "presenced_ami_reconnects_total"); n != 0 {
		t.Errorf("the daemon's user's client reconnected %v times", n)
	}
	if len(unexpected) > 0 {
		t.Errorf("the daemon's user received events the filters exclude: %v", unexpected)
	}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// pct is the p-quantile of ds (nearest rank).
func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// watchHeap samples the heap every 100 ms until the returned function is called, which
// reports the largest HeapAlloc seen.
func watchHeap() func() uint64 {
	done := make(chan struct{})
	res := make(chan uint64)
	go func() {
		var peak uint64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-done:
				res <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}

// counterSum adds up every series of the counter name in reg.
func counterSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// pauser toggles a queue member's pause by hand, one QueuePause at a time, and times its
// QueueMemberPause event on the daemon's user's client. Each sample causes exactly one
// QueueMemberPause of the member, so the n-th such event any client receives is sample n's.
type pauser struct {
	c        *ami.Client
	iface    string
	arrivals <-chan time.Time
	paused   bool
	samples  []pauseSample
}

type pauseSample struct {
	phase    string
	sent     time.Time // QueuePause written
	filtered time.Time // its event on the daemon's user's client
}

func (p *pauser) sample(t *testing.T, ctx context.Context, phase string) {
	t.Helper()
	p.paused = !p.paused
	s := pauseSample{phase: phase, sent: time.Now()}
	if err := p.c.QueuePause(ctx, p.iface, "support", p.paused, "storm"); err != nil {
		t.Fatalf("QueuePause: %v", err)
	}
	select {
	case s.filtered = <-p.arrivals:
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon's user did not get QueueMemberPause (%s sample %d) within 30 s", phase, len(p.samples))
	}
	p.samples = append(p.samples, s)
}

func (p *pauser) count(phase string) int {
	n := 0
	for _, s := range p.samples {
		if s.phase == phase {
			n++
		}
	}
	return n
}

// latencies formats the phase's latencies on the daemon's user's client, and on the thin
// client and the unfiltered ami.Client from the arrival times they recorded (n/a unless they
// have one per sample).
func (p *pauser) latencies(phase string, thin, unfiltered []time.Time) string {
	var f, th, u []time.Duration
	for i, s := range p.samples {
		if s.phase != phase {
			continue
		}
		f = append(f, s.filtered.Sub(s.sent))
		if len(thin) == len(p.samples) {
			th = append(th, thin[i].Sub(s.sent))
		}
		if len(unfiltered) == len(p.samples) {
			u = append(u, unfiltered[i].Sub(s.sent))
		}
	}
	if len(f) == 0 {
		return "no samples"
	}
	q := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "n/a"
		}
		r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
		return fmt.Sprintf("p50 %v p99 %v max %v", r(pct(ds, 0.5)), r(pct(ds, 0.99)), r(slices.Max(ds)))
	}
	return fmt.Sprintf("%d samples: daemon's user %s | thin unfiltered %s | ami.Client unfiltered %s", len(f), q(f), q(th), q(u))
}

// arrivals records when a client received the probe member's QueueMemberPause events.
type arrivals struct {
	mu     sync.Mutex
	times  []time.Time
	notify chan struct{} // closed and replaced on every arrival
}

func newArrivals() *arrivals { return &arrivals{notify: make(chan struct{})} }

func (a *arrivals) add(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, at)
	close(a.notify)
	a.notify = make(chan struct{})
}

// wait returns the arrivals once there are n of them, or those there are when ctx ends.
func (a *arrivals) wait(ctx context.Context, n int) []time.Time {
	for {
		a.mu.Lock()
		times, notify := slices.Clone(a.times), a.notify
		a.mu.Unlock()
		if len(times) >= n {
			return times
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return times
		}
	}
}

// filteredConsumer reads the daemon's user's subscription as the daemon does: every event, by
// name.
type filteredConsumer struct {
	pauses chan time.Time

	mu         sync.Mutex
	counts     map[string]int
	unexpected []string
	synthetic  int
}

func consumeFiltered(sub *ami.Subscription, iface string) *filteredConsumer {
	fc := &filteredConsumer{pauses: make(chan time.Time, 1024), counts: map[string]int{}}
	go func() {
		for m := range sub.Events() {
			at := time.Now()
			name := m.Event()
			fc.mu.Lock()
			switch {
			case m.Synthetic():
				if name == ami.EventResync || name == ami.EventDisconnected {
					fc.synthetic++
				}
			case !slices.Contains(filteredEvents, name):
				fc.unexpected = append(fc.unexpected, strings.TrimSpace(name+" "+m.Get("UserEvent")))
			default:
				fc.counts[name]++
			}
			fc.mu.Unlock()
			if name == "QueueMemberPause" && m.Get("Interface") == iface {
				fc.pauses <- at
			}
		}
	}()
	return fc
}

func (fc *filteredConsumer) result() (counts map[string]int, unexpected []string, synthetic int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return maps.Clone(fc.counts), slices.Clone(fc.unexpected), fc.synthetic
}

// unfilteredConsumer counts the whole stream through an ami.Client subscription.
type unfilteredConsumer struct {
	events, storm, resyncs atomic.Int64
	end                    chan time.Time
	pauses                 *arrivals
}

func consumeUnfiltered(sub *ami.Subscription, stormName, endName, iface string) *unfilteredConsumer {
	uc := &unfilteredConsumer{end: make(chan time.Time, 1), pauses: newArrivals()}
	go func() {
		for m := range sub.Events() {
			if m.Synthetic() {
				if m.Event() == ami.EventResync {
					uc.resyncs.Add(1)
				}
				continue
			}
			uc.events.Add(1)
			switch m.Event() {
			case "UserEvent":
				switch m.Get("UserEvent") {
				case stormName:
					uc.storm.Add(1)
				case endName:
					uc.end <- time.Now()
				}
			case "QueueMemberPause":
				if m.Get("Interface") == iface {
					uc.pauses.add(time.Now())
				}
			}
		}
	}()
	return uc
}

func (uc *unfilteredConsumer) waitEnd(ctx context.Context) (time.Time, error) {
	select {
	case at := <-uc.end:
		return at, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("no end marker after %d events: %w", uc.events.Load(), ctx.Err())
	}
}

// loginRaw opens an AMI connection as the lab's test user with the given Events value and
// reads the banner and the login response.
func loginRaw(t testing.TB, events string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReaderSize(c, 64<<10)
	if _, err := r.ReadString('\n'); err != nil { // banner
		t.Fatal(err)
	}
	fmt.Fprintf(c, "Action: Login\r\nUsername: %s\r\nSecret: %s\r\nEvents: %s\r\n\r\n", env.AMITestUser, env.AMITestSecret, events)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("raw login: %v", err)
		}
		if strings.HasPrefix(line, "Response: ") {
			if !strings.HasPrefix(line, "Response: Success") {
				t.Fatalf("raw login: %s", strings.TrimSpace(line))
			}
			return c, r
		}
	}
}

// thinClient is the thinnest AMI event reader: the unfiltered stream (the test user, Events:
// on) read line by line and discarded; events counted, a few lines recognised.
type thinClient struct {
	events, storm, bytes atomic.Int64
	end                  chan time.Time
	done                 chan struct{} // closed when the connection ended
	err                  error         // why, once done is closed
	pauses               *arrivals
}

func dialThin(t *testing.T, stormName, endName, iface string) *thinClient {
	_, r := loginRaw(t, "on")
	tc := &thinClient{end: make(chan time.Time, 1), done: make(chan struct{}), pauses: newArrivals()}
	var (
		storm     = []byte("UserEvent: " + stormName + "\r\n")
		end       = []byte("UserEvent: " + endName + "\r\n")
		pause     = []byte("Event: QueueMemberPause\r\n")
		member    = []byte("Interface: " + iface + "\r\n")
		eventLine = []byte("Event: ")
		inPause   bool
	)
	go func() {
		defer close(tc.done)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				tc.err = err
				return
			}
			tc.bytes.Add(int64(len(line)))
			switch {
			case bytes.HasPrefix(line, eventLine):
				tc.events.Add(1)
				inPause = bytes.Equal(line, pause)
			case bytes.Equal(line, storm):
				tc.storm.Add(1)
			case bytes.Equal(line, end):
				tc.end <- time.Now()
			case inPause && bytes.Equal(line, member):
				tc.pauses.add(time.Now())
			}
		}
	}()
	return tc
}

func (tc *thinClient) waitEnd(ctx context.Context) (time.Time, error) {
	select {
	case at := <-tc.end:
		return at, nil
	case <-tc.done:
		return time.Time{}, fmt.Errorf("connection ended after %d events: %w", tc.events.Load(), tc.err)
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("no end marker after %d events: %w", tc.events.Load(), ctx.Err())
	}
}

// stormSender pipelines UserEvent actions over one raw connection (events off), keeping up to
// a window of them in flight.
type stormSender struct {
	conn       net.Conn
	r          *bufio.Reader
	ok, failed atomic.Int64
	inFlight   chan struct{}
	readErr    atomic.Pointer[error]
}

func dialStormSender(t testing.TB) *stormSender {
	c, r := loginRaw(t, "off")
	return &stormSender{conn: c, r: r}
}

func (s *stormSender) err() error {
	if p := s.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

// send sends UserEvents named name until ctx ends, perSecond of them (0: as fast as the
// responses come back), then waits for the responses of those in flight.
func (s *stormSender) send(ctx context.Context, name string, perSecond float64, window int) {
	s.inFlight = make(chan struct{}, window)
	go func() {
		for {
			line, err := s.r.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				if ctx.Err() == nil {
					err = fmt.Errorf("read responses: %w", err)
					s.readErr.Store(&err)
				}
				return
			}
			if bytes.HasPrefix(line, []byte("Response: ")) {
				if bytes.HasPrefix(line, []byte("Response: Success")) {
					s.ok.Add(1)
				} else {
					s.failed.Add(1)
				}
				<-s.inFlight
			}
		}
	}()
	w := bufio.NewWriterSize(s.conn, 32<<10)
	start := time.Now()
	for seq := 0; ctx.Err() == nil; seq++ {
		if perSecond > 0 {
			due := start.Add(time.Duration(float64(seq) / perSecond * float64(time.Second)))
			if d := time.Until(due); d > time.Millisecond {
				w.Flush()
				time.Sleep(d) // pacing the load, not waiting for anything
			}
		}
		select {
		case s.inFlight <- struct{}{}:
		default:
			w.Flush() // the window is full: let Asterisk have what is buffered
			select {
			case s.inFlight <- struct{}{}:
			case <-ctx.Done():
				continue
			}
		}
		fmt.Fprintf(w, "Action: UserEvent\r\nUserEvent: %s\r\nSeq: %d\r\n\r\n", name, seq)
	}
	w.Flush()
	// Every response is in once the whole window can be taken again.
	timeout := time.After(time.Minute)
	for range window {
		select {
		case s.inFlight <- struct{}{}:
		case <-timeout:
			err := errors.New("responses still missing a minute after the storm")
			s.readErr.Store(&err)
			return
		}
	}
}

// churn originates Local calls into the lab's device sink: each rings, is answered (astdb
// LABSINK/<dev> = answer), lasts a moment and hangs up.
type churn struct {
	placed, failed atomic.Int64
}

func (ch *churn) run(ctx context.Context, c *ami.Client, dev string, perSecond int, length time.Duration) {
	if perSecond <= 0 {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		due := int64(time.Since(start).Seconds() * float64(perSecond))
		for ch.placed.Load() < due {
			ch.placed.Add(1)
			wg.Go(func() {
				octx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := c.Originate(octx, ami.OriginateSpec{Channel: "Local/" + dev + "@lab-sink", Application: "Wait",
					Data: fmt.Sprintf("%.3f", length.Seconds()), Async: true})
				if err != nil {
					ch.failed.Add(1)
				}
			})
		}
	}
}

// waitNoCalls waits until the churn's calls have all ended.
func waitNoCalls(t testing.TB, ctx context.Context, c *ami.Client, dev string) {
	t.Helper()
	prefix := "Local/" + dev + "@lab-sink-"
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		chans, err := c.CoreShowChannels(ctx)
		if err != nil {
			t.Fatalf("CoreShowChannels: %v", err)
		}
		left := 0
		for _, ch := range chans {
			if strings.HasPrefix(ch.Channel, prefix) {
				left++
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d storm calls still up: %v", left, ctx.Err())
		case <-tk.C:
		}
	}
}
