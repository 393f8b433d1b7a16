package presence

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// workPriority orders the keys of a workQueue: every waiting key of a higher priority is handed
// out before any key of a lower one; within a priority, keys leave in the order they arrived.
type workPriority uint8

// The priorities, lowest first.
const (
	priorityLow  workPriority = iota // repairs, PBX events, retries, the periodic and full checks
	priorityHigh                     // switches, and a user's own API and feature-code calls

	numPriorities = int(priorityHigh) + 1
)

func (p workPriority) String() string {
	if p == priorityHigh {
		return "high"
	}
	return "low"
}

// workQueueOptions configures a workQueue; the zero value is usable.
type workQueueOptions struct {
	// BackoffMin and BackoffMax bound the delay AddRateLimited gives a key: BackoffMin after its
	// first failure, doubling with every further one up to BackoffMax. Zero means 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// BackoffJitter is the share of a backoff delay taken off at random, so that keys that failed
	// together do not retry together: a delay d becomes one in [d·(1−BackoffJitter), d]. Zero
	// means none; at most 1.
	BackoffJitter float64
	// Registerer receives the presenced_workqueue_* metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewTimer starts a timer that sends on c once d has passed on the clock, until stop is
	// called; nil means time.NewTimer. Tests pass one that fires when they move their clock.
	NewTimer func(d time.Duration) (c <-chan time.Time, stop func() bool)

	randN func(n int64) int64 // uniform in [0, n); nil means math/rand/v2's Int64N
}

func (o workQueueOptions) validate() error {
	switch {
	case o.BackoffMin < 0:
		return fmt.Errorf("presence: workQueueOptions.BackoffMin must not be negative, got %s", o.BackoffMin)
	case o.BackoffMax < 0:
		return fmt.Errorf("presence: workQueueOptions.BackoffMax must not be negative, got %s", o.BackoffMax)
	case o.BackoffMax != 0 && o.BackoffMax < o.BackoffMin:
		return fmt.Errorf("presence: workQueueOptions.BackoffMax (%s) must not be below BackoffMin (%s)", o.BackoffMax, o.BackoffMin)
	case !(o.BackoffJitter >= 0 && o.BackoffJitter <= 1): // NaN fails both
		return fmt.Errorf("presence: workQueueOptions.BackoffJitter must be between 0 and 1, got %v", o.BackoffJitter)
	}
	return nil
}

// workQueue is a keyed, level-triggered work queue in the manner of client-go's
// util/workqueue: a key stands for "look at this again", never for an event. Its guarantees:
//
//   - Dedup: a key added while it waits is not added twice; an add of a higher priority raises
//     the waiting key to it (it never drops).
//   - One worker per key: Get never hands out a key that is being processed (between its Get and
//     its Done). A key added meanwhile waits and is handed out once more after Done, so a cause
//     that arrives during a pass always leads to one later pass, and a burst of causes to one.
//   - Priority: every ready key (waiting, not being processed) of priorityHigh leaves before any
//     of priorityLow; FIFO within a priority.
//   - Delayed adds (AddAfter, AddRateLimited) wait on one timer goroutine. Of two delayed adds of
//     a key the earlier time wins (and the higher priority); an immediate add, or a key already
//     waiting, makes a delayed add moot.
//   - Per-key exponential backoff: AddRateLimited after a failure, Forget after a success.
//   - ShutDown wakes every Get, which reports false, and drops waiting and delayed keys;
//     ShutDownWithDrain also waits for the keys being processed.
//
// Create one with newWorkQueue; its methods are safe for concurrent use. It owns a goroutine
// until ShutDown. A worker, as in controller-runtime's reconcileHandler:
//
//	for {
//		key, ok := q.Get()
//		if !ok {
//			return // shut down
//		}
//		after, err := pass(ctx, key)
//		switch {
//		case err != nil:
//			q.AddRateLimited(key)
//		case after > 0:
//			q.Forget(key)
//			q.AddAfter(key, priorityLow, after)
//		default:
//			q.Forget(key)
//		}
//		q.Done(key)
//	}
type workQueue[K comparable] struct {
	now      func() time.Time
	newTimer func(time.Duration) (<-chan time.Time, func() bool)
	randN    func(int64) int64
	min, max time.Duration
	jitter   float64
	met      *workQueueMetrics

	mu       sync.Mutex
	cond     *sync.Cond // a key became ready, or the queue shut down
	items    map[K]*workItem[K]
	ready    [numPriorities][]readyEntry[K] // FIFO per priority; entries whose seq is old are stale
	waiting  [numPriorities]int             // keys waiting for a pass, by priority
	running  map[K]*workItem[K]
	delayed  delayHeap[K]
	failures map[K]int
	seq      uint64
	shutting bool
	drained  bool

	wake      chan struct{} // the earliest delayed add changed
	stop      chan struct{} // closed by ShutDown
	drainedC  chan struct{} // closed once shut down and nothing runs
	timerDone chan struct{} // closed when the timer goroutine has ended
}

