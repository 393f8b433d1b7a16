package trigger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

func (s *Scheduler) loadState(ctx context.Context, id presence.UserID) (presence.UserState, error) {
	st, _, err := s.opts.States.Load(ctx, id)
	return st, err
}

func (s *Scheduler) loadRecord(ctx context.Context, id presence.UserID) (*Record, error) {
	raw, err := s.opts.Redis.Get(ctx, s.recordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, presence.StoreError(err, "trigger: load record of "+string(id), s.recordKey(id))
	}
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		s.log.Error("trigger record unreadable, starting afresh", "key", s.recordKey(id), "err", err)
		return nil, nil
	}
	return &rec, nil
}

func (s *Scheduler) saveRecord(ctx context.Context, id presence.UserID, rec *Record) error {
	if rec == nil {
		if err := s.opts.Redis.Del(ctx, s.recordKey(id)).Err(); err != nil {
			return presence.StoreError(err, "trigger: delete record of "+string(id), s.recordKey(id))
		}
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("trigger: encode record of %s: %w", id, err)
	}
	if err := s.opts.Redis.Set(ctx, s.recordKey(id), b, 0).Err(); err != nil {
		return presence.StoreError(err, "trigger: save record of "+string(id), s.recordKey(id))
	}
	return nil
}

// lock takes the user's trigger lock in Redis (held at most 30 s), waiting for it while ctx
// allows, and returns its release.
func (s *Scheduler) lock(ctx context.Context, id presence.UserID) (func(), error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := s.lockKey(id)
	wait := time.Millisecond
	for {
		ok, err := s.opts.Redis.SetNX(ctx, key, token, 30*time.Second).Result()
		if err != nil {
			return nil, presence.StoreError(err, "trigger: lock "+string(id), key)
		}
		if ok {
			return func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				if err := s.unlock.Run(ctx, s.opts.Redis, []string{key}, token).Err(); err != nil {
					s.log.Warn("trigger lock not released; it expires", "key", key, "err", err)
				}
			}, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("trigger: lock %s: %w", id, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
