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
	opt, err := redis.ParseURL(labEnv(t).RedisURL)
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

// flipAfterApply is a concern that ends the leadership (leading = false) once it has applied.
type flipAfterApply struct {
	*memPBX
	leading *atomic.Bool
}

func (f flipAfterApply) Apply(ctx context.Context, u *User, ops []Op) []Outcome {
	out := f.memPBX.Apply(ctx, u, ops)
	f.leading.Store(false)
	return out
}

// TestSwitchNotJournaledIsNotAcknowledged: a switch applied whose record and journal entry
// cannot be written (here: the lease lost in between) is answered with the error, not as
// done; the next pass, once the store takes writes again, journals it.
func TestSwitchNotJournaledIsNotAcknowledged(t *testing.T) {
	ctx := context.Background()
	var leading atomic.Bool
	leading.Store(true)
	var lease string
	e, _, states := newTestEngineWith(t, CatalogConfig{Users: []User{alice()}, Profiles: []Profile{lunch()}}, func(o *EngineOptions) {
		lease = o.States.prefix + "leader:pbx"
		o.States.fence = func() (Fence, bool) { return Fence{Key: lease, Value: "me 1"}, leading.Load() }
		o.Concerns = []Concern{flipAfterApply{memPBX: o.Concerns[0].(*memPBX), leading: &leading}}
	})
	if err := states.rdb.Set(ctx, lease, "me 1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceAPI})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("switch whose journal entry could not be written: %v, want ErrFenced", err)
	}
	if j, _ := states.Journal(ctx, "alice", 10); len(j) != 0 {
		t.Fatalf("journal after the refused write: %+v", j)
	}
	// Leading again: the retry finds the PBX done (nothing to apply, so the concern does not
	// take the lease away again) and writes the record with the switch's journal entry.
	leading.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, _ := states.Journal(ctx, "alice", 10)
		if len(j) == 1 && j[0].Kind == "switch" && j[0].To == "lunch" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the switch was never journaled: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
