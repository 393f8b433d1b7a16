package presence

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/internal/fakeclock"
)

// newWQClock is the fake clock of the work queue tests: workQueueOptions.Now and NewTimer,
// moved only by the test.
func newWQClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC))
}

// newTestWorkQueue returns a queue on clock c (nil: the real clock), shut down when the test
// ends.
func newTestWorkQueue[K comparable](t *testing.T, c *fakeclock.Clock, opts workQueueOptions) *workQueue[K] {
	t.Helper()
	if c != nil {
		opts.Now, opts.NewTimer = c.Now, c.NewTimer
	}
	q, err := newWorkQueue[K](opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.ShutDown)
	return q
}

// wqGet is Get that fails the test if no key comes within 10 s.
func wqGet[K comparable](t *testing.T, q *workQueue[K]) K {
	t.Helper()
	type got struct {
		k  K
		ok bool
	}
	ch := make(chan got, 1)
	go func() { k, ok := q.Get(); ch <- got{k, ok} }()
	select {
	case g := <-ch:
		if !g.ok {
			t.Fatal("Get reported shutdown")
		}
		return g.k
	case <-time.After(10 * time.Second):
		t.Fatal("Get handed out nothing within 10 s")
	}
	panic("unreachable")
}

func TestWorkQueueOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts workQueueOptions
		want string // "" means valid
	}{
		{workQueueOptions{}, ""},
		{workQueueOptions{BackoffMin: time.Second, BackoffMax: time.Second, BackoffJitter: 1}, ""},
		{workQueueOptions{BackoffMin: time.Minute}, ""}, // BackoffMax defaults to at least BackoffMin
		{workQueueOptions{BackoffMin: -time.Second}, "workQueueOptions.BackoffMin must not be negative, got -1s"},
		{workQueueOptions{BackoffMax: -time.Second}, "workQueueOptions.BackoffMax must not be negative, got -1s"},
		{workQueueOptions{BackoffMin: 2 * time.Second, BackoffMax: time.Second}, "workQueueOptions.BackoffMax (1s) must not be below BackoffMin (2s)"},
		{workQueueOptions{BackoffJitter: -0.1}, "workQueueOptions.BackoffJitter must be between 0 and 1, got -0.1"},
		{workQueueOptions{BackoffJitter: 1.5}, "workQueueOptions.BackoffJitter must be between 0 and 1, got 1.5"},
		{workQueueOptions{BackoffJitter: math.NaN()}, "workQueueOptions.BackoffJitter must be between 0 and 1, got NaN"},
	} {
		q, err := newWorkQueue[string](tc.opts)
		if q != nil {
			q.ShutDown()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestWorkQueueOrder checks dedup, priority and FIFO: the keys come out of Get in the order
// listed, and only once each.
func TestWorkQueueOrder(t *testing.T) {
	type add struct {
		key string
		p   workPriority
	}
	L, H := priorityLow, priorityHigh
	for _, tc := range []struct {
		name string
		adds []add
		want []string
	}{
		{"one key queued once", []add{{"a", L}, {"a", L}, {"a", L}}, []string{"a"}},
		{"dedup keeps the first place", []add{{"a", L}, {"b", L}, {"a", L}}, []string{"a", "b"}},
		{"FIFO within a level", []add{{"c", L}, {"a", L}, {"b", L}}, []string{"c", "a", "b"}},
		{"high before low", []add{{"a", L}, {"b", L}, {"c", H}, {"d", H}}, []string{"c", "d", "a", "b"}},
		{"an add of higher priority raises the waiting key", []add{{"a", L}, {"b", L}, {"b", H}}, []string{"b", "a"}},
		{"raised keys queue behind the high ones already there", []add{{"a", H}, {"b", L}, {"c", L}, {"c", H}}, []string{"a", "c", "b"}},
		{"an add of lower priority does not lower it", []add{{"a", H}, {"b", H}, {"a", L}, {"c", L}}, []string{"a", "b", "c"}},
		{"an unknown priority counts as high", []add{{"a", L}, {"b", workPriority(7)}}, []string{"b", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestWorkQueue[string](t, newWQClock(), workQueueOptions{})
			for _, a := range tc.adds {
				q.Add(a.key, a.p)
			}
			if n := q.Len(); n != len(tc.want) {
				t.Fatalf("Len = %d, want %d", n, len(tc.want))
			}
			var got []string
			for range tc.want {
				k := wqGet(t, q)
				got = append(got, k)
				q.Done(k)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("handed out %v, want %v", got, tc.want)
			}
			if n := q.Len(); n != 0 {
				t.Errorf("Len = %d after all were handed out, want 0", n)
			}
		})
	}
}

func TestWorkQueueAddWhileProcessingHandsOutOnceMoreAfterDone(t *testing.T) {
	q := newTestWorkQueue[string](t, newWQClock(), workQueueOptions{})
	q.Add("a", priorityLow)
	if k := wqGet(t, q); k != "a" {
		t.Fatalf("got %q", k)
	}
	// A burst of causes while a is processed: a waits, behind nothing, but is not handed out.
	q.Add("a", priorityLow)
	q.Add("a", priorityHigh)
	q.Add("a", priorityLow)
	q.Add("b", priorityLow)
	if n := q.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2 (a waiting for its pass to end, b)", n)
	}
	if k := wqGet(t, q); k != "b" {
		t.Fatalf("got %q while a was processed, want b (a is high, but busy)", k)
	}
	q.Done("a")
	if k := wqGet(t, q); k != "a" {
		t.Fatalf("got %q after Done(a), want a", k)
	}
	q.Done("a")
	q.Done("b")
	q.Done("b") // a second Done is ignored
	if n := q.Len(); n != 0 {
		t.Errorf("Len = %d, want 0: the burst made one more pass", n)
	}
	q.Add("c", priorityLow)
	if k := wqGet(t, q); k != "c" {
		t.Errorf("got %q, want c (no stale a or b left)", k)
	}
}

// TestWorkQueueOneWorkerPerKey runs 64 workers against adders that bump a version of each key
// and add it: no key is ever processed by two workers at once, and every key's last pass began
// after its last version (nothing lost).
func TestWorkQueueOneWorkerPerKey(t *testing.T) {
	const (
		workers = 64
		adders  = 8
		keys    = 50
		rounds  = 2000
	)
	q := newTestWorkQueue[int](t, nil, workQueueOptions{})
	var (
		active   [keys]atomic.Int32
		version  [keys]atomic.Int64 // bumped before each add
		seen     [keys]atomic.Int64 // the highest version a pass began after
		passes   atomic.Int64
		overlaps atomic.Int64
	)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				if active[k].Add(1) != 1 {
					overlaps.Add(1)
				}
				v := version[k].Load()
				runtime.Gosched()
				if v > seen[k].Load() {
					seen[k].Store(v) // only this worker holds k
				}
				passes.Add(1)
				active[k].Add(-1)
				q.Done(k)
			}
		})
	}
	var adding sync.WaitGroup
	for a := range adders {
		adding.Go(func() {
			for i := range rounds {
				k := (a*7 + i) % keys
				version[k].Add(1)
				q.Add(k, workPriority(i%2))
				runtime.Gosched()
			}
		})
	}
	adding.Wait()
	caughtUp := func() bool {
		for k := range keys {
			if seen[k].Load() != version[k].Load() {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !caughtUp(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("some key's last add was never followed by a pass")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.ShutDownWithDrain(ctx); err != nil {
		t.Fatal(err)
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(10 * time.Second):
		t.Fatal("ShutDown left workers waiting in Get")
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two workers held one key", n)
	}
	t.Logf("%d adds, %d passes", adders*rounds, passes.Load())
	if p := passes.Load(); p > adders*rounds || p < keys {
		t.Errorf("%d passes for %d adds of %d keys", p, adders*rounds, keys)
	}
}

func TestWorkQueueDelayedAdds(t *testing.T) {
	c := newWQClock()
	q := newTestWorkQueue[string](t, c, workQueueOptions{})
	due := func(k string) time.Duration {
		t.Helper()
		at, ok := q.Due(k)
		if !ok {
			return -1
		}
		return at.Sub(c.Now())
	}
	expectLen := func(want int) {
		t.Helper()
		if n := q.Len(); n != want {
			t.Fatalf("Len = %d, want %d", n, want)
		}
	}

	// Waits for its time, then is handed out.
	q.AddAfter("a", priorityLow, 5*time.Second)
	expectLen(0)
	if d := due("a"); d != 5*time.Second {
		t.Fatalf("a due in %s, want 5s", d)
	}
	c.Advance(4 * time.Second)
	expectLen(0)
	c.Advance(time.Second)
	if k := wqGet(t, q); k != "a" {
		t.Fatalf("got %q", k)
	}
	q.Done("a")

	// The earlier of two delayed adds wins; the later ones make no second pass.
	q.AddAfter("b", priorityLow, 10*time.Second)
	q.AddAfter("b", priorityLow, 2*time.Second)
	q.AddAfter("b", priorityLow, 8*time.Second)
	if d := due("b"); d != 2*time.Second {
		t.Fatalf("b due in %s, want 2s", d)
	}
	c.Advance(2 * time.Second)
	expectLen(1)
	q.Done(wqGet(t, q))
	c.Advance(10 * time.Second)
	expectLen(0)

	// An immediate add makes the delayed one moot, and keeps its higher priority.
	q.AddAfter("c", priorityHigh, 5*time.Second)
	q.Add("d", priorityLow)
	q.Add("c", priorityLow)
	if d := due("c"); d != -1 {
		t.Fatalf("c still due in %s after an immediate add", d)
	}
	if k := wqGet(t, q); k != "c" {
		t.Fatalf("got %q, want c (high, from its delayed add)", k)
	}
	q.Done("c")
	q.Done(wqGet(t, q))
	c.Advance(5 * time.Second)
	expectLen(0)

	// A key already waiting makes a delayed add moot.
	q.Add("e", priorityLow)
	q.AddAfter("e", priorityLow, time.Second)
	if d := due("e"); d != -1 {
		t.Fatalf("waiting e also due in %s", d)
	}
	q.Done(wqGet(t, q))

	// A delayed add of a key being processed falls due, then waits for Done.
	q.Add("f", priorityLow)
	wqGet(t, q)
	q.AddAfter("f", priorityLow, time.Second)
	c.Advance(time.Second)
	q.Add("g", priorityLow)
	if k := wqGet(t, q); k != "g" {
		t.Fatalf("got %q while f was processed", k)
	}
	q.Done("f")
	if k := wqGet(t, q); k != "f" {
		t.Fatalf("got %q, want f after its Done", k)
	}
	q.Done("f")
	q.Done("g")

	// A delayed high add falls due ahead of low keys that waited longer.
	q.AddAfter("h", priorityHigh, time.Second)
	q.Add("i", priorityLow)
	c.Advance(time.Second)
	if k := wqGet(t, q); k != "h" {
		t.Fatalf("got %q, want h", k)
	}
	q.Done("h")
	q.Done(wqGet(t, q))

	// Shutting down drops delayed adds.
	q.AddAfter("k", priorityHigh, time.Second)
	q.ShutDown()
	if d := due("k"); d != -1 {
		t.Fatalf("k still due in %s after ShutDown", d)
	}
	c.Advance(time.Second)
	if k, ok := q.Get(); ok {
		t.Fatalf("Get handed out %q after ShutDown", k)
	}
}

// TestWorkQueueTimerWakesAWaitingGet runs on the real clock: Get waits before the key is due,
// so only the timer goroutine can hand it out.
func TestWorkQueueTimerWakesAWaitingGet(t *testing.T) {
	q := newTestWorkQueue[string](t, nil, workQueueOptions{})
	start := time.Now()
	q.AddAfter("a", priorityLow, 50*time.Millisecond)
	q.AddAfter("b", priorityLow, time.Hour)
	watchdog := time.AfterFunc(10*time.Second, q.ShutDown)
	defer watchdog.Stop()
	k, ok := q.Get()
	if !ok || k != "a" {
		t.Fatalf("Get = %q, %v; want a within 10 s", k, ok)
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("a handed out after %s, before it was due", took)
	}
	if _, ok := q.Due("b"); !ok {
		t.Error("b is no longer delayed")
	}
}

func TestWorkQueueBackoff(t *testing.T) {
	t.Run("doubles from min to max, Forget resets", func(t *testing.T) {
		c := newWQClock()
		q := newTestWorkQueue[string](t, c, workQueueOptions{BackoffMin: time.Second, BackoffMax: 10 * time.Second})
		for i, want := range []time.Duration{1, 2, 4, 8, 10, 10, 10} {
			q.AddRateLimited("a")
			at, ok := q.Due("a")
			if !ok || at.Sub(c.Now()) != want*time.Second {
				t.Fatalf("failure %d: due in %s (%v), want %ds", i+1, at.Sub(c.Now()), ok, want)
			}
			if n := q.NumRequeues("a"); n != i+1 {
				t.Fatalf("NumRequeues = %d, want %d", n, i+1)
			}
			c.Advance(want * time.Second)
			q.Done(wqGet(t, q))
		}
		q.Forget("a")
		if n := q.NumRequeues("a"); n != 0 {
			t.Fatalf("NumRequeues = %d after Forget", n)
		}
		q.AddRateLimited("a")
		if at, _ := q.Due("a"); at.Sub(c.Now()) != time.Second {
			t.Fatalf("due in %s after Forget, want 1s", at.Sub(c.Now()))
		}
		if n := q.NumRequeues("b"); n != 0 {
			t.Fatalf("b has %d requeues from a's failures", n)
		}
	})

	t.Run("table", func(t *testing.T) {
		for _, tc := range []struct {
			min, max time.Duration
			jitter   float64
			failures int
			rand     int64 // what randN returns, clamped to its range; -1 means its top
			want     time.Duration
		}{
			{time.Second, time.Minute, 0, 0, 0, time.Second},
			{time.Second, time.Minute, 0, 5, 0, 32 * time.Second},
			{time.Second, time.Minute, 0, 6, 0, time.Minute},
			{time.Second, time.Minute, 0, 62, 0, time.Minute},
			{time.Second, time.Minute, 0, 1000, 0, time.Minute},
			{time.Second, time.Second, 0, 3, 0, time.Second},
			{0, 0, 0, 0, 0, 500 * time.Millisecond},
			{0, 0, 0, 20, 0, 30 * time.Second},
			{time.Second, time.Minute, 0.5, 2, 0, 4 * time.Second},                              // no jitter drawn
			{time.Second, time.Minute, 0.5, 2, -1, 2 * time.Second},                             // all of it
			{time.Second, time.Minute, 0.5, 9, -1, 30 * time.Second},                            // at the cap too
			{time.Second, time.Minute, 0.25, 0, -1, 750 * time.Millisecond},                     // a quarter
			{time.Second, time.Minute, 1, 0, -1, 0},                                             // all: no wait
			{time.Second, time.Minute, 0.5, 1, int64(time.Second / 2), 1500 * time.Millisecond}, // in between
		} {
			q := newTestWorkQueue[string](t, newWQClock(), workQueueOptions{
				BackoffMin: tc.min, BackoffMax: tc.max, BackoffJitter: tc.jitter,
				randN: func(n int64) int64 {
					if tc.rand < 0 || tc.rand >= n {
						return n - 1
					}
					return tc.rand
				},
			})
			if got := q.backoff(tc.failures); got != tc.want {
				t.Errorf("min %s max %s jitter %v failures %d rand %d: %s, want %s", tc.min, tc.max, tc.jitter, tc.failures, tc.rand, got, tc.want)
			}
		}
	})

	t.Run("jitter stays in bounds and spreads", func(t *testing.T) {
		q := newTestWorkQueue[string](t, newWQClock(), workQueueOptions{BackoffMin: time.Second, BackoffMax: 8 * time.Second, BackoffJitter: 0.5})
		for failures, d := range []time.Duration{1, 2, 4, 8, 8} {
			d *= time.Second
			distinct := map[time.Duration]bool{}
			for range 1000 {
				got := q.backoff(failures)
				if got < d/2 || got > d {
					t.Fatalf("failures %d: %s outside [%s, %s]", failures, got, d/2, d)
				}
				distinct[got] = true
			}
			if len(distinct) < 100 {
				t.Errorf("failures %d: only %d distinct delays in 1000", failures, len(distinct))
			}
		}
	})
}

func TestWorkQueueShutDown(t *testing.T) {
	t.Run("wakes every Get, drops waiting keys, ignores adds", func(t *testing.T) {
		q := newTestWorkQueue[string](t, nil, workQueueOptions{})
		const getters = 8
		done := make(chan bool, getters)
		for range getters {
			go func() { _, ok := q.Get(); done <- ok }()
		}
		q.ShutDown()
		q.ShutDown() // twice is fine
		for range getters {
			select {
			case ok := <-done:
				if ok {
					t.Fatal("a Get handed out a key on an empty queue")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ShutDown left a Get waiting")
			}
		}
		q.Add("a", priorityHigh)
		q.AddAfter("b", priorityHigh, time.Millisecond)
		q.AddRateLimited("c")
		if n := q.Len(); n != 0 {
			t.Errorf("Len = %d after adds to a shut-down queue", n)
		}
		if _, ok := q.Get(); ok {
			t.Error("Get handed out a key after ShutDown")
		}
		select {
		case <-q.timerDone:
		default:
			t.Error("the timer goroutine still runs after ShutDown returned")
		}
	})

	t.Run("keys waiting are dropped", func(t *testing.T) {
		q := newTestWorkQueue[string](t, nil, workQueueOptions{})
		q.Add("a", priorityLow)
		q.Add("b", priorityHigh)
		q.ShutDown()
		if k, ok := q.Get(); ok {
			t.Errorf("Get handed out %q after ShutDown", k)
		}
		if n := q.Len(); n != 0 {
			t.Errorf("Len = %d after ShutDown", n)
		}
	})

	t.Run("drain waits for the keys being processed", func(t *testing.T) {
		q := newTestWorkQueue[string](t, nil, workQueueOptions{})
		q.Add("a", priorityLow)
		q.Add("b", priorityLow)
		wqGet(t, q)
		wqGet(t, q)
		q.Add("a", priorityLow) // waits for its pass to end: dropped by the shutdown

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := q.ShutDownWithDrain(ctx)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 keys still being processed") {
			t.Fatalf("drain with an ended context: %v", err)
		}
		drained := make(chan error, 1)
		go func() { drained <- q.ShutDownWithDrain(context.Background()) }()
		q.Done("a")
		q.Done("b")
		select {
		case err := <-drained:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ShutDownWithDrain did not return after the last Done")
		}
		if _, ok := q.Get(); ok {
			t.Error("a was handed out again after the shutdown")
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.ShutDownWithDrain(ctx); err != nil {
			t.Errorf("a third shutdown: %v", err)
		}
	})

	t.Run("drain of an idle queue returns at once", func(t *testing.T) {
		q := newTestWorkQueue[string](t, nil, workQueueOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := q.ShutDownWithDrain(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a waiting Get is woken", func(t *testing.T) {
		q := newTestWorkQueue[string](t, nil, workQueueOptions{})
		q.AddAfter("a", priorityHigh, time.Hour)
		got := make(chan bool, 1)
		go func() { _, ok := q.Get(); got <- ok }()
		time.AfterFunc(20*time.Millisecond, q.ShutDown) // Get is waiting by then, most likely
		select {
		case ok := <-got:
			if ok {
				t.Fatal("Get handed out a key that was not due")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ShutDown left a waiting Get asleep")
		}
	})
}

func TestWorkQueueMetrics(t *testing.T) {
	c := newWQClock()
	reg := prometheus.NewPedanticRegistry()
	q := newTestWorkQueue[string](t, c, workQueueOptions{Registerer: reg, BackoffMin: 4 * time.Second})

	q.Add("a", priorityLow)
	q.Add("b", priorityHigh)
	q.Add("a", priorityLow) // deduplicated: not counted
	q.Add("c", priorityLow)
	c.Advance(time.Second)
	wqGet(t, q) // b, after 1 s
	c.Advance(2 * time.Second)
	compareWorkQueueGauges(t, reg, 0, 2, 2, 2)
	wqGet(t, q) // a, after 3 s
	c.Advance(time.Second)
	compareWorkQueueGauges(t, reg, 0, 1, 3+1, 3)
	q.Done("b")              // 3 s of work
	q.AddRateLimited("a")    // a retry, in 4 s
	q.Done("a")              // 1 s of work
	q.Add("b", priorityHigh) // counted
	compareWorkQueueGauges(t, reg, 1, 1, 0, 0)
	c.Advance(4 * time.Second)
	compareWorkQueueGauges(t, reg, 1, 2, 0, 0) // a fell due: counted
	if got := testutil.ToFloat64(q.met.adds); got != 5 {
		t.Errorf("adds = %v, want 5", got)
	}
	if got := testutil.ToFloat64(q.met.retries); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	for _, h := range []struct {
		name       string
		count, sum float64
	}{
		{"presenced_workqueue_queue_duration_seconds", 2, 1 + 3},
		{"presenced_workqueue_work_duration_seconds", 2, 3 + 1},
	} {
		count, sum := wqHistogram(t, reg, h.name)
		if count != h.count || sum != h.sum {
			t.Errorf("%s: count %v sum %v, want %v and %v", h.name, count, sum, h.count, h.sum)
		}
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 8 {
		t.Errorf("%d series (%v), want 8", n, err)
	}

	if _, err := newWorkQueue[string](workQueueOptions{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "workQueueOptions.Registerer") {
		t.Errorf("a second queue on the same registry: %v", err)
	}
}

func compareWorkQueueGauges(t *testing.T, g prometheus.Gatherer, high, low int, unfinished, longest float64) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP presenced_workqueue_depth Keys waiting in the engine's work queue for a worker, by priority (delayed ones not counted).
# TYPE presenced_workqueue_depth gauge
presenced_workqueue_depth{priority="high"} %d
presenced_workqueue_depth{priority="low"} %d
# HELP presenced_workqueue_longest_running_processor_seconds Seconds the longest-running key in process has been processed.
# TYPE presenced_workqueue_longest_running_processor_seconds gauge
presenced_workqueue_longest_running_processor_seconds %v
# HELP presenced_workqueue_unfinished_work_seconds Seconds the keys being processed have been processed so far, summed; a value growing steadily means stuck workers.
# TYPE presenced_workqueue_unfinished_work_seconds gauge
presenced_workqueue_unfinished_work_seconds %v
`, high, low, longest, unfinished)
	if err := testutil.GatherAndCompare(g, strings.NewReader(want),
		"presenced_workqueue_depth", "presenced_workqueue_unfinished_work_seconds", "presenced_workqueue_longest_running_processor_seconds"); err != nil {
		t.Error(err)
	}
}

func wqHistogram(t *testing.T, g prometheus.Gatherer, name string) (count, sum float64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	t.Fatalf("no %s", name)
	return 0, 0
}

// BenchmarkWorkQueue measures Add/Get/Done with 64 workers over 10,000 keys.
//
//   - burst: 4 adders add b.N times, round the keys, as fast as they can; the workers coalesce
//     what they can (passes/add says how much), until every key has had a pass after its last add.
//   - cycle: the 10,000 keys are added, and each worker adds its key again after Done, until
//     b.N passes; every add is one pass (ns/op is one Add, Get and Done).
func BenchmarkWorkQueue(b *testing.B) {
	const workers, keys, adders = 64, 10_000, 4
	run := func(b *testing.B, worker func(q *workQueue[int], k int) bool, add func(q *workQueue[int])) {
		q, err := newWorkQueue[int](workQueueOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer q.ShutDown()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					k, ok := q.Get()
					if !ok {
						return
					}
					if !worker(q, k) {
						return
					}
				}
			})
		}
		b.ResetTimer()
		add(q)
		for {
			q.mu.Lock()
			idle := q.waiting == [numPriorities]int{} && len(q.running) == 0
			q.mu.Unlock()
			if idle {
				break
			}
			runtime.Gosched()
		}
		b.StopTimer()
		q.ShutDown()
		wg.Wait()
	}

	b.Run("burst", func(b *testing.B) {
		var passes atomic.Int64
		run(b, func(q *workQueue[int], k int) bool {
			passes.Add(1)
			q.Done(k)
			return true
		}, func(q *workQueue[int]) {
			var adding sync.WaitGroup
			for a := range adders {
				adding.Go(func() {
					for i := a; i < b.N; i += adders {
						q.Add(i%keys, workPriority(i%2))
					}
				})
			}
			adding.Wait()
		})
		b.ReportMetric(float64(passes.Load())/float64(b.N), "passes/add")
	})

	b.Run("cycle", func(b *testing.B) {
		var left atomic.Int64
		left.Store(int64(b.N))
		run(b, func(q *workQueue[int], k int) bool {
			q.Done(k)
			if left.Add(-1) >= int64(keys) {
				q.Add(k, workPriority(k%2))
			}
			return true
		}, func(q *workQueue[int]) {
			for k := range min(keys, b.N) {
				q.Add(k, workPriority(k%2))
			}
		})
	})
}
