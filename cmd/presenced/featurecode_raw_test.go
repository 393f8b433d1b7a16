package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/internal/lab"
)

// The raw limit of the feature-code burst: a thin feature-code application that does, for each
// call, what presenced's does on the PBX and nothing else. It answers the channel, sends the AMI
// actions presenced sent for that caller's switch (recorded from the daemon's own sessions) over
// one reading and one changing AMI session (presenced's read and changes sessions), the reads
// pipelined and awaited and then the changes, and plays the confirmation. No Redis, no plan, no
// journal. Its latency runs as presenced's does: from the StasisStart of the number dialled
// whole to the confirmation started.

// readActions are the AMI actions that only read; presenced sends them on its read session.
var readActions = []string{"Action: Getvar\r\n", "Action: DBGet\r\n", "Action: DBGetTree\r\n",
	"Action: PresenceState\r\n", "Action: PresenceStateList\r\n", "Action: DeviceStateList\r\n",
	"Action: QueueStatus\r\n", "Action: ExtensionState\r\n"}

// rawShare is one caller's share of a recorded burst.
type rawShare struct{ reads, writes []string }

var actionIDLine = regexp.MustCompile(`(?m)^ActionID: .*\r\n`)

// shareByCaller gives each caller (by extension) the recorded actions that name it, and spreads
// those that name no single caller (a batch's read of a whole astdb family) over the callers in
// turn, so that the thin client sends exactly the actions presenced sent.
func shareByCaller(actions []string, exts []string) (map[string]*rawShare, int) {
	shares := make(map[string]*rawShare, len(exts))
	for _, e := range exts {
		shares[e] = &rawShare{}
	}
	extIn := regexp.MustCompile(`(?:^|[^0-9])(` + strings.Join(exts, "|") + `)(?:[^0-9]|$)`)
	shared, turn := 0, 0
	for _, a := range actions {
		a = actionIDLine.ReplaceAllString(a, "")
		var owner string
		if ms := extIn.FindAllStringSubmatch(a, -1); len(ms) > 0 {
			owner = ms[0][1]
			for _, m := range ms[1:] {
				if m[1] != owner {
					owner = ""
				}
			}
		}
		if owner == "" {
			owner = exts[turn%len(exts)]
			turn++
			shared++
		}
		s := shares[owner]
		if hasAnyPrefix(a, readActions...) {
			s.reads = append(s.reads, a)
		} else {
			s.writes = append(s.writes, a)
		}
	}
	return shares, shared
}

// rawAMI is a thin AMI session: events off, actions written as they come, responses matched
// by ActionID (a list complete at its ...Complete event).
type rawAMI struct {
	conn net.Conn
	wmu  sync.Mutex
	w    *bufio.Writer

	mu      sync.Mutex
	next    int
	waiting map[string]chan bool // ActionID -> answered (true: Success)
}

func dialRawAMI(t testing.TB) *rawAMI {
	t.Helper()
	c, err := net.Dial("tcp", env.AMIAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawAMI{conn: c, w: bufio.NewWriterSize(c, 64<<10), waiting: map[string]chan bool{}}
	br := bufio.NewReaderSize(c, 64<<10)
	if _, err := br.ReadString('\n'); err != nil { // banner
		t.Fatal(err)
	}
	go r.read(br)
	if ok := <-r.send(fmt.Sprintf("Action: Login\r\nUsername: %s\r\nSecret: %s\r\nEvents: off\r\n\r\n", lab.AMIUser, lab.AMISecret)); !ok {
		t.Fatal("raw AMI login failed")
	}
	return r
}

// send writes one action (ending in its blank line, without an ActionID) and returns what
// reports its answer.
func (r *rawAMI) send(action string) <-chan bool {
	done := make(chan bool, 1)
	r.mu.Lock()
	r.next++
	id := fmt.Sprintf("raw-%d", r.next)
	r.waiting[id] = done
	r.mu.Unlock()
	r.wmu.Lock()
	r.w.WriteString(strings.TrimSuffix(action, "\r\n"))
	r.w.WriteString("ActionID: " + id + "\r\n\r\n")
	r.w.Flush()
	r.wmu.Unlock()
	return done
}

// do sends actions back to back and waits for every answer; it returns how many failed.
func (r *rawAMI) do(actions []string) int {
	chs := make([]<-chan bool, len(actions))
	for i, a := range actions {
		chs[i] = r.send(a)
	}
	failed := 0
	for _, ch := range chs {
		if !<-ch {
			failed++
		}
	}
	return failed
}

func (r *rawAMI) read(br *bufio.Reader) {
	fields := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			r.mu.Lock()
			for id, ch := range r.waiting {
				ch <- false
				delete(r.waiting, id)
			}
			r.mu.Unlock()
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			if k, v, ok := strings.Cut(line, ": "); ok {
				fields[k] = v
			}
			continue
		}
		id := fields["ActionID"]
		var ok, done bool
		switch {
		case fields["Response"] != "" && !strings.EqualFold(fields["EventList"], "start"):
			ok, done = fields["Response"] == "Success", true
		case fields["Event"] != "" && strings.EqualFold(fields["EventList"], "Complete"):
			ok, done = true, true
		}
		if done && id != "" {
			r.mu.Lock()
			if ch := r.waiting[id]; ch != nil {
				ch <- ok
				delete(r.waiting, id)
			}
			r.mu.Unlock()
		}
		clear(fields)
	}
}