// workItem is the state of one key. A key is never both waiting and delayed.
type workItem[K comparable] struct {
	key        K
	waiting    bool         // a pass is due: in ready, or once the running one ends
	processing bool         // handed out and not yet Done
	prio       workPriority // of the waiting pass
	seq        uint64       // of its current entry in ready
	queuedAt   time.Time    // when it began waiting
	started    time.Time    // when its running pass was handed out

	heapIndex int // in delayed; -1 when not delayed
	due       time.Time
	duePrio   workPriority
}

type readyEntry[K comparable] struct {
	key K
	seq uint64
}

// newWorkQueue checks opts and returns a queue; ShutDown ends its goroutine. Errors name the
// offending field.
func newWorkQueue[K comparable](opts workQueueOptions) (*workQueue[K], error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	q := &workQueue[K]{
		now: opts.Now, newTimer: opts.NewTimer, randN: opts.randN,
		min: opts.BackoffMin, max: opts.BackoffMax, jitter: opts.BackoffJitter,
		items:     map[K]*workItem[K]{},
		running:   map[K]*workItem[K]{},
		failures:  map[K]int{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		drainedC:  make(chan struct{}),
		timerDone: make(chan struct{}),
	}
	q.cond = sync.NewCond(&q.mu)
	if q.now == nil {
		q.now = time.Now
	}
	if q.newTimer == nil {
		q.newTimer = func(d time.Duration) (<-chan time.Time, func() bool) { t := time.NewTimer(d); return t.C, t.Stop }
	}
	if q.randN == nil {
		q.randN = rand.Int64N
	}
	if q.min == 0 {
		q.min = 500 * time.Millisecond
	}
	if q.max == 0 {
		q.max = max(30*time.Second, q.min)
	}
	met, err := newWorkQueueMetrics(opts.Registerer, newWorkQueueCollector(q))
	if err != nil {
		return nil, err
	}
	q.met = met
	go q.timerLoop()
	return q, nil
}

// Add asks for a pass over key at priority p, now.
func (q *workQueue[K]) Add(key K, p workPriority) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.shutting {
		q.addLocked(key, min(p, priorityHigh), q.now())
	}
}

// AddAfter asks for a pass over key at priority p once d has passed; d ≤ 0 is Add.
func (q *workQueue[K]) AddAfter(key K, p workPriority, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.shutting {
		q.addAfterLocked(key, min(p, priorityHigh), d)
	}
}

// AddRateLimited asks for a pass over key at priorityLow after its backoff, the delay its
// number of failures since its last Forget calls for, and counts one more failure. Like any
// delayed add it is moot if key already waits (a cause arrived during the failed pass): the
// next pass then comes at once, and the count still grows.
func (q *workQueue[K]) AddRateLimited(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutting {
		return
	}
	n := q.failures[key]
	q.failures[key] = n + 1
	q.met.retries.Inc()
	q.addAfterLocked(key, priorityLow, q.backoff(n))
}

// Forget resets key's backoff: call it after a pass succeeded.
func (q *workQueue[K]) Forget(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// NumRequeues is the number of failures of key since its last Forget.
func (q *workQueue[K]) NumRequeues(key K) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Due reports when key's delayed add is due, if it has one.
func (q *workQueue[K]) Due(key K) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.items[key]; it != nil && it.heapIndex >= 0 {
		return it.due, true
	}
	return time.Time{}, false
}

// Len is the number of keys waiting for a pass, those waiting for their running pass to end
// included and delayed ones not.
func (q *workQueue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.promoteLocked(q.now())
	n := 0
	for _, w := range q.waiting {
		n += w
	}
	return n
}

// Get blocks until a key is ready and hands it out; the caller must call Done with it when
// its pass ends. It reports false once the queue is shut down.
func (q *workQueue[K]) Get() (K, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.shutting {
		now := q.now()
		q.promoteLocked(now)
		if it := q.popReadyLocked(); it != nil {
			it.waiting, it.processing, it.started = false, true, now
			q.waiting[it.prio]--
			q.running[it.key] = it
			q.met.queueDuration.Observe(now.Sub(it.queuedAt).Seconds())
			return it.key, true
		}
		q.cond.Wait()
	}
	var zero K
	return zero, false
}

