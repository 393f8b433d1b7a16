package leader_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/leader"
)

var env *lab.Env

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper()) // a leader process for TestFailoverAfterKill, killed by it
	}
	os.Exit(lab.Main(m, lab.Options{Redis: true}, func(e *lab.Env) { env = e }))
}

// client returns a Redis client of addr (host:port) set up as presenced's store sets up its
// own (presence.OpenRedis): 2 s to dial, 1 s to read or write, ctx deadlines on the socket,
// one retry.
func client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(storeOptions(addr))
	t.Cleanup(func() { c.Close() })
	return c
}

func storeOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		DialTimeout:           2 * time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	}
}

// labAddr is the lab Redis's host:port.
func labAddr(t testing.TB) string {
	t.Helper()
	o, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	return o.Addr
}

// proxied returns a client that reaches the lab Redis through a proxy the test can cut.
func proxied(t testing.TB) (*redis.Client, *lab.Proxy) {
	t.Helper()
	p, err := lab.NewProxy(labAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return client(t, p.Addr()), p
}

// term is one call of OnStartedLeading as a recorder saw it.
type term struct {
	epoch    int64
	started  time.Time // OnStartedLeading called
	ctxDone  time.Time // its context ended
	returned time.Time // it returned
	stopped  time.Time // OnStoppedLeading called; zero until then
}

// recorder records an Elector's callbacks and checks that neither runs concurrently with
// itself or the other.
type recorder struct {
	mu      sync.Mutex
	terms   []term
	active  atomic.Int32
	overlap atomic.Bool
}

func (r *recorder) started(ctx context.Context, epoch int64) {
	if r.active.Add(1) != 1 {
		r.overlap.Store(true)
	}
	defer r.active.Add(-1)
	r.mu.Lock()
	r.terms = append(r.terms, term{epoch: epoch, started: time.Now()})
	i := len(r.terms) - 1
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.terms[i].ctxDone = time.Now()
	r.terms[i].returned = time.Now()
	r.mu.Unlock()
}

func (r *recorder) stopped() {
	if r.active.Add(1) != 1 {
		r.overlap.Store(true)
	}
	defer r.active.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.terms); n > 0 {
		r.terms[n-1].stopped = time.Now()
	} else {
		r.terms = append(r.terms, term{stopped: time.Now()}) // a stop without a start: check fails
	}
}

func (r *recorder) snapshot() []term {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]term(nil), r.terms...)
}

// check fails t when a callback overlapped another, or a stop came without its start or before
// the start returned.
func (r *recorder) check(t testing.TB, name string) {
	t.Helper()
	if r.overlap.Load() {
		t.Errorf("%s: callbacks ran concurrently", name)
	}
	for i, tm := range r.snapshot() {
		switch {
		case tm.started.IsZero():
			t.Errorf("%s: OnStoppedLeading without OnStartedLeading", name)
		case !tm.stopped.IsZero() && tm.stopped.Before(tm.returned):
			t.Errorf("%s: term %d: OnStoppedLeading before OnStartedLeading returned", name, i)
		}
	}
}

// node is one instance under test: an Elector, its callbacks and its metrics.
type node struct {
	name string
	e    *leader.Elector
	rec  *recorder
	reg  *prometheus.Registry
	stop func() // ends Run and waits for it; again does nothing
	done chan error
}

// start makes an Elector for asterisk named instance on rdb and runs it until the test ends
// (or stop). mod adjusts the options.
func start(t testing.TB, rdb redis.Cmdable, asterisk, instance string, mod func(*leader.Options)) *node {
	t.Helper()
	n := &node{name: instance, rec: &recorder{}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	o := leader.Options{Redis: rdb, Asterisk: asterisk, Instance: instance}
	o.OnStartedLeading, o.OnStoppedLeading = n.rec.started, n.rec.stopped
	o.Logger = lab.Logger(t).With("node", instance)
	o.Registerer = n.reg
	if mod != nil {
		mod(&o)
	}
	e, err := leader.New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.e = e
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	var runErr error
	n.stop = func() {
		once.Do(func() {
			cancel()
			runErr = <-n.done
		})
	}
	go func() { n.done <- e.Run(ctx) }()
	t.Cleanup(func() {
		n.stop()
		if runErr != nil {
			t.Errorf("%s: Run: %v", instance, runErr)
		}
		n.rec.check(t, instance)
	})
	return n
}

// metric reads one of the node's metrics.
func (n *node) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s: no metric %s", n.name, name)
	return 0
}

// change is a node's Leading turning on or off, as the sampler saw it.
type change struct {
	node  string
	on    bool
	epoch int64
	at    time.Time
}

