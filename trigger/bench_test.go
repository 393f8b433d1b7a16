package trigger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// BenchmarkWave09 measures the 09:00 wave: 10,000 users whose schedule fires at 09:00, from the
// Step that claims the due events to the last switch. Every switch goes through Engine.Switch
// (run concurrently; the engine batches its PBX reads) against the lab Redis; the PBX is the
// in-memory recording concern presencetest.PBX, so the figure is
// presenced's own cost (Redis round trips, claims, locks, journal), not Asterisk's.
//
//	go test ./trigger -run '^$' -bench Wave09 -benchtime 3x
func BenchmarkWave09(b *testing.B) {
	const n = 10_000
	us := make([]presence.User, n)
	for i := range us {
		us[i] = testUser(fmt.Sprintf("u%05d", i), 100000+i, "")
	}
	nine := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		w := newWorld(b, nine.Add(-time.Minute), us, testProfiles(), Options{
			Schedules: []presence.Schedule{{Name: "morning", Days: []string{"mon"}, At: "09:00", Profile: "lunch"}},
		})
		r := w.instance(b)
		r.step() // plans the occurrences
		w.clock.Set(nine)
		b.StartTimer()
		r.step()
		b.StopTimer()
		for _, id := range []presence.UserID{us[0].ID, us[n/2].ID, us[n-1].ID} {
			r.expect(id, "lunch", presence.SourceSchedule)
		}
		left, err := w.rdb.ZCard(ctx, r.s.dueKey()).Result()
		if err != nil || left != 0 {
			b.Fatalf("%d events left due (%v)", left, err)
		}
		w.rdb.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "switches/op")
}