// Done ends the pass over key that Get handed out. If key was added meanwhile, it is ready
// again.
func (q *workQueue[K]) Done(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.running[key]
	if it == nil {
		return
	}
	delete(q.running, key)
	it.processing = false
	q.met.workDuration.Observe(q.now().Sub(it.started).Seconds())
	switch {
	case q.shutting:
		if len(q.running) == 0 && !q.drained {
			q.drained = true
			close(q.drainedC)
		}
	case it.waiting:
		q.pushReadyLocked(it)
	case it.heapIndex < 0:
		delete(q.items, key)
	}
}

// ShutDown makes Get report false, wakes every waiting Get, drops waiting and delayed keys
// and ignores later adds. Keys being processed still take their Done. It ends the queue's
// goroutine before it returns; calling it again does nothing.
func (q *workQueue[K]) ShutDown() {
	q.mu.Lock()
	if !q.shutting {
		q.shutting = true
		for _, it := range q.running {
			it.waiting = false
		}
		q.items, q.delayed = map[K]*workItem[K]{}, nil
		q.ready, q.waiting = [numPriorities][]readyEntry[K]{}, [numPriorities]int{}
		if len(q.running) == 0 {
			q.drained = true
			close(q.drainedC)
		}
		close(q.stop)
		q.cond.Broadcast()
	}
	q.mu.Unlock()
	<-q.timerDone
}

// ShutDownWithDrain is ShutDown, then waits until every key handed out is Done or ctx ends.
func (q *workQueue[K]) ShutDownWithDrain(ctx context.Context) error {
	q.ShutDown()
	select {
	case <-q.drainedC:
		return nil
	default:
	}
	select {
	case <-q.drainedC:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		n := len(q.running)
		q.mu.Unlock()
		return fmt.Errorf("presence: work queue: %d keys still being processed: %w", n, ctx.Err())
	}
}

// addLocked makes key wait for a pass at priority p, or raises its waiting pass to p.
func (q *workQueue[K]) addLocked(key K, p workPriority, now time.Time) {
	it := q.items[key]
	if it == nil {
		it = &workItem[K]{key: key, heapIndex: -1}
		q.items[key] = it
	}
	if it.heapIndex >= 0 { // an immediate add makes the delayed one moot
		p = max(p, it.duePrio)
		heap.Remove(&q.delayed, it.heapIndex)
	}
	switch {
	case !it.waiting:
		it.waiting, it.prio, it.queuedAt = true, p, now
		q.waiting[p]++
		q.met.adds.Inc()
	case p > it.prio:
		q.waiting[it.prio]--
		q.waiting[p]++
		it.prio = p
	default:
		return
	}
	if !it.processing {
		q.pushReadyLocked(it) // a raised key's old entry turns stale
	}
}

