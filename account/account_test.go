package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
)

// newService is a Service over miniredis with two users: alice (1001, password
// "alice-password" from the configuration) and bob (1002, an admin, no password).
func newService(t *testing.T) (*Service, *fakeclock.Clock, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	h, err := secret.NewHash("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{
		{ID: "alice", Extension: "1001", PasswordHash: h, Devices: []presence.Device{{Dial: "PJSIP/1001", Family: "desk"}}},
		{ID: "bob", Extension: "1002", Admin: true, Devices: []presence.Device{{Dial: "PJSIP/1002", Family: "desk"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	s, err := New(Options{Redis: rdb, Catalog: cat, AdminToken: "the-admin-token-0123456789",
		IdleTimeout: 30 * time.Minute, MaxAge: 8 * time.Hour, Attempts: 5, Lockout: 15 * time.Minute, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, rdb
}

func TestAuthenticate(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, user, password string
		want                 string // the identity's ID, or "" for ErrWrongPassword
		admin                bool
	}{
		{"by id", "alice", "alice-password", "alice", false},
		{"by extension", "1001", "alice-password", "alice", false},
		{"wrong password", "alice", "alice-passwort", "", false},
		{"no password configured", "bob", "", "", false},
		{"unknown user", "mallory", "alice-password", "", false},
		{"admin token", "admin", "the-admin-token-0123456789", "admin", true},
		{"wrong admin token", "admin", "guess", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			who, err := s.Authenticate(ctx, tc.user, tc.password)
			if tc.want == "" {
				if !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("got %+v, %v; want ErrWrongPassword", who, err)
				}
				return
			}
			if err != nil || who.ID() != tc.want || who.Admin != tc.admin {
				t.Fatalf("got %+v (%s), %v; want %s admin=%v", who, who.ID(), err, tc.want, tc.admin)
			}
		})
	}
}

func TestWrongPasswordsLockOut(t *testing.T) {
	s, c, _ := newService(t)
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		if _, err := s.Authenticate(ctx, "1001", "nope-nope-nope"); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var locked *LockedError
	if _, err := s.Authenticate(ctx, "alice", "nope-nope-nope"); !errors.As(err, &locked) {
		t.Fatalf("fifth wrong password: %v, want LockedError", err)
	}
	// Locked: the right password is refused too, by id and by extension.
	for _, name := range []string{"alice", "1001"} {
		if _, err := s.Authenticate(ctx, name, "alice-password"); !errors.As(err, &locked) {
			t.Fatalf("right password while locked (%s): %v", name, err)
		}
	}
	_ = c // the Redis counters expire by Redis's clock; TestRedisWindowAndBlockExpire in internal/throttle covers it
}

func TestPasswordChangeAndLink(t *testing.T) {
	s, _, rdb := newService(t)
	ctx := context.Background()
	var perr *PasswordError
	if err := s.ChangePassword(ctx, "alice", "alice-password", "short"); !errors.As(err, &perr) {
		t.Fatalf("short password: %v", err)
	}
	if err := s.ChangePassword(ctx, "alice", "wrong-wrong-wrong", "a-new-password"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := s.ChangePassword(ctx, "alice", "alice-password", "a-new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice", "alice-password"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password after the change: %v", err)
	}
	if _, err := s.Authenticate(ctx, "alice", "a-new-password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	stored, _ := rdb.Get(ctx, "presenced:password:alice").Result()
	if !secret.IsHash(stored) {
		t.Fatalf("stored password is not a hash: %q", stored)
	}

	link, err := s.NewLink(ctx, "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := rdb.Keys(ctx, "presenced:pwlink:*").Result(); len(keys) != 1 || keys[0] == "presenced:pwlink:"+link.Token {
		t.Fatalf("link keys %v: want one, named by the token's digest", keys)
	}
	if _, err := s.UseLink(ctx, link.Token, "tiny"); !errors.As(err, &perr) {
		t.Fatalf("short password by link: %v", err)
	}
	if id, err := s.UseLink(ctx, link.Token, "bobs-own-password"); err != nil || id != "bob" {
		t.Fatalf("UseLink: %v, %v", id, err)
	}
	if _, err := s.UseLink(ctx, link.Token, "bobs-own-password"); !errors.Is(err, ErrBadLink) {
		t.Fatalf("second use of the link: %v", err)
	}
	if who, err := s.Authenticate(ctx, "1002", "bobs-own-password"); err != nil || !who.Admin {
		t.Fatalf("bob after the link: %+v, %v", who, err)
	}
}

func TestSessionsExpire(t *testing.T) {
	s, c, rdb := newService(t)
	ctx := context.Background()
	who, err := s.Authenticate(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Start(ctx, who)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "presenced:session:"+ss.ID).Result(); n != 0 {
		t.Fatal("the session is stored under its id: it must be under its digest")
	}
	got, err := s.Session(ctx, ss.ID)
	if err != nil || got.User != "alice" || got.CSRF != ss.CSRF || got.CSRF == "" {
		t.Fatalf("Session: %+v, %v", got, err)
	}
	// Used every 20 minutes, the session lives past its idle timeout, until its maximum age.
	for i := 0; i < 23; i++ {
		c.Advance(20 * time.Minute)
		if _, err := s.Session(ctx, ss.ID); err != nil {
			t.Fatalf("after %v of use: %v", time.Duration(i+1)*20*time.Minute, err)
		}
	}
	c.Advance(20 * time.Minute) // 8 h
	if _, err := s.Session(ctx, ss.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past the maximum age: %v", err)
	}

	ss, _ = s.Start(ctx, who)
	c.Advance(31 * time.Minute)
	if _, err := s.Session(ctx, ss.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle for 31 minutes: %v", err)
	}

	ss, _ = s.Start(ctx, who)
	if err := s.End(ctx, ss.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, ss.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after sign-out: %v", err)
	}
	if _, err := s.Session(ctx, "made-up"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("made-up session: %v", err)
	}
}

// TestSessionsEndWithTheCredential: setting a password ends the user's sessions; a session of
// the admin by token ends when the admin token changes.
func TestSessionsEndWithTheCredential(t *testing.T) {
	s, _, rdb := newService(t)
	ctx := context.Background()
	alice, _ := s.catalog.Load().User("alice")
	one, _ := s.Start(ctx, Identity{User: alice})
	two, _ := s.Start(ctx, Identity{User: alice})
	if err := s.SetPassword(ctx, "alice", "another-password"); err != nil {
		t.Fatal(err)
	}
	for _, ss := range []*Session{one, two} {
		if _, err := s.Session(ctx, ss.ID); !errors.Is(err, ErrNoSession) {
			t.Errorf("a session opened before the password was set: %v", err)
		}
	}
	three, _ := s.Start(ctx, Identity{User: alice})
	if _, err := s.Session(ctx, three.ID); err != nil {
		t.Fatalf("a session opened after: %v", err)
	}

	adm, err := s.Start(ctx, Identity{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, adm.ID); err != nil {
		t.Fatalf("admin session: %v", err)
	}
	rotated, err := New(Options{Redis: rdb, Catalog: s.catalog.Load(), AdminToken: "a-new-admin-token-987654321"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Session(ctx, adm.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("admin session after the token changed: %v", err)
	}
	same, err := New(Options{Redis: rdb, Catalog: s.catalog.Load(), AdminToken: "the-admin-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	adm2, _ := same.Start(ctx, Identity{Admin: true})
	if _, err := s.Session(ctx, adm2.ID); err != nil {
		t.Fatalf("admin session across a restart with the same token: %v", err)
	}
}
