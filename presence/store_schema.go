package presence

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// schemaCheck is the result of one check of the schema version key.
type schemaCheck struct {
	err error // nil, or an *UnavailableError wrapping a *SchemaError
	at  time.Time
}

// fresh reports whether the check still stands: younger than the check interval, and the store
// was not found unavailable since.
func (s *StateStore) fresh(c *schemaCheck) bool {
	return c != nil && !s.recheck.Load() && time.Since(c.at) < s.schemaEvery
}

// EnsureSchema returns nil when the store holds the schema this presenced understands: from
// the last check while it stands (no I/O), else from a new one (see CheckSchema). Every
// operation of the StateStore calls it first, so that presenced never reads or writes another
// layout; packages that keep their own keys in the state store (trigger) call it before
// writing them.
func (s *StateStore) EnsureSchema(ctx context.Context) error {
	if c := s.schema.Load(); s.fresh(c) {
		return c.err
	}
	asked := time.Now()
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if s.tried.After(asked) {
		// A check ran while this one waited: its answer serves (an outage costs the waiting
		// operations one check, not one each in turn).
		return s.triedErr
	}
	err := s.checkSchema(ctx, s.rdb)
	s.tried, s.triedErr = time.Now(), err
	return err
}

// CheckSchema reads the schema version key now and returns nil when it says SchemaVersion.
// In a store holding none of presenced's user keys the key is written (a new or wiped store);
// a store holding presenced data without the key, or with another version, is refused: the
// error is an *UnavailableError wrapping a *SchemaError, every operation of the StateStore
// returns it until a check finds the key right again, and the change is logged. When Redis
// cannot be read the error says so and the last result stands.
//
// The key is checked again when the last check is older than
// StateStoreOptions.SchemaCheckInterval or the store was found unavailable since; WatchSchema
// checks it at that interval by itself, so that a mismatch is logged while nothing reads the
// store; a StateStore made by Redis.StateStore checks it on every new connection too, before
// the connection is used.
func (s *StateStore) CheckSchema(ctx context.Context) error {
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	err := s.checkSchema(ctx, s.rdb)
	s.tried, s.triedErr = time.Now(), err
	return err
}

// checkConn checks the schema on a new connection before it is used (Redis's OnConnect). A
// mismatch fails the connection, so that no command reaches a store of another layout, however
// transparently the client reconnected. It takes no lock: a check under schemaMu may be what
// opened the connection.
func (s *StateStore) checkConn(ctx context.Context, cn *redis.Conn) error {
	return s.checkSchema(ctx, cn)
}

// schemaCmds are the commands a schema check sends: through the client, or on one connection.
type schemaCmds interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
}

// checkSchema reads the key through c, records and logs the result (unless Redis could not be
// read), and returns it.
func (s *StateStore) checkSchema(ctx context.Context, c schemaCmds) error {
	s.recheck.Store(false) // an outage from here on makes the next operation check again
	key := s.prefix + "schema"
	got, err := c.Get(ctx, key).Result()
	var sample string
	if errors.Is(err, redis.Nil) {
		got, sample, err = s.initSchema(ctx, c, key)
	}
	var mismatch *SchemaError
	if errors.As(err, &mismatch) {
		// The new connection this check opened found a mismatch, and recorded it: the
		// operations are refused from the record, without opening connections again.
		return err
	}
	if err != nil {
		s.recheck.Store(true)
		return s.fail(err, "check schema version", key)
	}
	s.ok()
	var res error
	if got != SchemaVersion {
		se := &SchemaError{Key: key, Found: got, Sample: sample}
		res = &UnavailableError{Reason: se.Error(), Err: se}
	}
	prev := s.schema.Swap(&schemaCheck{err: res, at: time.Now()})
	switch {
	case res != nil && (prev == nil || prev.err == nil || prev.err.Error() != res.Error()):
		s.log.Error("state store schema mismatch: presenced neither reads nor writes it; /readyz fails and the API "+
			"answers 503 until the key is right", "key", key, "found", got, "want", SchemaVersion, "err", res)
	case res == nil && prev != nil && prev.err != nil:
		s.log.Info("state store schema version is right again", "key", key, "version", got)
	}
	return res
}

// initSchema handles a missing schema key: it writes it when the store holds none of
// presenced's user keys, and returns the version the key then holds. When user keys exist it
// returns "" and one of them. The SCAN runs only when the key is missing.
func (s *StateStore) initSchema(ctx context.Context, c schemaCmds, key string) (version, sample string, err error) {
	match := globEscape(s.prefix) + "user:*"
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return "", "", err
		}
		if len(keys) > 0 {
			return "", keys[0], nil
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	set, err := c.SetNX(ctx, key, SchemaVersion, 0).Result()
	if err != nil {
		return "", "", err
	}
	if set {
		s.log.Warn("state store holds no presenced data (new, or wiped): schema version written", "key", key,
			"version", SchemaVersion)
	}
	version, err = c.Get(ctx, key).Result()
	return version, "", err
}

// globEscape quotes the characters Redis's MATCH patterns treat specially.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}

// WatchSchema checks the schema version every StateStoreOptions.SchemaCheckInterval until ctx
// ends, so that a mismatch (or a store that became empty) is found and logged even while
// nothing reads the store.
func (s *StateStore) WatchSchema(ctx context.Context) {
	t := time.NewTicker(s.schemaEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, min(s.schemaEvery, 10*time.Second))
			s.CheckSchema(cctx) // logs what changed
			cancel()
		}
	}
}
