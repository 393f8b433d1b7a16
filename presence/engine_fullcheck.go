package presence

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// CheckSummary is what a full check did.
type CheckSummary struct {
	Users      int           // users presenced has switched, all checked
	Drifted    int           // users whose PBX state differed from their desired state
	Repaired   int           // users whose PBX state had drifted and was put back
	Failed     int           // users still out of sync (a retry is scheduled for each)
	Took       time.Duration // from start to the last pass done
	RoundTrips uint64        // AMI actions sent meanwhile (EngineOptions.RoundTrips), reads and repairs
}

// CheckAll is the full check: it checks every user presenced has switched (and the
// Asterisk-wide state) against the PBX and deals with whatever drifted as the policies say,
// and waits until that is done. See CheckAllSoon.
func (e *Engine) CheckAll(ctx context.Context) (CheckSummary, error) {
	t := e.term()
	if t == nil && e.opts.Relay == nil {
		var err error
		if t, err = e.awaitTerm(ctx); err != nil {
			return CheckSummary{}, err
		}
	}
	if t == nil {
		return CheckSummary{}, ErrNotRunning // the full check is the leader's own
	}
	ch := make(chan allResult, 1)
	t.queueCheckAll("asked", ch)
	select {
	case r := <-ch:
		return r.sum, r.err
	case <-ctx.Done():
		return CheckSummary{}, fmt.Errorf("presence: waiting for the full check: %w", ctx.Err())
	}
}

// AsteriskReady checks everything after Asterisk became ready (every AMI connect, once it is
// fully booted): the Asterisk-wide state first (a restart forgets globals, and the feature
// codes need it), then every user as if nobody were on a call (a restart ends every call, and
// reading every phone's state is slow on a large PBX: DeviceStateList lists every queue
// member's pause device too), then the phones' states are read again (PhoneStates). It waits
// for the check; it does nothing while the engine does not run.
func (e *Engine) AsteriskReady(ctx context.Context) {
	t := e.term()
	if t == nil {
		return
	}
	t.afterReady(ctx, t.askReady())
}

// askReady asks for the checks of AsteriskReady: the Asterisk-wide state, then everyone, with
// the phones' states forgotten. It returns where the full check answers.
func (t *term) askReady() chan allResult {
	t.q.Add(globalKey, priorityHigh)
	if ps, ok := t.e.opts.Devices.(PhoneStates); ok {
		ps.Reset()
	}
	done := make(chan allResult, 1)
	t.queueCheckAll("asterisk ready", done)
	return done
}

// afterReady waits for the full check askReady asked for, then reads the phones' states again.
func (t *term) afterReady(ctx context.Context, done chan allResult) {
	select {
	case r := <-done:
		if r.err != nil {
			t.e.log.Warn("the check after Asterisk became ready failed; it is retried", "err", r.err)
		}
	case <-ctx.Done():
		return
	}
	if ps, ok := t.e.opts.Devices.(PhoneStates); ok {
		if err := ps.Reload(ctx); err != nil {
			t.e.log.Warn("cannot read the phones' states; calls in progress are not known until their next change", "err", err)
		}
	}
}

// CheckAllSoon asks for a full check soon, without waiting: after Asterisk became ready (a restart
// forgets dynamic queue members without persistentmembers), periodically (astdb changes have
// no events), when events were lost or a module reloaded. Checks asked for while one waits
// make one. It does nothing while the engine does not run.
func (e *Engine) CheckAllSoon(why string) {
	if t := e.term(); t != nil {
		t.queueCheckAll(why, nil)
	}
}

func (t *term) queueCheckAll(why string, done chan allResult) {
	t.mu.Lock()
	if t.over {
		t.mu.Unlock()
		if done != nil {
			done <- allResult{err: ErrNotRunning}
		}
		return
	}
	t.allWhy = append(t.allWhy, why)
	t.seq++
	t.allTouched = t.seq
	if done != nil {
		t.allWaiting = append(t.allWaiting, done)
	}
	t.mu.Unlock()
	t.q.Add(allKey, priorityLow)
	t.q.Add(globalKey, priorityLow)
}

