package presence

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Limits of a pipeBatcher made by NewStateStore.
const (
	// batchPipelines is the most shared pipelines in flight at once. A call that finds fewer
	// goes out at once, alone or with what queued meanwhile: a lone call waits for nothing.
	batchPipelines = 8
	// batchCalls is the most calls one shared pipeline carries.
	batchCalls = 512
)

// pipeBatcher sends the commands of concurrent calls in shared pipelines: many users switched
// at once (a schedule, a mass switch) cost Redis, and the cores it shares with Asterisk, a few
// large round trips instead of one small one per command. Measured in the mass switch
// (docs/BENCHMARKS.md, eleventh round): 1,000 users' state loads and saves, one round trip
// each, took up to 0.7 s to get through under load, while Asterisk waited for the switches'
// first actions.
//
// There is no timer: while batchPipelines pipelines are in flight, calls queue, and the next
// pipeline to go takes every call queued (at most batchCalls). A call whose context ended
// before its pipeline went is not sent.
type pipeBatcher struct {
	rdb *redis.Client

	mu      sync.Mutex
	queued  []*batchCall
	running int // pipelines in flight, and goroutines about to send one
}

// batchCall is one call's commands (queue adds them to the pipeline) and its end.
type batchCall struct {
	ctx   context.Context
	queue func(p redis.Pipeliner)
	err   error // set before done is closed: not sent (the context ended first)
	done  chan struct{}
}

// do adds the commands queue adds to a shared pipeline and waits until the pipeline has been
// answered; then the commands hold their replies and errors, as in one of go-redis's
// pipelines. When ctx ends first it returns ctx's error at once: the commands were not sent,
// or were and are not waited for, and the caller must not read them (the pipeline may still
// be writing their replies).
func (b *pipeBatcher) do(ctx context.Context, queue func(p redis.Pipeliner)) error {
	c := &batchCall{ctx: ctx, queue: queue, done: make(chan struct{})}
	b.mu.Lock()
	b.queued = append(b.queued, c)
	var batch []*batchCall
	if b.running < batchPipelines {
		b.running++
		batch = b.takeLocked()
	}
	b.mu.Unlock()
	if batch != nil {
		b.send(batch)
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeLocked takes the next pipeline's calls off the queue.
func (b *pipeBatcher) takeLocked() []*batchCall {
	n := min(len(b.queued), batchCalls)
	batch := make([]*batchCall, n)
	copy(batch, b.queued)
	rest := copy(b.queued, b.queued[n:])
	clear(b.queued[rest:])
	b.queued = b.queued[:rest]
	return batch
}

// send sends batch as one pipeline and answers its calls; then, if calls queued meanwhile,
// it hands the next pipeline to a goroutine of its own, which keeps the slot, so that the
// caller returns with its own answer.
func (b *pipeBatcher) send(batch []*batchCall) {
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) > 0 {
		// Each command's reply and error are its own (a Redis error reply, or the connection's
		// failure, which go-redis sets on every command it could not read): the pipeline's
		// error is only the first of them. The pipeline runs on no caller's context, since it
		// serves many: the client's read and write timeouts bound it.
		_, _ = b.rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			for _, c := range live {
				c.queue(p)
			}
			return nil
		})
		for _, c := range live {
			close(c.done)
		}
	}
	b.mu.Lock()
	if len(b.queued) == 0 {
		b.running--
		b.mu.Unlock()
		return
	}
	next := b.takeLocked()
	b.mu.Unlock()
	go b.send(next)
}

// runShared is run (a script of the store's) in a shared pipeline. A script Redis does not
// hold (NOSCRIPT: it restarted, failed over or was flushed since the script was last loaded)
// is loaded, in a shared pipeline too (a burst of calls that all find it missing costs one
// SCRIPT LOAD each, not one EVAL of the whole script each), and the call runs again.
func (s *StateStore) runShared(ctx context.Context, sc script, keys []string, args ...any) *redis.Cmd {
	cmd := s.runOnce(ctx, sc, keys, args)
	if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return cmd
	}
	var load [2]*redis.StringCmd
	// Not redis.Script.Load: in a pipeline it would take the reply, empty until the pipeline is
	// answered, for the script's hash.
	if err := s.batch.do(ctx, func(p redis.Pipeliner) {
		load[0], load[1] = p.ScriptLoad(ctx, sc.sources[0]), p.ScriptLoad(ctx, sc.sources[1])
	}); err != nil {
		return errCmd(ctx, err)
	}
	if err := errors.Join(load[0].Err(), load[1].Err()); err != nil {
		return errCmd(ctx, err)
	}
	if cmd = s.runOnce(ctx, sc, keys, args); redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return s.run(ctx, s.rdb, sc, keys, args...) // flushed again meanwhile: EVAL it
	}
	return cmd
}

// runOnce is run in a shared pipeline.
func (s *StateStore) runOnce(ctx context.Context, sc script, keys []string, args []any) *redis.Cmd {
	var cmd *redis.Cmd
	if err := s.batch.do(ctx, func(p redis.Pipeliner) { cmd = s.run(ctx, p, sc, keys, args...) }); err != nil {
		return errCmd(ctx, err) // not sent, or not waited for: its pipeline may still write cmd
	}
	return cmd
}

// runAcknowledged runs sc as a write presenced acknowledges: in a shared pipeline, or, when the
// store waits for replicas, on a connection of its own followed by WAIT (confirmed), since
// WAIT covers the writes of one connection. op says what the write is, as for confirmed. A
// WAIT that failed is the reply's error.
func (s *StateStore) runAcknowledged(ctx context.Context, op string, sc script, keys []string, args ...any) *redis.Cmd {
	if s.wait == nil {
		return s.runShared(ctx, sc, keys, args...)
	}
	var cmd *redis.Cmd
	if err := s.confirmed(ctx, op, func(c redis.Cmdable) error {
		cmd = s.run(ctx, c, sc, keys, args...)
		return cmd.Err()
	}); err != nil {
		return errCmd(ctx, err)
	}
	return cmd
}

// errCmd is a reply that is err alone: a call not sent, or whose write failed beside its reply.
func errCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
