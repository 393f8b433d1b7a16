package missedcalls

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Redis: true}, func(e *lab.Env) { env = e }))
}

func TestRulesValidate(t *testing.T) {
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: nil, Profiles: []presence.Profile{{ID: "away", Name: "Away"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rules Rules
		want  []string // substrings of the problems, in order; none when valid
	}{
		{"valid", Rules{Calls: 3, Window: time.Hour, Profile: "away"}, nil},
		{"valid, window defaulted", Rules{Calls: 1, Profile: "away", Queues: []string{"support"}}, nil},
		{"no calls", Rules{Profile: "away"}, []string{"unanswered_calls.calls: 0"}},
		{"negative window", Rules{Calls: 2, Window: -time.Minute, Profile: "away"}, []string{"unanswered_calls.window: -1m0s is negative"}},
		{"no profile", Rules{Calls: 2}, []string{"unanswered_calls.profile: missing"}},
		{"unknown profile", Rules{Calls: 2, Profile: "gone"}, []string{`unanswered_calls.profile: "gone" is not a system-wide profile`}},
		{"bad queue", Rules{Calls: 2, Profile: "away", Queues: []string{"support", " ", "a\nb"}},
			[]string{`unanswered_calls.queues[1]: " "`, `unanswered_calls.queues[2]: "a\nb"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Validate("unanswered_calls", cat)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var verr *presence.ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) != len(tc.want) {
				t.Fatalf("Validate: %v, want the problems %q", err, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(verr.Problems[i], w) {
					t.Errorf("problem %d: %q, want it to say %q", i, verr.Problems[i], w)
				}
			}
		})
	}
}

// fixture is a watcher over Redis with a controllable clock and a switch that records.
type fixture struct {
	w   *Watcher
	now time.Time
	reg *prometheus.Registry

	mu       sync.Mutex
	switched []string // "user profile actor"
	fail     error
}

type catalogEngine struct{ cat *presence.Catalog }

func (e catalogEngine) Catalog() *presence.Catalog { return e.cat }

func newFixture(t *testing.T, rules Rules) *fixture {
	t.Helper()
	users := []presence.User{
		{ID: "ann", Name: "Ann", Extension: "2001", Devices: []presence.Device{{Dial: "PJSIP/2001", Family: presence.FamilyDesk}},
			Queues: []presence.QueueMembership{{Name: "support"}, {Name: "sales"}}},
		{ID: "ben", Name: "Ben", Extension: "2002", Devices: []presence.Device{{Dial: "PJSIP/2002", Family: presence.FamilyDesk}},
			Queues: []presence.QueueMembership{{Name: "support"}}},
	}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: users, Profiles: []presence.Profile{{ID: "away", Name: "Away"}}})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	client, err := ami.New(ami.Config{Addr: "127.0.0.1:1", Username: "none", Secret: "none"}) // never run: the tests hand events in
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), reg: prometheus.NewRegistry()}
	metrics, err := NewMetrics(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	f.w, err = New(Options{Metrics: metrics, AMI: client, Redis: rdb, Prefix: lab.Unique("missed") + ":", Engine: catalogEngine{cat},
		Naming: presence.DefaultNaming(), Rules: rules, Now: func() time.Time { return f.now },
		Switch: func(_ context.Context, id presence.UserID, actor, profile string) (bool, string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.fail != nil {
				return false, "", f.fail
			}
			f.switched = append(f.switched, fmt.Sprintf("%s %s %s", id, profile, actor))
			return true, "", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ring is an unanswered ring of caller's call in queue for the member ext; answer an answered one.
func (f *fixture) ring(ext, queue, caller string) {
	f.w.unansweredCall(context.Background(), ami.NewMessage("Event", "AgentRingNoAnswer", "Queue", queue,
		"Interface", "Local/"+ext+"@presenced-queue-member/n", "MemberName", ext, "Uniqueid", caller, "RingTime", "15000"))
}

func (f *fixture) answer(ext, queue string) {
	f.w.answeredCall(context.Background(), ami.NewMessage("Event", "AgentConnect", "Queue", queue,
		"Interface", "LOCAL/"+ext+"@presenced-queue-member/n", "Uniqueid", "any"))
}

func (f *fixture) switches() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.switched...)
}

func TestCountsUnansweredCallsInARow(t *testing.T) {
	f := newFixture(t, Rules{Calls: 3, Window: 10 * time.Minute, Profile: "away"})
	f.ring("2001", "support", "c1")
	f.ring("2001", "support", "c1") // the queue rings her again for the same caller: one call
	f.ring("2001", "sales", "c2")
	f.ring("2009", "support", "c3") // no user's member: not counted
	f.ring("2002", "support", "c4") // Ben's count is his own
	if got := f.switches(); len(got) != 0 {
		t.Fatalf("after two calls: switched %v", got)
	}
	f.ring("2001", "support", "c5")
	want := []string{"ann away 3 unanswered queue calls"}
	if got := f.switches(); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("after three calls: switched %v, want %v", got, want)
	}
	// The count started again.
	f.ring("2001", "support", "c6")
	f.ring("2001", "support", "c7")
	if got := f.switches(); len(got) != 1 {
		t.Fatalf("two calls after the switch: switched %v", got)
	}
	if got := testutil.ToFloat64(f.w.unanswered.WithLabelValues("support")); got != 6 {
		t.Errorf("presenced_unanswered_calls_total{queue=support} = %v, want 6 (every ring of a user's member)", got)
	}
	if got := testutil.ToFloat64(f.w.switches.WithLabelValues("switched")); got != 1 {
		t.Errorf("switches{switched} = %v, want 1", got)
	}
}

func TestAnsweredCallStartsTheCountAgain(t *testing.T) {
	f := newFixture(t, Rules{Calls: 2, Window: 10 * time.Minute, Profile: "away"})
	f.ring("2001", "support", "c1")
	f.answer("2001", "sales") // answered in another queue: counted together, so reset
	f.ring("2001", "support", "c2")
	if got := f.switches(); len(got) != 0 {
		t.Fatalf("a miss, an answer, a miss: switched %v", got)
	}
	f.ring("2001", "support", "c3")
	if got := f.switches(); len(got) != 1 {
		t.Fatalf("two misses in a row: switched %v, want once", got)
	}
}

func TestOldMissesNoLongerCount(t *testing.T) {
	f := newFixture(t, Rules{Calls: 2, Window: 10 * time.Minute, Profile: "away"})
	f.ring("2001", "support", "c1")
	f.now = f.now.Add(11 * time.Minute)
	f.ring("2001", "support", "c2")
	if got := f.switches(); len(got) != 0 {
		t.Fatalf("two misses 11 minutes apart with a 10-minute window: switched %v", got)
	}
	f.now = f.now.Add(9 * time.Minute)
	f.ring("2001", "support", "c3")
	if got := f.switches(); len(got) != 1 {
		t.Fatalf("two misses 9 minutes apart: switched %v, want once", got)
	}
}

func TestPerQueueAndQueueFilter(t *testing.T) {
	t.Run("per queue", func(t *testing.T) {
		f := newFixture(t, Rules{Calls: 2, Window: time.Hour, Profile: "away", PerQueue: true})
		f.ring("2001", "support", "c1")
		f.ring("2001", "sales", "c2") // another queue's count
		f.answer("2001", "sales")     // resets sales only
		if got := f.switches(); len(got) != 0 {
			t.Fatalf("one miss in each queue: switched %v", got)
		}
		f.ring("2001", "support", "c3")
		want := "ann away 2 unanswered calls from queue support"
		if got := f.switches(); len(got) != 1 || got[0] != want {
			t.Fatalf("two misses in support: switched %v, want %q", got, want)
		}
	})
	t.Run("only the named queues", func(t *testing.T) {
		f := newFixture(t, Rules{Calls: 2, Window: time.Hour, Profile: "away", Queues: []string{"Support"}})
		f.ring("2001", "sales", "c1")
		f.ring("2001", "sales", "c2")
		f.answer("2001", "sales") // not counted: does not reset either
		f.ring("2001", "support", "c3")
		if got := f.switches(); len(got) != 0 {
			t.Fatalf("misses in a queue not named: switched %v", got)
		}
		f.ring("2001", "support", "c4")
		if got := f.switches(); len(got) != 1 || !strings.HasSuffix(got[0], "from queue support") {
			t.Fatalf("two misses in the named queue: switched %v", got)
		}
	})
}

func TestFailedSwitchIsCounted(t *testing.T) {
	f := newFixture(t, Rules{Calls: 1, Window: time.Hour, Profile: "away"})
	f.fail = errors.New("no leader")
	f.ring("2001", "support", "c1")
	if got := testutil.ToFloat64(f.w.switches.WithLabelValues("failed")); got != 1 {
		t.Errorf("switches{failed} = %v, want 1", got)
	}
}

// TestSetRules: rules without a profile count nothing; a reload that turns them on counts from
// the next call; rules that do not validate change nothing; a changed limit and queue filter
// apply to the next call.
func TestSetRules(t *testing.T) {
	f := newFixture(t, Rules{})
	f.ring("2001", "support", "c1")
	f.ring("2001", "support", "c2")
	if got := testutil.ToFloat64(f.w.unanswered.WithLabelValues("support")); got != 0 || len(f.switches()) != 0 {
		t.Fatalf("rules off: counted %v, switched %v", got, f.switches())
	}
	if err := f.w.SetRules(Rules{Calls: 2, Profile: "gone"}); err == nil || !strings.Contains(err.Error(), `"gone" is not a system-wide profile`) {
		t.Fatalf("SetRules with an unknown profile: %v", err)
	}
	f.ring("2001", "support", "c3")
	if len(f.switches()) != 0 {
		t.Fatalf("refused rules are in force: switched %v", f.switches())
	}
	if err := f.w.SetRules(Rules{Calls: 2, Profile: "away"}); err != nil {
		t.Fatal(err)
	}
	f.ring("2001", "support", "c4")
	f.ring("2001", "support", "c5")
	if got, want := f.switches(), []string{"ann away 2 unanswered queue calls"}; !slices.Equal(got, want) {
		t.Fatalf("rules on: switched %v, want %v", got, want)
	}
	if err := f.w.SetRules(Rules{Calls: 1, Profile: "away", Queues: []string{"Sales"}}); err != nil {
		t.Fatal(err)
	}
	f.ring("2002", "support", "c6") // not counted any more
	f.ring("2001", "sales", "c7")
	if got, want := f.switches(), []string{"ann away 2 unanswered queue calls", "ann away 1 unanswered calls from queue sales"}; !slices.Equal(got, want) {
		t.Fatalf("rules changed: switched %v, want %v", got, want)
	}
	if err := f.w.SetRules(Rules{}); err != nil {
		t.Fatal(err)
	}
	f.ring("2001", "sales", "c8")
	if got := len(f.switches()); got != 2 {
		t.Fatalf("rules off again: %d switches", got)
	}
}