// passAll is the full check. One bulk read of the PBX serves every user: its round trips do
// not grow with the number of users. Only the users found drifted (or whose record says they
// are not settled) get a pass of their own, through the queue, from that read when their state
// did not change since. The passes are waited for off the worker, then the summary is logged
// and the callers of CheckAll answered.
func (t *term) passAll() {
	e := t.e
	t.mu.Lock()
	why, waiting := t.allWhy, t.allWaiting
	t.allWhy, t.allWaiting = nil, nil
	t.mu.Unlock()
	start := e.now()
	var rt0 uint64
	if e.opts.RoundTrips != nil {
		rt0 = e.opts.RoundTrips()
	}
	answer := func(sum CheckSummary, err error) {
		for _, ch := range waiting {
			ch <- allResult{sum: sum, err: err}
		}
		if err != nil {
			if t.ctx.Err() == nil {
				e.log.Error("full check failed", "why", why, "err", err)
			}
			return
		}
		e.metrics.fullChecked(sum)
		e.log.Info("full check: every user checked", "why", why, "users", sum.Users, "drifted", sum.Drifted,
			"repaired", sum.Repaired, "out_of_sync", sum.Failed, "round_trips", sum.RoundTrips,
			"took", sum.Took.Round(time.Millisecond))
	}
	check, sum, err := e.readAll(t.ctx, t.mark())
	if err != nil {
		answer(sum, err)
		// Nothing was checked: try again (the PBX or the store may be coming back).
		t.mu.Lock()
		t.allWhy = append(t.allWhy, "retry after a failed full check")
		t.mu.Unlock()
		t.q.AddRateLimited(allKey)
		return
	}
	t.q.Forget(allKey)
	// Each check gets a request of its own, so that its result is known; the read is handed
	// to its pass.
	results := make([]*pending, 0, len(check))
	t.mu.Lock()
	for id, seen := range check {
		t.seen[id] = seen
		p := &pending{done: make(chan passResult, 1)}
		t.waiting[id] = append(t.waiting[id], p)
		results = append(results, p)
	}
	t.mu.Unlock()
	for id := range check {
		t.q.Add(workKey{user: id}, priorityLow)
	}
	t.wg.Go(func() {
		for _, p := range results {
			select {
			case r := <-p.done:
				switch {
				case r.err != nil:
					sum.Failed++
				case !r.res.InSync:
					sum.Failed++
				case slices.ContainsFunc(r.res.Outcomes, func(o Outcome) bool { return o.Result == ResultApplied }):
					sum.Repaired++
				}
			case <-t.ctx.Done():
				answer(sum, ErrNotRunning)
				return
			}
		}
		sum.Took = e.now().Sub(start)
		if e.opts.RoundTrips != nil {
			sum.RoundTrips = e.opts.RoundTrips() - rt0
		}
		answer(sum, nil)
	})
}

// readAll reads every switched user's PBX state at once and returns the users that need a
// pass, with what was read for them.
func (e *Engine) readAll(ctx context.Context, mark uint64) (map[UserID]*observed, CheckSummary, error) {
	// The PBX is surveyed while the states are read and compiled. A user about whom something
	// happened meanwhile (an event, a pass) is read again by their own pass (passUser).
	sv := e.obs.survey()
	checked := false
	defer func() {
		if !checked {
			sv.stop()
		}
	}()
	cat := e.Catalog()
	users := cat.Users
	ids := make([]UserID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	states, err := e.opts.States.LoadMany(ctx, ids)
	if err != nil && !corruptOnly(err) {
		return nil, CheckSummary{}, err
	}
	if err != nil {
		e.log.Error("some user states are unreadable; those users are not checked", "err", err)
	}
	switched := make([]UserID, 0, len(states))
	for _, id := range ids {
		if _, ok := states[id]; ok {
			switched = append(switched, id)
		}
	}
	personal, err := e.opts.States.PersonalProfilesMany(ctx, switched)
	if err != nil && !corruptOnly(err) {
		return nil, CheckSummary{}, err
	}
	if err != nil {
		e.log.Error("some personal profiles are unreadable, left out", "err", err)
	}
	// Compiling and planning are pure and per user: spread over the cores (10,000 users take
	// a tenth of a second of CPU each way).
	wants := make([]*Desired, len(switched))
	inParallel(len(switched), func(i int) {
		u, _ := cat.User(switched[i])
		wants[i] = e.compile(u, states[switched[i]], append(slices.Clone(cat.Profiles), personal[switched[i]]...))
	})
	want := make(map[UserID]*Target, len(switched))
	for i, id := range switched {
		want[id] = &wants[i].Target
	}
	sum := CheckSummary{Users: len(switched)}
	checked = true
	have, err := e.obs.fill(sv, want, true)
	if err != nil {
		return nil, sum, fmt.Errorf("presence: full check: %w", err)
	}
	drifted := make([]bool, len(switched))
	inParallel(len(switched), func(i int) {
		drifted[i] = len(Plan(wants[i], have[switched[i]])) > 0
	})
	check := map[UserID]*observed{}
	for i, id := range switched {
		st := states[id]
		if drifted[i] {
			sum.Drifted++
		}
		// Users whose record is not settled are checked again too, so that what settled
		// meanwhile is cleared, and a switch never applied (its record is older) is applied.
		if drifted[i] || !st.Record.settled() || st.Record == nil || st.Version > st.Record.Version {
			check[id] = &observed{version: st.Version, have: have[id], mark: mark}
		}
	}
	return check, sum, nil
}

// inParallel calls f(0) … f(n-1), spread over GOMAXPROCS goroutines in contiguous ranges, and
// returns when every call has returned.
func inParallel(n int, f func(i int)) {
	parts := min(runtime.GOMAXPROCS(0), max(n/256, 1))
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				f(i)
			}
		})
	}
	wg.Wait()
}
