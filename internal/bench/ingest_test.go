package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ami/amitest"
	"github.com/presenced/presenced/internal/lab"
)

var ingestEvents = flag.Int("ingest.events", 300_000, "events BenchmarkEventIngest replays to each client")

// BenchmarkEventIngest: how fast presenced's AMI client can take events in, when Asterisk is
// not the limit. A storm is captured from the lab once (two connections sending UserEvents as
// fast as Asterisk takes them and 20 Local calls per second, read with Events: on: everything
// Asterisk sends), then replayed over loopback TCP as fast as it goes, -ingest.events events,
// to an ami.Client (a subscription with room for every event, a consumer reading each) and to
// the thinnest client (bufio lines read and discarded), one after the other.
// Reported: events/s for each and their ratio, the process CPU time and the bytes allocated
// per event, and the events the ami.Client dropped for its subscriber.
//
//	go test -run '^$' -bench EventIngest -benchtime 3x ./internal/bench
func BenchmarkEventIngest(b *testing.B) {
	capture, perCapture := captureStorm(b)
	reps := max(1, *ingestEvents/perCapture)
	stream := bytes.Repeat(capture, reps)
	total := perCapture * reps
	var client, thin ingestRun
	for b.Loop() {
		client.add(replayToClient(b, stream, total))
		thin.add(replayToThin(b, stream, total))
	}
	b.ReportMetric(float64(perCapture), "events/capture")
	b.ReportMetric(client.rate(), "ami-events/s")
	b.ReportMetric(thin.rate(), "thin-events/s")
	b.ReportMetric(client.rate()/thin.rate(), "ami/thin")
	b.ReportMetric(client.cpuPerEvent(), "ami-cpu-ns/event")
	b.ReportMetric(thin.cpuPerEvent(), "thin-cpu-ns/event")
	b.ReportMetric(client.allocPerEvent(), "ami-B/event")
	b.ReportMetric(client.dropped, "ami-dropped")
}

// ingestRun adds up replays to one kind of client.
type ingestRun struct {
	events    int
	took, cpu time.Duration
	allocated uint64
	dropped   float64
	replays   int
}

func (r *ingestRun) add(o ingestRun) {
	r.events += o.events
	r.took += o.took
	r.cpu += o.cpu
	r.allocated += o.allocated
	r.dropped += o.dropped
	r.replays++
}

func (r *ingestRun) rate() float64          { return float64(r.events) / r.took.Seconds() }
func (r *ingestRun) cpuPerEvent() float64   { return float64(r.cpu.Nanoseconds()) / float64(r.events) }
func (r *ingestRun) allocPerEvent() float64 { return float64(r.allocated) / float64(r.events) }

// measure runs f and returns its wall time, the process CPU time and the bytes allocated.
func measure(tb testing.TB, f func()) (took, cpu time.Duration, allocated uint64) {
	tb.Helper()
	runtime.GC()
	var m0, m1 runtime.MemStats
	var r0, r1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r0); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	f()
	took = time.Since(start)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); err != nil {
		tb.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	used := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return took, used(r1) - used(r0), m1.TotalAlloc - m0.TotalAlloc
}

// captureStorm records one second of a storm in the lab as the unfiltered stream carries it,
// from the first event after login to the end marker, and counts its events.
func captureStorm(b *testing.B) (stream []byte, events int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := lab.Unique("Capture")
	endLine := []byte("UserEvent: " + run + "End\r\n")
	_, r := loginRaw(b, "on")
	var buf bytes.Buffer
	captured := make(chan error, 1)
	go func() {
		atEnd := false
		for {
			line, err := r.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				captured <- err
				return
			}
			buf.Write(line)
			if bytes.HasPrefix(line, []byte("Event: ")) {
				events++
			}
			atEnd = atEnd || bytes.Equal(line, endLine)
			if atEnd && bytes.Equal(line, []byte("\r\n")) {
				captured <- nil
				return
			}
		}
	}()

	probe := env.AMI(b, true, func(cfg *ami.Config) { cfg.Events = "system" })
	dev := fmt.Sprintf("79%06d", time.Now().UnixNano()%1_000_000) // a lab-sink device: digits
	if err := probe.DBPut(ctx, "LABSINK", dev, "answer"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = probe.DBDel(context.Background(), "LABSINK", dev) })
	stormCtx, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	var wg sync.WaitGroup
	for range 2 {
		s := dialStormSender(b)
		wg.Go(func() { s.send(stormCtx, run, 0, 512) })
	}
	var calls churn
	wg.Go(func() { calls.run(stormCtx, probe, dev, 20, 200*time.Millisecond) })
	wg.Wait()
	waitNoCalls(b, ctx, probe, dev)
	if err := probe.UserEvent(ctx, run+"End"); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-captured:
		if err != nil {
			b.Fatalf("capture: %v", err)
		}
	case <-ctx.Done():
		b.Fatal("capture: no end marker")
	}
	return buf.Bytes(), events
}

// replayToClient serves stream to an ami.Client through the fake AMI server and returns once
// its subscriber has every event (or its buffer overflowed and events were dropped).
func replayToClient(b *testing.B, stream []byte, events int) ingestRun {
	b.Helper()
	srv := amitest.NewServer(b)
	reg := prometheus.NewRegistry()
	c, err := ami.New(ami.Config{Addr: srv.Addr, Username: amitest.Username, Secret: amitest.Secret, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	// Room for every event: the figure is what the client sustains, reader and consumer
	// together, not how a full buffer drops (the storm test shows the daemon's 4096 suffice
	// for what Asterisk sends).
	sub := c.Subscribe(events)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := srv.WaitLogin(10 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	for m := range sub.Events() { // Connected, then the server's FullyBooted
		if m.Event() == ami.EventFullyBooted {
			break
		}
	}

	var (
		got  atomic.Int64
		last atomic.Int64 // when the consumer had the last event, Unix ns
	)
	go func() {
		for m := range sub.Events() {
			if !m.Synthetic() {
				got.Add(1)
				last.Store(time.Now().UnixNano())
			}
		}
	}()
	text := string(stream)
	var start time.Time
	_, cpu, allocated := measure(b, func() {
		start = time.Now()
		go func() { _ = conn.WriteRaw(text) }()
		// Done when every event was received or dropped. The drop counter is read from time
		// to time; the time taken is the consumer's.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		timeout := time.After(5 * time.Minute)
		for got.Load()+int64(counterSum(b, reg, "presenced_ami_events_dropped_total")) < int64(events) {
			select {
			case <-tick.C:
			case <-timeout:
				b.Fatalf("ami.Client: %d of %d events after 5 minutes", got.Load(), events)
			}
		}
	})
	return ingestRun{events: events, took: time.Unix(0, last.Load()).Sub(start), cpu: cpu, allocated: allocated,
		dropped: counterSum(b, reg, "presenced_ami_events_dropped_total")}
}

// replayToThin serves stream over loopback TCP to the thinnest client.
func replayToThin(b *testing.B, stream []byte, events int) ingestRun {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write(stream)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	got := 0
	took, cpu, allocated := measure(b, func() {
		for got < events {
			line, err := r.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				b.Fatalf("thin client: %d of %d events: %v", got, events, err)
			}
			if bytes.HasPrefix(line, []byte("Event: ")) {
				got++
			}
		}
	})
	return ingestRun{events: events, took: took, cpu: cpu, allocated: allocated}
}
