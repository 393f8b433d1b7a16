package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// observer reads the PBX for many users at once. Concurrent callers are batched like a group
// commit: while one read runs, the callers that arrive join the next read, which starts as soon
// as the running one ends. A batch costs each concern's constant number of round trips, so
// 5,000 simultaneous switches cost a handful of reads, not 5,000.
type observer struct {
	concerns []Concern
	timeout  time.Duration
	onBatch  func(users int, took time.Duration, err error)

	mu      sync.Mutex
	running bool
	pending *observeBatch
}

type observeBatch struct {
	want map[UserID]*Target
	// now is set when a caller wants the PBX read, not answered from what the concerns know
	// (ReadNow): the whole batch is then read.
	now  bool
	have map[UserID]*Target
	err  error
	done chan struct{}
}

// observe returns what the PBX holds for what want names, as of a read that started after the
// call.
func (o *observer) observe(ctx context.Context, id UserID, want *Target) (*Target, error) {
	return o.start(id, want).wait(ctx, id)
}

// observeNow is observe for a caller that wants the PBX read (ReadNow): a reconcile, a status
// query.
func (o *observer) observeNow(ctx context.Context, id UserID, want *Target) (*Target, error) {
	return o.begin(id, want, true).wait(ctx, id)
}

// start puts id's want in the next read, starting it if none runs, and returns at once with
// the read to wait for: a caller can read the PBX while it does something else.
func (o *observer) start(id UserID, want *Target) *observeBatch {
	return o.begin(id, want, false)
}

// begin is start; now asks for the PBX to be read (ReadNow).
func (o *observer) begin(id UserID, want *Target, now bool) *observeBatch {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending == nil {
		o.pending = &observeBatch{want: map[UserID]*Target{}, done: make(chan struct{})}
	}
	b := o.pending
	b.want[id] = want
	b.now = b.now || now
	if !o.running {
		o.running = true
		o.pending = nil
		go o.run(b)
	}
	return b
}

// wait returns what the read found for id.
func (b *observeBatch) wait(ctx context.Context, id UserID) (*Target, error) {
	select {
	case <-b.done:
		if b.err != nil {
			return nil, b.err
		}
		return b.have[id], nil
	case <-ctx.Done():
		return nil, fmt.Errorf("presence: observe: %w", ctx.Err())
	}
}

func (o *observer) run(b *observeBatch) {
	for b != nil {
		start := time.Now()
		b.have, b.err = o.read(b.want, b.now)
		if o.onBatch != nil {
			o.onBatch(len(b.want), time.Since(start), b.err)
		}
		close(b.done)
		o.mu.Lock()
		b, o.pending = o.pending, nil
		if b == nil {
			o.running = false
		}
		o.mu.Unlock()
	}
}

// read asks every concern at once; now: to read the PBX (ReadNow). It runs on its own
// deadline: the batch serves many callers.
func (o *observer) read(want map[UserID]*Target, now bool) (map[UserID]*Target, error) {
	return o.fill(nil, want, now)
}

// surveys are the surveys of a full check under way (observer.survey).
type surveys struct {
	got    []Survey // by concern; nil for a concern that is no Surveyor or whose survey failed
	errs   []error
	done   chan struct{}
	cancel context.CancelFunc
}

// survey starts the survey of every concern that is a Surveyor, on the observer's deadline,
// and returns at once; fill waits for them. stop abandons them.
func (o *observer) survey() *surveys {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	s := &surveys{got: make([]Survey, len(o.concerns)), errs: make([]error, len(o.concerns)),
		done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		for i, c := range o.concerns {
			if sv, ok := c.(Surveyor); ok {
				wg.Go(func() { s.got[i], s.errs[i] = sv.Survey(ctx) })
			}
		}
		wg.Wait()
	}()
	return s
}

// stop abandons the surveys (a full check that failed before it needed them).
func (s *surveys) stop() {
	s.cancel()
	<-s.done
}

// fill is read with the surveys of a full check (nil: none): each concern whose survey
// succeeded fills have from it, the others observe now. A failed survey is not an error of
// the read: its concern observes instead. now asks for the PBX to be read (ReadNow), as a full
// check always does: it is what finds whatever the concerns' events did not show.
func (o *observer) fill(sv *surveys, want map[UserID]*Target, now bool) (map[UserID]*Target, error) {
	if sv != nil {
		<-sv.done
		defer sv.cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if now {
		ctx = WithReadNow(ctx)
	}
	have := make(map[UserID]*Target, len(want))
	for id, w := range want {
		t := NewTarget()
		t.Interface = w.Interface
		have[id] = t
	}
	// Each concern writes its own sections of have; the maps of a section are touched by one
	// concern only.
	errs := make([]error, len(o.concerns))
	var wg sync.WaitGroup
	for i, c := range o.concerns {
		wg.Go(func() {
			var err error
			if sv != nil && sv.got[i] != nil && sv.errs[i] == nil {
				err = sv.got[i].Fill(ctx, want, have)
			} else {
				err = c.Observe(ctx, want, have)
			}
			if err != nil {
				errs[i] = fmt.Errorf("observe %s: %w", c.Name(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return have, nil
}

// readNowKey is the context key of WithReadNow.
type readNowKey struct{}

// WithReadNow returns a context that asks Concern.Observe to read the PBX rather than answer
// from what the concern knows through its events.
func WithReadNow(ctx context.Context) context.Context {
	return context.WithValue(ctx, readNowKey{}, true)
}

// ReadNow reports whether ctx asks Concern.Observe to read the PBX (WithReadNow).
func ReadNow(ctx context.Context) bool {
	now, _ := ctx.Value(readNowKey{}).(bool)
	return now
}
