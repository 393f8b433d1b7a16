package trigger

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/presence"
)

// TestEmbeddedStore: the claim and lock scripts run on the embedded store (miniredis) that
// presenced uses without redis.url.
func TestEmbeddedStore(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	w := &world{rdb: rdb, prefix: "presenced:", users: []presence.User{testUser("alice", 1001, "")}, profiles: testProfiles(),
		clock: fakeclock.New(monday), opts: Options{Schedules: []presence.Schedule{{Name: "lunch", From: "08:30", To: "09:00", Profile: "lunch"}}}}
	a, b := w.instance(t), w.instance(t)
	a.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	a.step()
	w.clock.Set(monday.Add(30 * time.Minute))
	a.step()
	b.step()
	a.expect("alice", "lunch", presence.SourceSchedule)
	w.clock.Set(monday.Add(time.Hour))
	b.step()
	a.step()
	a.expect("alice", "available", presence.SourceSchedule)
	if n := a.journalLen("alice"); n != 3 {
		t.Fatalf("%d journal entries, want 3", n)
	}
}
