package presence

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineGate counts the pipelines a client sends (not a new connection's handshake, which
// go-redis sends as one) and, while closed, holds them before they
// go out.
type pipelineGate struct {
	pipelines, cmds atomic.Int64
	evals           atomic.Int64 // EVALs: a whole script sent, not its hash
	mu              sync.Mutex
	open            chan struct{} // nil: pipelines go out at once
}

func (g *pipelineGate) hold() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *pipelineGate) release() {
	g.mu.Lock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
	g.mu.Unlock()
}

func (g *pipelineGate) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (g *pipelineGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.countEvals([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (g *pipelineGate) countEvals(cmds []redis.Cmder) {
	for _, c := range cmds {
		if c.Name() == "eval" {
			g.evals.Add(1)
		}
	}
}

func (g *pipelineGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		if open != nil {
			<-open
		}
		if name := cmds[0].Name(); name == "client" || name == "hello" {
			return next(ctx, cmds) // a new connection's handshake
		}
		g.pipelines.Add(1)
		g.cmds.Add(int64(len(cmds)))
		g.countEvals(cmds)
		return next(ctx, cmds)
	}
}

// batchedStore is a StateStore on the lab Redis whose pipelines go through a gate.
func batchedStore(t *testing.T) (*StateStore, *pipelineGate) {
	t.Helper()
	rdb := labEnv(t).RedisClient(t, func(o *redis.Options) { o.PoolSize = 2 * batchPipelines })
	g := &pipelineGate{}
	rdb.AddHook(g)
	s := NewStateStore(rdb, StateStoreOptions{Prefix: fmt.Sprintf("batch:%d:", time.Now().UnixNano())})
	// Redis holds the save script from here on (a script it lacks is loaded, then run again:
	// TestPipeBatcherLoadsFlushedScripts).
	if _, err := s.Save(context.Background(), "warm", UserState{Profile: "p"}); err != nil {
		t.Fatal(err)
	}
	return s, g
}

// waitQueued waits until n calls wait for a pipeline.
func waitQueued(t *testing.T, s *StateStore, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.batch.mu.Lock()
		got := len(s.batch.queued)
		s.batch.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued for a pipeline, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until no pipeline is in flight or queued.
func waitIdle(t *testing.T, s *StateStore) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.batch.mu.Lock()
		idle := s.batch.running == 0 && len(s.batch.queued) == 0
		s.batch.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipelines did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPipeBatcherSharesPipelines: while the most pipelines are in flight, the saves and loads
// of many users queue and go out together, each answered with its own reply.
func TestPipeBatcherSharesPipelines(t *testing.T) {
	ctx := context.Background()
	s, g := batchedStore(t)
	p0, c0 := g.pipelines.Load(), g.cmds.Load()
	const users = 300
	g.hold()
	var wg sync.WaitGroup
	errs := make([]error, users)
	for i := range users {
		wg.Go(func() {
			_, errs[i] = s.Save(ctx, UserID(fmt.Sprintf("u%d", i)), UserState{Profile: fmt.Sprintf("p%d", i)})
		})
	}
	// batchPipelines saves hold the slots (one each, at the gate); the rest wait for them.
	waitQueued(t, s, users-batchPipelines)
	g.release()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got, most := g.pipelines.Load()-p0, int64(batchPipelines+(users-batchPipelines+batchCalls-1)/batchCalls); got > most {
		t.Errorf("%d saves went out in %d pipelines, want at most %d", users, got, most)
	}
	if got := g.cmds.Load() - c0; got != users {
		t.Errorf("%d commands sent for %d saves, want one each", got, users)
	}

	// Loads queue likewise, and each gets its own user's state.
	g.hold()
	sts := make([]UserState, users)
	founds := make([]bool, users)
	for i := range users {
		wg.Go(func() {
			var perr error
			sts[i], founds[i], _, errs[i], perr = s.LoadUser(ctx, UserID(fmt.Sprintf("u%d", i)))
			errs[i] = errors.Join(errs[i], perr)
		})
	}
	waitQueued(t, s, users-batchPipelines)
	before := g.pipelines.Load()
	g.release()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range users {
		if want := fmt.Sprintf("p%d", i); !founds[i] || sts[i].Profile != want || sts[i].Version != 1 {
			t.Fatalf("u%d loaded %+v (found %v), want profile %s at version 1", i, sts[i], founds[i], want)
		}
	}
	if got := g.pipelines.Load() - before; got > int64(batchPipelines+1) {
		t.Errorf("%d loads went out in %d pipelines, want at most %d", users, got, batchPipelines+1)
	}
}

// TestPipeBatcherLeavesOutEndedCalls: a call whose context ends while it waits for a pipeline
// returns at once and is not sent; the others are.
func TestPipeBatcherLeavesOutEndedCalls(t *testing.T) {
	s, g := batchedStore(t)
	g.hold()
	var wg sync.WaitGroup
	for i := range batchPipelines {
		wg.Go(func() {
			if _, err := s.Save(context.Background(), UserID(fmt.Sprintf("held%d", i)), UserState{Profile: "p"}); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, 0)
	for {
		s.batch.mu.Lock()
		running := s.batch.running
		s.batch.mu.Unlock()
		if running == batchPipelines {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() {
		_, err := s.Save(ctx, "late", UserState{Profile: "p"})
		ended <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the ended save returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ended save did not return while the pipelines were held")
	}
	g.release()
	wg.Wait()
	waitIdle(t, s)
	if _, found, err := s.Load(context.Background(), "late"); err != nil || found {
		t.Errorf("the ended save was sent: found %v, %v", found, err)
	}
	if _, found, err := s.Load(context.Background(), "held0"); err != nil || !found {
		t.Errorf("a held save was lost: found %v, %v", found, err)
	}
}

// TestPipeBatcherLoadsFlushedScripts: a script Redis no longer holds (SCRIPT FLUSH, as after a
// restart) is loaded again by the call that finds it missing (SCRIPT LOAD, not an EVAL of the
// whole script).
func TestPipeBatcherLoadsFlushedScripts(t *testing.T) {
	ctx := context.Background()
	s, g := batchedStore(t)
	if _, err := s.Save(ctx, "alice", UserState{Profile: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Save(ctx, "alice", UserState{Profile: "b", Version: 1})
	if err != nil {
		t.Fatalf("save after SCRIPT FLUSH: %v", err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRecordJournal(ctx, "alice", Record{Version: st.Version, InSync: true}, &JournalEntry{Kind: JournalSwitch}); err != nil {
		t.Fatalf("record after SCRIPT FLUSH: %v", err)
	}
	if n := g.evals.Load(); n != 0 {
		t.Errorf("%d EVALs, want none: the scripts were not loaded", n)
	}
	got, _, err := s.Load(ctx, "alice")
	if err != nil || got.Profile != "b" || got.Record == nil || got.Record.Version != st.Version {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v; want profile b recorded at version %d", got, err, st.Version)
	}
}
