package presence_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// TestFencedWrites: with a fence, the engine's writes (state, adopted drift, record, journal)
// happen only while the fence key holds the fence's value; a lost lease refuses them and
// changes nothing, and a store that knows it does not lead refuses them without asking Redis.
func TestFencedWrites(t *testing.T) {
	ctx := context.Background()
	rdb := presence.LabEnv(t).RedisClient(t, nil)
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	lease := prefix + "leader:pbx"
	var leading atomic.Bool
	leading.Store(true)
	s := presence.NewStateStore(rdb, presence.StateStoreOptions{Prefix: prefix, Fence: func() (presence.Fence, bool) {
		return presence.Fence{Key: lease, Value: "me 7"}, leading.Load()
	}})
	writes := map[string]func() error{
		"Save": func() error {
			_, err := s.Save(ctx, "alice", presence.UserState{Profile: "lunch", Version: mustVersion(t, s, "alice")})
			return err
		},
		"SaveAdopted": func() error { return s.SaveAdopted(ctx, "alice", mustVersion(t, s, "alice"), presence.NewTarget()) },
		"SaveRecord":  func() error { return s.SaveRecord(ctx, "alice", presence.Record{InSync: true}) },
		"AppendJournal": func() error {
			_, err := s.AppendJournal(ctx, "alice", presence.JournalEntry{Kind: "switch"})
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
			if err := w(); !errors.Is(err, presence.ErrFenced) {
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

func mustVersion(t *testing.T, s *presence.StateStore, id presence.UserID) int64 {
	t.Helper()
	st, _, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Version
}

// flipAfterApply is a concern that ends the leadership (leading = false) once it has applied.
type flipAfterApply struct {
	*presencetest.PBX
	leading *atomic.Bool
}

func (f flipAfterApply) Apply(ctx context.Context, u *presence.User, ops []presence.Op) []presence.Outcome {
	out := f.PBX.Apply(ctx, u, ops)
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
	e, _, states := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{presence.Alice()}, Profiles: []presence.Profile{presence.Lunch()}}, func(o *presencetest.RigOptions) {
		lease = o.Prefix + "leader:pbx"
		o.States.Fence = func() (presence.Fence, bool) { return presence.Fence{Key: lease, Value: "me 1"}, leading.Load() }
		o.Engine.Concerns = []presence.Concern{flipAfterApply{PBX: o.Engine.Concerns[0].(*presencetest.PBX), leading: &leading}}
	})
	if err := states.Redis().Set(ctx, lease, "me 1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI})
	if !errors.Is(err, presence.ErrFenced) {
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
