package leader_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/leader"
)

// TestFencedWrites: a term's fenced writes pass while it leads and are refused with ErrFenced
// from the moment it stops, before and after another instance takes the lease, through every
// way of fencing; the refused writes change nothing. On the lab Redis and on the embedded
// store (miniredis, what presenced runs on without redis.url).
func TestFencedWrites(t *testing.T) {
	for _, store := range []string{"redis", "embedded"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			ctx := lab.Context(t)
			var rdb *redis.Client
			if store == "redis" {
				rdb = client(t, labAddr(t))
			} else {
				rdb = client(t, miniredis.RunT(t).Addr())
			}
			quick := func(o *leader.Options) { o.Lease = 500 * time.Millisecond }
			asterisk := lab.Unique("pbx")
			a := start(t, rdb, asterisk, "a", quick)
			s := watch(t, a)
			ca := s.leads(t, a, time.Time{}, 5*time.Second)
			fa, ok := a.e.Fence()
			if !ok || fa.Epoch != ca.epoch || fa.Key != a.e.Key() || fa.Value != "a "+strconv.FormatInt(ca.epoch, 10) {
				t.Fatalf("a's Fence() = %+v, %v while leading with epoch %d", fa, ok, ca.epoch)
			}

			key := lab.Unique("fenced")
			// A script of its own with the fence among its keys and arguments.
			own := redis.NewScript(leader.FenceLua(2, 2) + `redis.call('SET', KEYS[1], ARGV[1]) return 1`)
			ownRun := func(f leader.Fence, v string) error {
				return leader.AsFenced(own.Run(ctx, rdb, []string{key + ":own", f.Key}, v, f.Value).Err())
			}
			// A fenced script that sees only its own keys.
			wrapped := leader.NewScript(`redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])`)
			writes := map[string]func(f leader.Fence, v string) error{
				"Set":      func(f leader.Fence, v string) error { return f.Set(ctx, rdb, key, v, time.Minute) },
				"HSet":     func(f leader.Fence, v string) error { return f.HSet(ctx, rdb, key+":h", "field", v) },
				"FenceLua": ownRun,
				"NewScript": func(f leader.Fence, v string) error {
					return wrapped.Run(ctx, rdb, f, []string{key + ":wrapped"}, v).Err()
				},
			}
			values := func() map[string]string {
				return map[string]string{
					"Set":       rdb.Get(ctx, key).Val(),
					"HSet":      rdb.HGet(ctx, key+":h", "field").Val(),
					"FenceLua":  rdb.Get(ctx, key+":own").Val(),
					"NewScript": rdb.Get(ctx, key+":wrapped").Val(),
				}
			}
			mustWrite := func(who string, f leader.Fence) {
				t.Helper()
				for name, w := range writes {
					if err := w(f, who); err != nil {
						t.Fatalf("%s's %s: %v", who, name, err)
					}
				}
				for name, v := range values() {
					if v != who {
						t.Errorf("after %s's %s the value is %q", who, name, v)
					}
				}
			}
			mustRefuse := func(who string, f leader.Fence, kept string) {
				t.Helper()
				for name, w := range writes {
					if err := w(f, "stale"); !errors.Is(err, leader.ErrFenced) {
						t.Errorf("%s's %s: %v, want ErrFenced", who, name, err)
					}
				}
				if err := f.Del(ctx, rdb, key); !errors.Is(err, leader.ErrFenced) {
					t.Errorf("%s's Del: %v, want ErrFenced", who, err)
				}
				for name, v := range values() {
					if v != kept {
						t.Errorf("a refused %s changed the value to %q", name, v)
					}
				}
			}

			mustWrite("a", fa)
			if d := rdb.PTTL(ctx, key).Val(); d <= 0 || d > time.Minute {
				t.Errorf("fenced Set with a TTL of 1m: PTTL %v", d)
			}

			a.stop()
			if _, ok := a.e.Leading(); ok {
				t.Fatal("a leads after Run returned")
			}
			if f, ok := a.e.Fence(); ok || f != (leader.Fence{}) {
				t.Fatalf("a's Fence() after Run returned: %+v, %v", f, ok)
			}
			mustRefuse("a, stopped, no leader", fa, "a")

			b := start(t, rdb, asterisk, "b", quick)
			s.add(b)
			cb := s.leads(t, b, time.Time{}, 5*time.Second)
			fb, ok := b.e.Fence()
			if !ok || fb.Epoch != cb.epoch || cb.epoch <= ca.epoch {
				t.Fatalf("b's Fence() = %+v, %v (epoch %d after a's %d)", fb, ok, cb.epoch, ca.epoch)
			}
			mustRefuse("a, stale", fa, "a")
			mustRefuse("b's name with a's epoch", leader.Fence{Key: fb.Key, Value: "b " + strconv.FormatInt(ca.epoch, 10), Epoch: ca.epoch}, "a")
			mustRefuse("zero", leader.Fence{}, "a")
			mustWrite("b", fb)
			if err := fb.Del(ctx, rdb, key); err != nil {
				t.Errorf("b's Del: %v", err)
			}
			if n := rdb.Exists(ctx, key).Val(); n != 0 {
				t.Errorf("b's Del left the key")
			}
			if err := fb.HSet(ctx, rdb, key, "odd"); err == nil {
				t.Error("HSet with a field and no value succeeded")
			}
		})
	}
}

// TestAsFenced: only a FENCED reply becomes ErrFenced.
func TestAsFenced(t *testing.T) {
	other := errors.New("connection refused")
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{other, false},
		{redis.Nil, false},
		{leader.ErrFenced, true},
	}
	for _, tt := range tests {
		got := leader.AsFenced(tt.err)
		if errors.Is(got, leader.ErrFenced) != tt.want {
			t.Errorf("AsFenced(%v) = %v", tt.err, got)
		}
		if !tt.want && got != tt.err {
			t.Errorf("AsFenced(%v) changed it to %v", tt.err, got)
		}
	}
}
