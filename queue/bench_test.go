package queue

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// The benchmarks compare a mass switch through the concern with the naive action set sent
// by a minimal raw AMI client pipelining over one net.Conn, in the same run, against the lab
// Asterisk. They run only with -bench, e.g.
//
//	go test ./queue -run '^$' -bench Mass -benchtime 3x
//	PRESENCED_BENCH_USERS=1000 go test ./queue -run '^$' -bench MassLogin -benchtime 1x
//
// ns/op is one mass switch through the concern; the metrics report both sides.

// benchUsers is PRESENCED_BENCH_USERS, or 200 (small enough for CI).
func benchUsers(b *testing.B) int {
	n := 200
	if s := os.Getenv("PRESENCED_BENCH_USERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 9999 {
			b.Fatalf("PRESENCED_BENCH_USERS=%q: want 1..9999", s)
		}
	}
	return n
}

var benchQueues = []string{"support", "sales"}

// benchIfaces returns n interfaces unique to the benchmark.
func benchIfaces(b *testing.B, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = iface(fmt.Sprintf("%s%04d", ext(b, 0), i))
	}
	return out
}

// BenchmarkMassLogin: N users join support and sales paused with a reason. The concern sends
// one QueueAdd per user and queue (Paused and Reason included); the naive way is QueueAdd, then
// QueuePause, per user and queue.
func BenchmarkMassLogin(b *testing.B) {
	n := benchUsers(b)
	f := newFixture(b, func(o *Options) { o.Logger = nil })
	raw := dialRaw(b)
	ifaces := benchIfaces(b, n)
	cleanup := func() { raw.mustPipeline(b, removeAll(ifaces), true) }
	b.Cleanup(cleanup)
	cleanup()

	var concern, naive, lean time.Duration
	iterations := 0
	for b.Loop() {
		iterations++
		start := time.Now()
		applyAll(b, f.c, ifaces, func(me string) []presence.Op {
			var ops []presence.Op
			for _, q := range benchQueues {
				ops = append(ops, presence.Op{Kind: presence.OpQueueAdd, Queue: q, Member: &presence.QueueMember{
					Interface: me, MemberName: me, Paused: true, Reason: "Mass lunch"}})
			}
			return ops
		})
		concern += time.Since(start)

		b.StopTimer()
		checkPaused(b, f, ifaces, true)
		cleanup()
		var acts []string
		for _, me := range ifaces {
			for _, q := range benchQueues {
				acts = append(acts, action("QueueAdd", "Queue", q, "Interface", me, "MemberName", me),
					action("QueuePause", "Queue", q, "Interface", me, "Paused", "true", "Reason", "Mass lunch"))
			}
		}
		start = time.Now()
		raw.mustPipeline(b, acts, false)
		naive += time.Since(start)
		checkPaused(b, f, ifaces, true)
		cleanup()

		acts = acts[:0] // the concern's action set, sent raw: Asterisk's cost alone
		for _, me := range ifaces {
			for _, q := range benchQueues {
				acts = append(acts, action("QueueAdd", "Queue", q, "Interface", me, "MemberName", me,
					"Paused", "true", "Reason", "Mass lunch"))
			}
		}
		start = time.Now()
		raw.mustPipeline(b, acts, false)
		lean += time.Since(start)
		checkPaused(b, f, ifaces, true)
		cleanup()
		b.StartTimer()
	}
	report(b, n, iterations, concern, naive, lean)
}

