package featurecode

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
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

func TestPINMatches(t *testing.T) {
	hash, err := secret.NewHash("4321")
	if err != nil {
		t.Fatal(err)
	}
	// libxcrypt's bcrypt of "4321" (python3 -c 'import crypt; print(crypt.crypt("4321", "$2b$04$abcdefghijklmnopqrstuu"))')
	const bcryptHash = "$2b$04$abcdefghijklmnopqrstuuUu.VihwGfe7.M4HknSz5WE3GKmiHeh6"
	for _, tc := range []struct {
		name string
		user presence.User
		got  string
		want bool
	}{
		{"plain right", presence.User{PIN: "4321"}, "4321", true},
		{"plain wrong", presence.User{PIN: "4321"}, "4322", false},
		{"plain prefix", presence.User{PIN: "4321"}, "432", false},
		{"argon2id right", presence.User{PINHash: hash}, "4321", true},
		{"argon2id wrong", presence.User{PINHash: hash}, "1234", false},
		{"bcrypt right", presence.User{PINHash: bcryptHash}, "4321", true},
		{"bcrypt wrong", presence.User{PINHash: bcryptHash}, "4320", false},
		{"no PIN", presence.User{}, "", false},
		{"hash is not a PIN", presence.User{PINHash: hash}, hash, false},
	} {
		if got := pinMatches(&tc.user, tc.got); got != tc.want {
			t.Errorf("%s: pinMatches = %v, want %v", tc.name, got, tc.want)
		}
		if has := hasPIN(&tc.user); has != (tc.user.PIN != "" || tc.user.PINHash != "") {
			t.Errorf("%s: hasPIN = %v", tc.name, has)
		}
	}
}
