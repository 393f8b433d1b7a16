package featurecode

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestPINFailuresLockOut(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	p := &pinFailures{rdb: rdb, prefix: DefaultKeyPrefix, attempts: 3, lockout: time.Minute, timeout: time.Second}
	ctx := context.Background()
	for i, wantLocked := range []bool{false, false, true, true} {
		locked, err := p.fail(ctx, "carol")
		if err != nil || locked != wantLocked {
			t.Fatalf("failure %d: locked %v, %v; want %v", i+1, locked, err, wantLocked)
		}
	}
	if locked, err := p.locked(ctx, "carol"); err != nil || !locked {
		t.Fatalf("locked = %v, %v after 4 failures", locked, err)
	}
	if ttl := mr.TTL("presenced:pinfail:carol"); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v, want the lockout", ttl)
	}
	if locked, _ := p.locked(ctx, "alice"); locked {
		t.Error("alice locked by carol's failures")
	}
	mr.FastForward(time.Minute + time.Second)
	if locked, err := p.locked(ctx, "carol"); err != nil || locked {
		t.Fatalf("still locked after the lockout: %v, %v", locked, err)
	}
	if _, err := p.fail(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := p.reset(ctx, "carol"); err != nil || mr.Exists("presenced:pinfail:carol") {
		t.Fatalf("reset: %v, key exists %v", err, mr.Exists("presenced:pinfail:carol"))
	}
}
