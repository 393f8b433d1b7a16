package presence

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestFencedWrites: with a fence, the engine's writes (state, adopted drift, record, journal)
// happen only while the fence key holds the fence's value; a lost lease refuses them and
// changes nothing, and a store that knows it does not lead refuses them without asking Redis.
func TestFencedWrites(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(env.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	lease := prefix + "leader:pbx"
	var leading atomic.Bool
	leading.Store(true)
	s := NewStateStore(rdb, StateStoreOptions{Prefix: prefix, Fence: func() (Fence, bool) {
		return Fence{Key: lease, Value: "me 7"}, leading.Load()
	}})
	writes := map[string]func() error{
		"Save": func() error {
			_, err := s.Save(ctx, "alice", UserState{Profile: "lunch", Version: mustVersion(t, s, "alice")})
			return err
		},
		"SaveAdopted": func() error { return s.SaveAdopted(ctx, "alice", mustVersion(t, s, "alice"), NewTarget()) },
		"SaveRecord":  func() error { return s.SaveRecord(ctx, "alice", Record{InSync: true}) },
		"AppendJournal": func() error {
			_, err := s.AppendJournal(ctx, "alice", JournalEntry{Kind: "switch"})
			return err
		},
	}
	if err := rdb.Set(ctx, lease, "me 7", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for name, w := range writes {
		if err := w(); err != nil {
			t.Fatalf("%s while leading: %v", name, err)
		}
	}
	before, _, _ := s.Load(ctx, "alice")
	for _, lost := range []struct {
		name string
		do   func()
	}{
		{"another instance leads", func() { rdb.Set(ctx, lease, "other 8", time.Minute) }},
		{"the lease expired", func() { rdb.Del(ctx, lease) }},
		{"this instance knows it does not lead", func() { rdb.Set(ctx, lease, "me 7", time.Minute); leading.Store(false) }},
	} {
		lost.do()
		for name, w := range writes {
			if err := w(); !errors.Is(err, ErrFenced) {
				t.Errorf("%s: %s: %v, want ErrFenced", lost.name, name, err)
			}
		}
	}
	after, _, _ := s.Load(ctx, "alice")
	if after.Version != before.Version {
		t.Fatalf("a refused save changed the state: version %d → %d", before.Version, after.Version)
	}
	if j, _ := s.Journal(ctx, "alice", 10); len(j) != 1 {
		t.Fatalf("journal has %d entries, want the one written while leading", len(j))
	}
}

func mustVersion(t *testing.T, s *StateStore, id UserID) int64 {
	t.Helper()
	st, _, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Version
}