// sampler polls Leading of its nodes every millisecond and records every change, and every
// sample in which more than one node led. A sample that took more than maxSample is not
// judged: the nodes were not read at one moment.
type sampler struct {
	mu      sync.Mutex
	nodes   []*node
	state   map[string]int64 // node → epoch while it leads
	changes []change
	both    []string
	skipped int
	// tolerant samplers (observe) record two leaders at once without failing the test.
	tolerant bool

	stop chan struct{}
	done chan struct{}
}

const maxSample = 2 * time.Millisecond

// watch samples nodes until the test ends, then fails it if two led at once.
func watch(t testing.TB, nodes ...*node) *sampler {
	t.Helper()
	return newSampler(t, false, nodes)
}

// observe samples nodes as watch does, but leaves it to the test to judge twoLeaders: for a
// test that shows what goes wrong without a safeguard.
func observe(t testing.TB, nodes ...*node) *sampler {
	t.Helper()
	return newSampler(t, true, nodes)
}

func newSampler(t testing.TB, tolerant bool, nodes []*node) *sampler {
	s := &sampler{nodes: nodes, state: map[string]int64{}, tolerant: tolerant, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.tolerant {
			for _, b := range s.both {
				t.Errorf("two leaders at once: %s", b)
			}
		}
		t.Logf("sampler: %d changes, %d samples with two leaders, %d slow samples not judged", len(s.changes), len(s.both), s.skipped)
	})
	return s
}

// twoLeaders returns the samples so far in which more than one node led.
func (s *sampler) twoLeaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.both...)
}

// add samples another node from now on.
func (s *sampler) add(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = append(s.nodes, n)
}

func (s *sampler) loop() {
	defer close(s.done)
	type reading struct {
		n     *node
		epoch int64
		ok    bool
	}
	var rs []reading
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(time.Millisecond):
		}
		s.mu.Lock()
		rs = rs[:0]
		begin := time.Now()
		for _, n := range s.nodes {
			epoch, ok := n.e.Leading()
			rs = append(rs, reading{n, epoch, ok})
		}
		end := time.Now()
		if end.Sub(begin) > maxSample {
			s.skipped++
			s.mu.Unlock()
			continue
		}
		var leaders []string
		for _, r := range rs {
			if r.ok {
				leaders = append(leaders, fmt.Sprintf("%s (epoch %d)", r.n.name, r.epoch))
			}
			prev, was := s.state[r.n.name]
			switch {
			case r.ok && (!was || prev != r.epoch):
				s.state[r.n.name] = r.epoch
				s.changes = append(s.changes, change{r.n.name, true, r.epoch, begin})
			case !r.ok && was:
				delete(s.state, r.n.name)
				s.changes = append(s.changes, change{r.n.name, false, prev, begin})
			}
		}
		if len(leaders) > 1 {
			s.both = append(s.both, begin.Format("15:04:05.000000")+": "+strings.Join(leaders, ", "))
		}
		s.mu.Unlock()
	}
}

// history returns the changes seen so far.
func (s *sampler) history() []change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]change(nil), s.changes...)
}

// waitFor waits up to timeout for a change that matches and returns it.
func (s *sampler) waitFor(t testing.TB, timeout time.Duration, what string, match func(change) bool) change {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, c := range s.history() {
			if match(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; changes: %v", what, timeout, s.history())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leads waits for n to start leading after the moment after and returns the change.
func (s *sampler) leads(t testing.TB, n *node, after time.Time, timeout time.Duration) change {
	t.Helper()
	return s.waitFor(t, timeout, n.name+" leading", func(c change) bool {
		return c.node == n.name && c.on && !c.at.Before(after)
	})
}

// stopsLeading waits for n to stop leading after the moment after and returns the change.
func (s *sampler) stopsLeading(t testing.TB, n *node, after time.Time, timeout time.Duration) change {
	t.Helper()
	return s.waitFor(t, timeout, n.name+" stepping down", func(c change) bool {
		return c.node == n.name && !c.on && !c.at.Before(after)
	})
}

// epochsIncrease fails t unless every term seen started with a higher epoch than the last.
func (s *sampler) epochsIncrease(t testing.TB) {
	t.Helper()
	var last int64
	for _, c := range s.history() {
		if !c.on {
			continue
		}
		if c.epoch <= last {
			t.Errorf("term of %s with epoch %d after epoch %d", c.node, c.epoch, last)
		}
		last = c.epoch
	}
}

// fast returns options for tests that need many terms: a 1 s lease.
func fast(o *leader.Options) { o.Lease = time.Second }