func (q *workQueue[K]) addAfterLocked(key K, p workPriority, d time.Duration) {
	now := q.now()
	if d <= 0 {
		q.addLocked(key, p, now)
		return
	}
	it := q.items[key]
	switch {
	case it == nil:
		it = &workItem[K]{key: key, heapIndex: -1}
		q.items[key] = it
	case it.waiting:
		return // a pass comes sooner
	}
	due := now.Add(d)
	if it.heapIndex < 0 {
		it.due, it.duePrio = due, p
		heap.Push(&q.delayed, it)
	} else {
		it.duePrio = max(it.duePrio, p)
		if !due.Before(it.due) {
			return
		}
		it.due = due
		heap.Fix(&q.delayed, it.heapIndex)
	}
	if it.heapIndex == 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// promoteLocked turns the delayed adds that are due into waiting keys.
func (q *workQueue[K]) promoteLocked(now time.Time) {
	for len(q.delayed) > 0 && !q.delayed[0].due.After(now) {
		it := heap.Pop(&q.delayed).(*workItem[K])
		q.addLocked(it.key, it.duePrio, now) // signals a waiting Get
	}
}

func (q *workQueue[K]) pushReadyLocked(it *workItem[K]) {
	q.seq++
	it.seq = q.seq
	q.ready[it.prio] = append(q.ready[it.prio], readyEntry[K]{key: it.key, seq: it.seq})
	q.cond.Signal()
}

func (q *workQueue[K]) popReadyLocked() *workItem[K] {
	for p := numPriorities - 1; p >= 0; p-- {
		for len(q.ready[p]) > 0 {
			e := q.ready[p][0]
			q.ready[p][0] = readyEntry[K]{}
			q.ready[p] = q.ready[p][1:]
			if it := q.items[e.key]; it != nil && it.seq == e.seq && it.waiting && !it.processing {
				return it
			}
		}
	}
	return nil
}

// backoff is the delay of a key that has failed failures times before: min·2^failures, at
// most max, less the jitter.
func (q *workQueue[K]) backoff(failures int) time.Duration {
	d := q.max
	if failures < 63 && q.min <= q.max>>failures {
		d = q.min << failures
	}
	if span := int64(float64(d) * q.jitter); span > 0 {
		d -= time.Duration(q.randN(span + 1))
	}
	return d
}

// timerLoop promotes delayed adds when they fall due, so that waiting Gets wake. It is the
// queue's only goroutine.
func (q *workQueue[K]) timerLoop() {
	defer close(q.timerDone)
	for {
		q.mu.Lock()
		now := q.now()
		q.promoteLocked(now)
		var fire <-chan time.Time
		stop := func() bool { return false }
		if len(q.delayed) > 0 {
			fire, stop = q.newTimer(q.delayed[0].due.Sub(now))
		}
		q.mu.Unlock()
		select {
		case <-q.stop:
			stop()
			return
		case <-q.wake:
		case <-fire:
		}
		stop()
	}
}

// delayHeap orders delayed keys by due time (container/heap).
type delayHeap[K comparable] []*workItem[K]

func (h delayHeap[K]) Len() int           { return len(h) }
func (h delayHeap[K]) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *delayHeap[K]) Push(x any) {
	it := x.(*workItem[K])
	it.heapIndex = len(*h)
	*h = append(*h, it)
}
func (h *delayHeap[K]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.heapIndex = -1
	return it
}

// workQueueMetrics are controller-runtime's workqueue metrics, named presenced_workqueue_*.
type workQueueMetrics struct {
	adds, retries               prometheus.Counter
	queueDuration, workDuration prometheus.Histogram
}

func newWorkQueueMetrics(reg prometheus.Registerer, gauges prometheus.Collector) (*workQueueMetrics, error) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &workQueueMetrics{
		adds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_workqueue_adds_total",
			Help: "Keys (users, and the Asterisk-wide state) put in the engine's work queue; an add of a key already waiting is not counted.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presenced_workqueue_retries_total",
			Help: "Keys put back in the engine's work queue after a failure, with backoff.",
		}),
		queueDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_workqueue_queue_duration_seconds",
			Help:    "Time a key waited in the engine's work queue before a worker took it (delayed adds from when they fell due).",
			Buckets: buckets,
		}),
		workDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_workqueue_work_duration_seconds",
			Help:    "Time a worker of the engine's work queue spent on one key.",
			Buckets: buckets,
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.adds, m.retries, m.queueDuration, m.workDuration, gauges} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("presence: workQueueOptions.Registerer: %w", err)
		}
	}
	return m, nil
}

// workQueueCollector reads the queue's gauges when scraped.
type workQueueCollector[K comparable] struct {
	q                          *workQueue[K]
	depth, unfinished, longest *prometheus.Desc
}

func newWorkQueueCollector[K comparable](q *workQueue[K]) *workQueueCollector[K] {
	return &workQueueCollector[K]{
		q: q,
		depth: prometheus.NewDesc("presenced_workqueue_depth",
			"Keys waiting in the engine's work queue for a worker, by priority (delayed ones not counted).", []string{"priority"}, nil),
		unfinished: prometheus.NewDesc("presenced_workqueue_unfinished_work_seconds",
			"Seconds the keys being processed have been processed so far, summed; a value growing steadily means stuck workers.", nil, nil),
		longest: prometheus.NewDesc("presenced_workqueue_longest_running_processor_seconds",
			"Seconds the longest-running key in process has been processed.", nil, nil),
	}
}

func (c *workQueueCollector[K]) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.unfinished
	ch <- c.longest
}

func (c *workQueueCollector[K]) Collect(ch chan<- prometheus.Metric) {
	q := c.q
	q.mu.Lock()
	now := q.now()
	q.promoteLocked(now)
	depth := q.waiting
	var total, longest float64
	for _, it := range q.running {
		s := now.Sub(it.started).Seconds()
		total += s
		longest = math.Max(longest, s)
	}
	q.mu.Unlock()
	for p, n := range depth {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), workPriority(p).String())
	}
	ch <- prometheus.MustNewConstMetric(c.unfinished, prometheus.GaugeValue, total)
	ch <- prometheus.MustNewConstMetric(c.longest, prometheus.GaugeValue, longest)
}
