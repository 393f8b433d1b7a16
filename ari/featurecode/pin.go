package featurecode

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
)

// hasPIN reports whether u has a PIN, given as it is (pin, pin_file) or as a hash (pin_hash).
func hasPIN(u *presence.User) bool { return u.PIN != "" || u.PINHash != "" }

// pinMatches reports whether got is u's PIN. A pin_hash is verified with its slow hash (tens
// of milliseconds; PIN entries are few and far between), a plain PIN in constant time.
func pinMatches(u *presence.User, got string) bool {
	if u.PINHash != "" {
		h, err := secret.ParseHash(u.PINHash) // checked when the configuration was loaded
		return err == nil && h.Verify(got)
	}
	return u.PIN != "" && subtle.ConstantTimeCompare([]byte(got), []byte(u.PIN)) == 1
}

// pinFailures counts a user's wrong PINs in Redis, under <prefix>pinfail:<user>, so that a
// lockout holds across restarts and across instances. The counter expires Lockout after the
// first failure; reaching the limit sets it to expire Lockout from then.
type pinFailures struct {
	rdb      redis.Cmdable
	prefix   string
	attempts int
	lockout  time.Duration
	timeout  time.Duration
}

func (a *App) pins() *pinFailures {
	return &pinFailures{rdb: a.opts.Redis, prefix: a.opts.Prefix, attempts: a.opts.PINAttempts,
		lockout: a.opts.Lockout, timeout: a.opts.RequestTimeout}
}

// PINFailureKey is the Redis key counting the wrong PINs of user id, with the given key
// prefix ("" means DefaultKeyPrefix).
func PINFailureKey(prefix string, id presence.UserID) string {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return prefix + "pinfail:" + string(id)
}

func (p *pinFailures) key(id presence.UserID) string { return PINFailureKey(p.prefix, id) }

// locked reports whether the user is locked out.
func (p *pinFailures) locked(ctx context.Context, id presence.UserID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	n, err := p.rdb.Get(ctx, p.key(id)).Int()
	if err == redis.Nil {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read PIN failures of %s: %w", id, err)
	}
	return n >= p.attempts, nil
}

// fail counts a wrong PIN and reports whether it locked the user out.
func (p *pinFailures) fail(ctx context.Context, id presence.UserID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	key := p.key(id)
	var incr *redis.IntCmd
	_, err := p.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		incr = pipe.Incr(ctx, key)
		pipe.ExpireNX(ctx, key, p.lockout)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("count PIN failure of %s: %w", id, err)
	}
	if incr.Val() < int64(p.attempts) {
		return false, nil
	}
	if incr.Val() == int64(p.attempts) {
		if err := p.rdb.Expire(ctx, key, p.lockout).Err(); err != nil {
			return true, fmt.Errorf("start lockout of %s: %w", id, err)
		}
	}
	return true, nil
}

// reset forgets the user's failures after a right PIN.
func (p *pinFailures) reset(ctx context.Context, id presence.UserID) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.rdb.Del(ctx, p.key(id)).Err()
}
