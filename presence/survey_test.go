package presence_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// surveyPBX is presencetest.PBX as a Surveyor: Survey copies the PBX as it is, Fill observes
// from the copy. hold and applyHold (set under mu) stop a survey or an Apply where a test
// wants it.
type surveyPBX struct {
	*presencetest.PBX
	surveys, fills atomic.Int32
	fail           atomic.Bool

	mu        sync.Mutex
	hold      func() // called once the survey's copy is taken (then cleared)
	applyHold func() // called before the next Apply (then cleared)
}

func (s *surveyPBX) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	s.mu.Lock()
	hold := s.applyHold
	s.applyHold = nil
	s.mu.Unlock()
	if hold != nil {
		hold()
	}
	return s.PBX.Apply(ctx, u, ops)
}

// memSurvey is what Survey copied: a PBX of its own, observed as the PBX is.
type memSurvey struct {
	p    *surveyPBX
	copy *presencetest.PBX
}

func (s *surveyPBX) Survey(ctx context.Context) (presence.Survey, error) {
	s.surveys.Add(1)
	if s.fail.Load() {
		return nil, errors.New("injected survey failure")
	}
	copied := presencetest.NewPBX()
	s.Edit(func(state *presence.Target) {
		snapshot := presence.Target{Queues: maps.Clone(state.Queues), AstDB: maps.Clone(state.AstDB),
			Devices: maps.Clone(state.Devices), Presence: maps.Clone(state.Presence), Globals: maps.Clone(state.Globals)}
		copied.Edit(func(c *presence.Target) { *c = snapshot })
	})
	s.mu.Lock()
	hold := s.hold
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		hold()
	}
	return &memSurvey{p: s, copy: copied}, nil
}

func (m *memSurvey) Fill(ctx context.Context, want, have map[presence.UserID]*presence.Target) error {
	m.p.fills.Add(1)
	return m.copy.Observe(ctx, want, have)
}

// TestFullCheckSurveysThePBX: a full check takes what a Surveyor concern read while the states
// were loaded (no Observe of its own); a drift made before the check is found and put back; a
// failed survey is read again with Observe, not a failed check.
func TestFullCheckSurveysThePBX(t *testing.T) {
	ctx := context.Background()
	us := users(50)
	var sp *surveyPBX
	e, pbx, _ := newTestEngineWith(t, presence.CatalogConfig{Users: us}, func(o *presencetest.RigOptions) {
		sp = &surveyPBX{PBX: o.Engine.Concerns[0].(*presencetest.PBX)}
		o.Engine.Concerns = []presence.Concern{sp}
	})
	for _, u := range us {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, drifted, repaired int, observes int64, surveys, fills int32) {
		t.Helper()
		observed := pbx.Observes()
		sp.surveys.Store(0)
		sp.fills.Store(0)
		sum, err := e.CheckAll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if sum.Users != len(us) || sum.Drifted != drifted || sum.Repaired != repaired || sum.Failed != 0 {
			t.Fatalf("%s: summary %+v; want %d users, %d drifted, %d repaired", what, sum, len(us), drifted, repaired)
		}
		if o, s, f := pbx.Observes()-observed, sp.surveys.Load(), sp.fills.Load(); o != observes || s != surveys || f != fills {
			t.Fatalf("%s: %d observes, %d surveys, %d fills; want %d, %d, %d", what, o, s, f, observes, surveys, fills)
		}
	}
	check("in sync", 0, 0, 0, 1, 1)

	iface := presence.DefaultNaming().Interface(&us[7])
	pbx.Edit(func(state *presence.Target) { delete(state.Queues, "sales|"+iface) })
	// The drifted user's pass takes the survey's read: no observe of its own.
	check("one removed by hand", 1, 1, 0, 1, 1)
	if member(pbx, "sales", iface) == nil {
		t.Fatal("the member removed by hand was not put back")
	}

	sp.fail.Store(true)
	check("survey failed", 0, 0, 1, 1, 0)
}

// TestSwitchDuringSurveyIsNotRepaired: a switch whose operations reach the PBX while a full
// check surveys (the survey read the PBX before them, the state read after the switch was
// saved) is not taken for drift: the user's pass looks again instead of trusting the survey,
// so nothing is applied twice and no repair is journaled.
func TestSwitchDuringSurveyIsNotRepaired(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	var sp *surveyPBX
	e, pbx, states := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{presence.Lunch()}}, func(o *presencetest.RigOptions) {
		sp = &surveyPBX{PBX: o.Engine.Concerns[0].(*presencetest.PBX)}
		o.Engine.Concerns = []presence.Concern{sp}
	})
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	// The switch to lunch is saved, and its pass held just before it applies.
	applying, applyRelease := make(chan struct{}), make(chan struct{})
	sp.mu.Lock()
	sp.applyHold = func() { close(applying); <-applyRelease }
	sp.mu.Unlock()
	switched := make(chan error, 1)
	go func() {
		_, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI})
		switched <- err
	}()
	wait := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal(what)
		}
	}
	wait(applying, "the switch's pass did not apply")
	// The full check surveys the PBX before the switch's operations; they land while it
	// surveys.
	surveyed, surveyRelease := make(chan struct{}), make(chan struct{})
	sp.mu.Lock()
	sp.hold = func() { close(surveyed); <-surveyRelease }
	sp.mu.Unlock()
	type result struct {
		sum presence.CheckSummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := e.CheckAll(ctx)
		done <- result{sum, err}
	}()
	wait(surveyed, "the full check did not survey")
	close(applyRelease)
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	applied := len(pbx.Applied())
	close(surveyRelease)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum.Repaired != 0 || r.sum.Failed != 0 {
		t.Fatalf("summary %+v; want nothing repaired, nothing failed", r.sum)
	}
	again := pbx.Applied()[applied:]
	if len(again) != 0 {
		t.Fatalf("the full check applied %v after the switch; want nothing", again)
	}
	entries, err := states.Journal(ctx, "alice", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range entries {
		if j.Kind == "repair" {
			t.Fatalf("journal has a repair: %+v", j)
		}
	}
}
