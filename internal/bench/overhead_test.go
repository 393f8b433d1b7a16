package bench

import (
	"context"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// BenchmarkFullCheckOverhead is the engine's own share of a full check (Engine.CheckAll) of
// -bench.users users × 10 queues in sync: the Redis reads, the desired states, the plans and
// the bookkeeping, with the PBX in memory (presencetest.PBX), so that nothing of Asterisk is
// in the figure. TestReconcile measures the whole against the lab Asterisk.
//
//	go test -run '^$' -bench FullCheckOverhead -cpuprofile cpu.out ./internal/bench -bench.users 10000
func BenchmarkFullCheckOverhead(b *testing.B) {
	ctx := context.Background()
	naming := presence.DefaultNaming()
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: rcUsers(*benchUsers), Profiles: rcProfiles()})
	if err != nil {
		b.Fatal(err)
	}
	states := rcStates(b)
	pbx := presencetest.NewPBX()
	e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: naming, States: states,
		Concerns: []presence.Concern{pbx}})
	if err != nil {
		b.Fatal(err)
	}
	presencetest.Run(b, e)
	ds := rcDesire(cat, naming)
	if err := rcSaveStates(ctx, states, ds); err != nil {
		b.Fatal(err)
	}
	// The first check applies every user's state to the PBX in memory; from then on all are
	// in sync.
	if _, err := e.CheckAll(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sum, err := e.CheckAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Users != len(ds) || sum.Drifted != 0 || sum.Failed != 0 {
			b.Fatalf("full check of users in sync: %+v", sum)
		}
	}
}