// rawFeatureCodes is the thin feature-code application: it takes the calls that enter Stasis
// through the dialplan's PRESENCED_APP (which the caller points at Name) and reports each
// call's latency and the actions that failed.
type rawFeatureCodes struct {
	cli            *ari.Client
	reads, changes *rawAMI
	latencies      chan time.Duration
	failed         chan string
	readsFailed    atomic.Int64 // reads Asterisk answered with an error (as it did presenced's)

	// calls are the calls under way: a call left in the application when the test ends
	// would stay in Stasis (docs/asterisk.md §7) until its caller gives up, and be taken
	// for another test's call.
	calls sync.WaitGroup

	mu        sync.Mutex
	shares    map[string]*rawShare     // by caller's extension
	playbacks map[string]chan struct{} // playback id -> finished
}

// setShares sets what the calls of the next burst send.
func (r *rawFeatureCodes) setShares(shares map[string]*rawShare) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shares = shares
}

func startRawFeatureCodes(t testing.TB) *rawFeatureCodes {
	t.Helper()
	cli, err := ari.New(ari.Config{URL: env.ARIURL, Username: lab.ARIUser, Password: lab.ARIPassword,
		App: "presenced-raw", InstanceID: uniqID("fc")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go cli.Run(ctx)
	r := &rawFeatureCodes{cli: cli, reads: dialRawAMI(t), changes: dialRawAMI(t),
		latencies: make(chan time.Duration, 1024), failed: make(chan string, 1024),
		playbacks: map[string]chan struct{}{}}
	deadline := time.Now().Add(10 * time.Second)
	for !cli.Status().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("raw feature-code application: ARI never connected: %v", cli.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	go r.events(ctx)
	return r
}

// wait waits until every call has ended (the confirmation played, the channel hung up).
func (r *rawFeatureCodes) wait(t testing.TB, within time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { r.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("raw feature-code application: calls still under way after %v", within)
	}
}

func (r *rawFeatureCodes) events(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.cli.Events():
			switch e := ev.(type) {
			case *ari.StasisStart:
				r.calls.Go(func() { r.call(ctx, time.Now(), e) })
			case *ari.PlaybackFinished:
				r.mu.Lock()
				if ch := r.playbacks[e.Playback.ID]; ch != nil {
					close(ch)
					delete(r.playbacks, e.Playback.ID)
				}
				r.mu.Unlock()
			}
		}
	}
}

// call is one feature-code call: Stasis(app,activate,<n>,<transfer>,<caller number>).
func (r *rawFeatureCodes) call(ctx context.Context, decided time.Time, e *ari.StasisStart) {
	id := e.Channel.ID
	fail := func(format string, args ...any) {
		r.failed <- fmt.Sprintf(format, args...)
		_ = r.cli.Hangup(ctx, id)
	}
	if len(e.Args) < 4 {
		fail("call %s: Stasis args %q", id, e.Args)
		return
	}
	r.mu.Lock()
	share := r.shares[e.Args[3]]
	r.mu.Unlock()
	if share == nil {
		fail("call %s from %q: no recorded actions", id, e.Args[3])
		return
	}
	answered := make(chan error, 1)
	go func() { answered <- r.cli.Answer(ctx, id) }()
	r.readsFailed.Add(int64(r.reads.do(share.reads)))
	if n := r.changes.do(share.writes); n > 0 {
		r.failed <- fmt.Sprintf("call from %s: %d of %d changes failed", e.Args[3], n, len(share.writes))
	}
	if err := <-answered; err != nil {
		fail("answer %s: %v", id, err)
		return
	}
	pb := uniqID("raw-pb-")
	finished := make(chan struct{})
	r.mu.Lock()
	r.playbacks[pb] = finished
	r.mu.Unlock()
	if err := r.cli.Play(ctx, id, pb, "sound:activated"); err != nil { // ari/featurecode's soundConfirm
		fail("play on %s: %v", id, err)
		return
	}
	r.latencies <- time.Since(decided)
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
	}
	_ = r.cli.Hangup(ctx, id)
}
