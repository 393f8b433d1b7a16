package presencetest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

func TestPBXAppliesAndFailsOnRequest(t *testing.T) {
	ctx := context.Background()
	pbx := presencetest.NewPBX()
	u := &presence.User{ID: "alice"}
	put := presence.Op{Kind: presence.OpDBPut, Key: "PROFILE/1001/active", Value: "lunch"}
	glob := presence.Op{Kind: presence.OpGlobal, Key: "X", Value: "1"}

	pbx.Fail(presence.OpDBPut)
	out := pbx.Apply(ctx, u, []presence.Op{put, glob})
	if got, want := presencetest.Results(out), []presence.Result{presence.ResultFailed, presence.ResultApplied}; !slices.Equal(got, want) {
		t.Fatalf("results while db_put fails: %v, want %v", got, want)
	}
	pbx.Fail("")
	out = pbx.Apply(ctx, u, []presence.Op{put})
	if got, want := presencetest.Results(out), []presence.Result{presence.ResultApplied}; !slices.Equal(got, want) {
		t.Fatalf("results once the failures end: %v, want %v", got, want)
	}
	if got := len(pbx.Applied()); got != 3 {
		t.Fatalf("%d operations recorded, want 3 (the failed one too)", got)
	}

	want := presence.NewTarget()
	want.AstDB["PROFILE/1001/active"] = nil
	have := map[presence.UserID]*presence.Target{"alice": presence.NewTarget()}
	if err := pbx.Observe(ctx, map[presence.UserID]*presence.Target{"alice": want}, have); err != nil {
		t.Fatal(err)
	}
	if v := have["alice"].AstDB["PROFILE/1001/active"]; v == nil || *v != "lunch" {
		t.Fatalf("observed %v, want lunch", v)
	}
}

func TestPBXObserveDelayAndCount(t *testing.T) {
	ctx := context.Background()
	pbx := presencetest.NewPBX()
	none := map[presence.UserID]*presence.Target{}
	pbx.SetObserveDelay(20 * time.Millisecond)
	start := time.Now()
	if err := pbx.Observe(ctx, none, none); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Observe took %v, want at least the 20ms delay", d)
	}
	pbx.SetObserveDelay(0)
	if err := pbx.Observe(ctx, none, none); err != nil {
		t.Fatal(err)
	}
	if n := pbx.Observes(); n != 2 {
		t.Fatalf("Observes = %d, want 2", n)
	}
}