// BenchmarkMassPause: N users who are in support and sales pause in both. The concern sends one
// QueuePause without Queue per user (coalesced); the naive way is one QueuePause per user and
// queue.
func BenchmarkMassPause(b *testing.B) {
	n := benchUsers(b)
	f := newFixture(b, func(o *Options) { o.Logger = nil })
	raw := dialRaw(b)
	ifaces := benchIfaces(b, n)
	cleanup := func() { raw.mustPipeline(b, removeAll(ifaces), true) }
	b.Cleanup(cleanup)
	cleanup()
	var adds []string
	for _, me := range ifaces {
		for _, q := range benchQueues {
			adds = append(adds, action("QueueAdd", "Queue", q, "Interface", me))
		}
	}
	raw.mustPipeline(b, adds, false)
	unpauseAll := func() {
		var acts []string
		for _, me := range ifaces {
			acts = append(acts, action("QueuePause", "Interface", me, "Paused", "false"))
		}
		raw.mustPipeline(b, acts, false)
	}
	want := map[presence.UserID]*presence.Target{}
	for _, me := range ifaces {
		w := &presence.Target{Interface: me, Queues: map[string]*presence.QueueMember{}}
		for _, q := range benchQueues {
			w.Queues[q] = &presence.QueueMember{Interface: me}
		}
		want[presence.UserID(me)] = w
	}

	var concern, naive, lean time.Duration
	iterations := 0
	for b.Loop() {
		iterations++
		b.StopTimer()
		have := map[presence.UserID]*presence.Target{}
		if err := f.c.Observe(context.Background(), want, have); err != nil { // what the concern knows
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		applyAll(b, f.c, ifaces, func(me string) []presence.Op { return pauseOps(me, true, "Mass meeting", benchQueues...) })
		concern += time.Since(start)

		b.StopTimer()
		checkPaused(b, f, ifaces, true)
		unpauseAll()
		var acts []string
		for _, me := range ifaces {
			for _, q := range benchQueues {
				acts = append(acts, action("QueuePause", "Queue", q, "Interface", me, "Paused", "true", "Reason", "Mass meeting"))
			}
		}
		start = time.Now()
		raw.mustPipeline(b, acts, false)
		naive += time.Since(start)
		checkPaused(b, f, ifaces, true)
		unpauseAll()

		acts = acts[:0] // the concern's action set, sent raw: Asterisk's cost alone
		for _, me := range ifaces {
			acts = append(acts, action("QueuePause", "Interface", me, "Paused", "true", "Reason", "Mass meeting"))
		}
		start = time.Now()
		raw.mustPipeline(b, acts, false)
		lean += time.Since(start)
		checkPaused(b, f, ifaces, true)
		unpauseAll()
		b.StartTimer()
	}
	if got := f.count.count("QueuePause"); got != n*iterations {
		b.Errorf("concern sent %d QueuePause actions for %d users × %d runs", got, n, iterations)
	}
	report(b, n, iterations, concern, naive, lean)
}

// applyAll applies every user's ops in parallel, as the engine does in a mass switch.
func applyAll(b *testing.B, c *Concern, ifaces []string, ops func(me string) []presence.Op) {
	var wg sync.WaitGroup
	for _, me := range ifaces {
		o := ops(me)
		wg.Go(func() {
			for _, out := range c.Apply(context.Background(), &presence.User{ID: presence.UserID(me)}, o) {
				if out.Result != presence.ResultApplied {
					b.Errorf("%+v", out)
				}
			}
		})
	}
	wg.Wait()
}

// report reports users per second through the concern, with the naive action set sent raw,
// and with the concern's own action set sent raw (what Asterisk alone allows), and the ratio
// concern/naive.
func report(b *testing.B, users, iterations int, concern, naive, lean time.Duration) {
	per := func(d time.Duration) float64 { return float64(users*iterations) / d.Seconds() }
	b.ReportMetric(per(concern), "concern-users/s")
	b.ReportMetric(per(naive), "naive-users/s")
	b.ReportMetric(per(lean), "lean-raw-users/s")
	b.ReportMetric(per(concern)/per(naive), "speedup")
	b.ReportMetric(float64(users), "users")
}

// checkPaused reads the PBX: every interface is in both queues with the given paused state.
func checkPaused(b *testing.B, f *fixture, ifaces []string, paused bool) {
	st, err := f.pbx.QueueStatus(context.Background(), "", "")
	if err != nil {
		b.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range st.Members {
		if m.Paused == paused {
			seen[m.Queue+" "+strings.ToLower(m.Location)] = true
		}
	}
	for _, me := range ifaces {
		for _, q := range benchQueues {
			if !seen[q+" "+strings.ToLower(me)] {
				b.Fatalf("%s in %s: not a member with paused=%t", me, q, paused)
			}
		}
	}
}

func removeAll(ifaces []string) []string {
	var acts []string
	for _, me := range ifaces {
		for _, q := range benchQueues {
			acts = append(acts, action("QueueRemove", "Queue", q, "Interface", me))
		}
	}
	return acts
}

// action encodes an AMI action from name/value pairs (ActionID is added by pipeline).
func action(name string, kv ...string) string {
	var sb strings.Builder
	sb.WriteString("Action: " + name + "\r\n")
	for i := 0; i+1 < len(kv); i += 2 {
		sb.WriteString(kv[i] + ": " + kv[i+1] + "\r\n")
	}
	return sb.String()
}

// rawAMI is the naive client: one net.Conn, actions written back to back, replies counted.
type rawAMI struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

func dialRaw(b *testing.B) *rawAMI {
	conn, err := net.DialTimeout("tcp", env.AMIAddr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	r := &rawAMI{conn: conn, r: bufio.NewReader(conn)}
	if _, err := r.r.ReadString('\n'); err != nil { // banner
		b.Fatal(err)
	}
	login := action("Login", "Username", env.AMIUser, "Secret", env.AMISecret, "Events", "off")
	if _, err := conn.Write([]byte(login + "\r\n")); err != nil {
		b.Fatal(err)
	}
	if m, err := r.readMessage(); err != nil || m["Response"] != "Success" {
		b.Fatalf("raw login: %v %v", m, err)
	}
	return r
}

func (r *rawAMI) readMessage() (map[string]string, error) {
	m := map[string]string{}
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			return m, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(m) == 0 {
				continue
			}
			return m, nil
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
}

// mustPipeline writes the actions back to back while reading their replies, and fails unless
// every reply is Success (or, with anyAnswer, any reply at all).
func (r *rawAMI) mustPipeline(b *testing.B, actions []string, anyAnswer bool) {
	r.conn.SetDeadline(time.Now().Add(5 * time.Minute))
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(r.conn, 64<<10)
		for i, a := range actions {
			if _, err := fmt.Fprintf(w, "%sActionID: raw%d\r\n\r\n", a, r.id+i); err != nil {
				werr <- err
				return
			}
		}
		werr <- w.Flush()
	}()
	r.id += len(actions)
	for got := 0; got < len(actions); {
		m, err := r.readMessage()
		if err != nil {
			b.Fatalf("raw read after %d of %d replies: %v", got, len(actions), err)
		}
		if _, ok := m["Response"]; !ok {
			continue // an event
		}
		got++
		if !anyAnswer && m["Response"] != "Success" {
			b.Fatalf("raw action failed: %v", m)
		}
	}
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
}
