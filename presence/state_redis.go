package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// SchemaVersion is the layout of presenced's keys in Redis. A store written by another
// layout is refused rather than misread (see CheckSchema).
const SchemaVersion = "1"

// DefaultSchemaCheckInterval is how often the schema version is checked again when
// StateStoreOptions.SchemaCheckInterval is zero.
const DefaultSchemaCheckInterval = 30 * time.Second

// ErrConflict means another writer changed a user's state since it was read.
var ErrConflict = errors.New("presence: state changed concurrently")

// CorruptError is Redis data presenced cannot read: a value that does not decode, or a key that
// holds another type of value than presenced keeps there. The data is left as it is.
type CorruptError struct {
	Key string
	// Field is the hash field or stream entry; empty when the whole key is unreadable.
	Field string
	Err   error
}

func (e *CorruptError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("presence: unreadable data in redis key %s: %v (fix or delete it)", e.Key, e.Err)
	}
	return fmt.Sprintf("presence: unreadable data in redis key %s field %s: %v (fix or delete it)", e.Key, e.Field, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// StateStore keeps users' states, personal profiles and journals in Redis:
//
//	presenced:schema                  "1"
//	presenced:user:<id>               hash: state (JSON UserState), version, profile (the state's
//	                                  active profile, for ActiveProfiles), adopted (JSON Target),
//	                                  record (JSON Record)
//	presenced:outofsync               set of the users whose record is not in sync
//	presenced:retries                 sorted set of the users with a retry due, by its time (ms)
//	presenced:user:<id>:profiles      hash: profile id → JSON Profile
//	presenced:user:<id>:journal       stream of JournalEntry, trimmed to about JournalLength
//
// Errors: an *UnavailableError (errors.Is ErrStoreUnavailable) when the store cannot serve or
// holds another schema; a *CorruptError naming the key when a record cannot be read. Reads of
// many records leave the unreadable ones out and report them, joined, beside what they read.
// Every record found unreadable is counted and logged once, not at every read (see
// StateStoreOptions.Logger).
type StateStore struct {
	rdb           *redis.Client
	batch         *pipeBatcher // the hot path's round trips, shared between users (LoadUser, Save, SaveRecordJournal)
	prefix        string
	journalLength int64
	save          script
	archive       script
	adopt         script
	saveRecord    script
	journal       script
	dndKey        script
	fence         func() (Fence, bool)
	log           *slog.Logger

	schemaEvery time.Duration
	schemaMu    sync.Mutex                  // one schema check at a time; guards tried, triedErr
	tried       time.Time                   // when the last check ended
	triedErr    error                       // what it returned
	schema      atomic.Pointer[schemaCheck] // the last check's result; nil before the first
	recheck     atomic.Bool                 // the store was found unavailable since the last check
	down        atomic.Bool                 // the last operation found the store unavailable

	unreadable *unreadableRecords
	wait       *waitReplicas // nil: acknowledged writes do not wait for replicas (confirmed)
}

// StateStoreOptions configures a StateStore.
type StateStoreOptions struct {
	// Prefix starts every key; empty means "presenced:".
	Prefix string
	// JournalLength bounds each user's journal (approximately); zero means 1000.
	JournalLength int64
	// SchemaCheckInterval is how often the schema version is checked again; zero means
	// DefaultSchemaCheckInterval. It is also checked after the store was found unavailable,
	// and, in a StateStore made by Redis.StateStore, on every new connection.
	SchemaCheckInterval time.Duration
	// Logger receives, once per change rather than at every read, the records found unreadable
	// and readable again, the store becoming unavailable and available again, and schema
	// mismatches. Nil discards them.
	Logger *slog.Logger
	// Registerer receives presenced_store_unreadable_records_total{kind} and
	// presenced_store_unreadable_records{kind}; nil registers none.
	Registerer prometheus.Registerer
	// Fence, when set, makes the engine's writes (states, adopted drift, records, the journal)
	// conditional on this instance's leadership: refused with ErrFenced when it says this
	// instance does not lead, or when its key no longer holds its value in Redis. Personal
	// profiles are the users' own data and are not fenced.
	Fence func() (Fence, bool)
}

// saveScript writes a user's state if its version is still ARGV[1], and returns the new
// version; otherwise it answers CONFLICT. Beside the state it keeps the state's profile
// (ARGV[6]) in a field of its own, so that counting users by profile reads no JSON. A user's first state gets the record ARGV[3] (no
// version applied yet), so that the engine knows the state for a switch to apply. It announces
// the change (ARGV[5] on channel ARGV[4], changes.go). One round trip, atomic.
const saveScript = `
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return redis.error_reply('CONFLICT') end
local next = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'version', tostring(next), 'profile', ARGV[6])
redis.call('HDEL', KEYS[1], 'adopted')
redis.call('HSETNX', KEYS[1], 'record', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return next
`

// journalScript appends an entry (ARGV[2]) to a user's journal, trimmed to about ARGV[1]
// entries, and returns its ID.
const journalScript = `return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'entry', ARGV[2])`

// adoptScript writes (or, with an empty ARGV[2], deletes) what a user's desired state adopted
// from the PBX, if the state's version is still ARGV[1]. The version is not bumped: adopting is
// not a switch.
const adoptScript = `
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return redis.error_reply('CONFLICT') end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'adopted') else redis.call('HSET', KEYS[1], 'adopted', ARGV[2]) end
return 1
`

// NewStateStore returns the store. It does no I/O: the schema version is checked (or written,
// in an empty Redis) by the first operation, or by CheckSchema. Redis.StateStore makes one
// that also checks every new connection.
func NewStateStore(rdb *redis.Client, opts StateStoreOptions) *StateStore {
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.JournalLength == 0 {
		opts.JournalLength = 1000
	}
	if opts.SchemaCheckInterval <= 0 {
		opts.SchemaCheckInterval = DefaultSchemaCheckInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &StateStore{rdb: rdb, batch: &pipeBatcher{rdb: rdb}, prefix: opts.Prefix, journalLength: opts.JournalLength, save: newScript(saveScript), archive: newScript(archiveScript),
		adopt: newScript(adoptScript), saveRecord: newScript(saveRecordScript), journal: newScript(journalScript), dndKey: newScript(dndKeyScript),
		fence: opts.Fence, log: log, schemaEvery: opts.SchemaCheckInterval,
		unreadable: newUnreadableRecords(log, opts.Registerer)}
	return s
}

// fail describes the failure of a command on key (see StoreError) and notes an outage: the
// first failure of an outage is logged, the rest are not.
func (s *StateStore) fail(err error, op, key string) error {
	err = StoreError(err, "presence: "+op, key)
	var (
		u      *UnavailableError
		schema *SchemaError
	)
	if errors.As(err, &u) && !errors.As(err, &schema) { // a mismatch is logged by the check
		s.recheck.Store(true) // what answers next may be another Redis, or an empty one
		if !s.down.Swap(true) {
			s.log.Error("state store unavailable: requests that need it answer 503 until it is back", "reason", u.Reason, "err", err)
		}
	}
	return err
}

// ok notes a command that reached the store.
func (s *StateStore) ok() {
	if s.down.Load() && s.down.Swap(false) {
		s.log.Info("state store available again")
	}
}

func (s *StateStore) userKey(id UserID) string     { return s.prefix + "user:" + string(id) }
func (s *StateStore) profilesKey(id UserID) string { return s.userKey(id) + ":profiles" }
func (s *StateStore) journalKey(id UserID) string  { return s.userKey(id) + ":journal" }

// stateFields are the fields of a user's hash that Load reads.
var stateFields = []string{"state", "version", "adopted", "record"}

// Load returns a user's state; found is false for a user presenced has never switched.
func (s *StateStore) Load(ctx context.Context, id UserID) (st UserState, found bool, err error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return UserState{}, false, err
	}
	key := s.userKey(id)
	vals, err := s.rdb.HMGet(ctx, key, stateFields...).Result()
	if err != nil {
		err = s.fail(err, "load state of "+string(id), key)
		s.unreadable.note(kindState, key, err)
		return UserState{}, false, err
	}
	s.ok()
	st, found, err = s.decodeState(id, vals)
	s.unreadable.note(kindState, key, err)
	return st, found, err
}

// LoadMany returns the states of many users in one round trip; users never switched are absent.
// Users whose data cannot be read (a value that does not decode, a key of another type) are
// left out and reported: the error is then made only of *CorruptErrors, one per user. Any
// other error (the store unavailable) comes alone, with a nil map.
func (s *StateStore) LoadMany(ctx context.Context, ids []UserID) (map[UserID]UserState, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	// The pipeline's own error is its first command's; each command is judged below, so
	// that one key of another type does not fail the others.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.userKey(id), stateFields...)
		}
		return nil
	})
	out := make(map[UserID]UserState, len(ids))
	var errs []error
	for i, id := range ids {
		key := s.userKey(id)
		st, found, err := UserState{}, false, cmds[i].Err()
		if err != nil {
			err = s.fail(err, "load states", key)
			if !corruptOnly(err) {
				return nil, err
			}
		} else {
			st, found, err = s.decodeState(id, cmds[i].Val())
		}
		s.unreadable.note(kindState, key, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if found {
			out[id] = st
		}
	}
	s.ok()
	return out, errors.Join(errs...)
}

func (s *StateStore) decodeState(id UserID, vals []any) (UserState, bool, error) {
	raw, _ := vals[0].(string)
	if raw == "" {
		return UserState{}, false, nil
	}
	var st UserState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return UserState{}, false, &CorruptError{Key: s.userKey(id), Field: "state", Err: err}
	}
	ver, _ := vals[1].(string)
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return UserState{}, false, &CorruptError{Key: s.userKey(id), Field: "version", Err: err}
	}
	st.Version, st.Adopted = n, nil
	if raw, _ := vals[2].(string); raw != "" {
		var t Target
		if err := json.Unmarshal([]byte(raw), &t); err != nil {
			return UserState{}, false, &CorruptError{Key: s.userKey(id), Field: "adopted", Err: err}
		}
		st.Adopted = &t
	}
	rec, err := s.decodeRecord(id, vals[3])
	s.unreadable.note(kindRecord, s.userKey(id)+" record", err)
	st.Record = rec // an unreadable record counts as none: the next check writes a new one
	return st, true, nil
}

// conflict tells the CONFLICT reply of saveScript and adoptScript.
func conflict(err error) bool { return redis.HasErrorPrefix(err, "CONFLICT") }

// SaveAdopted records what the user's desired state adopted from the PBX (nil forgets it), if
// the state's version is still version; ErrConflict otherwise. A switch forgets adoptions.
func (s *StateStore) SaveAdopted(ctx context.Context, id UserID, version int64, adopted *Target) error {
	if err := s.EnsureSchema(ctx); err != nil {
		return err
	}
	var raw string
	if adopted != nil {
		b, err := json.Marshal(adopted)
		if err != nil {
			return fmt.Errorf("presence: encode adopted state of %s: %w", id, err)
		}
		raw = string(b)
	}
	key := s.userKey(id)
	err := s.run(ctx, s.rdb, s.adopt, []string{key}, strconv.FormatInt(version, 10), raw).Err()
	if fenced(err) {
		return ErrFenced
	}
	if conflict(err) {
		s.ok()
		return ErrConflict
	}
	if err != nil {
		return s.fail(err, "save adopted state of "+string(id), key)
	}
	s.ok()
	return nil
}

// Version reads only the version of a user's state, so that state that cannot be read can be
// replaced by a compare-and-set all the same.
func (s *StateStore) Version(ctx context.Context, id UserID) (int64, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return 0, err
	}
	key := s.userKey(id)
	raw, err := s.rdb.HGet(ctx, key, "version").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, s.fail(err, "read state version of "+string(id), key)
	}
	s.ok()
	v, perr := strconv.ParseInt(raw, 10, 64)
	if err != nil || perr != nil {
		if err == nil {
			err = perr
		}
		return 0, &CorruptError{Key: key, Field: "version", Err: err}
	}
	return v, nil
}

// Save writes st if the stored version is still st.Version (0 for a new user) and returns the
// state with its new version; ErrConflict when another writer came first.
func (s *StateStore) Save(ctx context.Context, id UserID, st UserState) (UserState, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return st, err
	}
	st.Adopted = nil // a switch forgets what was adopted; the script deletes it
	b, err := json.Marshal(st)
	if err != nil {
		return st, fmt.Errorf("presence: encode state of %s: %w", id, err)
	}
	key := s.userKey(id)
	var n int64
	n, err = s.runAcknowledged(ctx, "save state of "+string(id), s.save, []string{key},
		strconv.FormatInt(st.Version, 10), string(b), `{"version":0}`, s.changesChannel(), string(id), st.Profile).Int64()
	if fenced(err) {
		return st, ErrFenced
	}
	if conflict(err) {
		s.ok()
		return st, ErrConflict
	}
	if err != nil {
		return st, s.fail(err, "save state of "+string(id), key)
	}
	s.ok()
	st.Version = n
	return st, nil
}

// AppendJournal adds an entry to the user's journal and trims it; it returns the entry's ID.
func (s *StateStore) AppendJournal(ctx context.Context, id UserID, e JournalEntry) (string, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return "", err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("presence: encode journal entry of %s: %w", id, err)
	}
	key := s.journalKey(id)
	var jid string
	err = s.confirmed(ctx, "append journal of "+string(id), func(c redis.Cmdable) (err error) {
		jid, err = s.run(ctx, c, s.journal, []string{key}, strconv.FormatInt(s.journalLength, 10), string(b)).Text()
		return err
	})
	if fenced(err) {
		return "", ErrFenced
	}
	if err != nil {
		return "", s.fail(err, "append journal of "+string(id), key)
	}
	s.ok()
	return jid, nil
}

// Journal returns up to count of the user's newest journal entries, newest first. Entries that
// cannot be read are reported in the error (*CorruptErrors only) and left out.
func (s *StateStore) Journal(ctx context.Context, id UserID, count int64) ([]JournalEntry, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return nil, err
	}
	key := s.journalKey(id)
	msgs, err := s.rdb.XRevRangeN(ctx, key, "+", "-", count).Result()
	if err != nil {
		err = s.fail(err, "read journal of "+string(id), key)
		s.unreadable.note(kindJournal, key, err)
		return nil, err
	}
	s.ok()
	out := make([]JournalEntry, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		raw, _ := m.Values["entry"].(string)
		var e JournalEntry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			errs = append(errs, &CorruptError{Key: key, Field: m.ID, Err: err})
			continue
		}
		e.ID = m.ID
		out = append(out, e)
	}
	err = errors.Join(errs...)
	s.unreadable.note(kindJournal, key, err)
	return out, err
}

// LoadUser is Load and PersonalProfiles in one round trip: what every look at a user starts
// with. stateErr is what Load would return, profilesErr what PersonalProfiles would.
func (s *StateStore) LoadUser(ctx context.Context, id UserID) (st UserState, found bool, personal []*Profile, stateErr, profilesErr error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return UserState{}, false, nil, err, err
	}
	key, pkey := s.userKey(id), s.profilesKey(id)
	var stCmd *redis.SliceCmd
	var pCmd *redis.MapStringStringCmd
	if err := s.batch.do(ctx, func(p redis.Pipeliner) { // each command is judged below
		stCmd = p.HMGet(ctx, key, stateFields...)
		pCmd = p.HGetAll(ctx, pkey)
	}); err != nil {
		err = s.fail(err, "load state of "+string(id), key)
		return UserState{}, false, nil, err, err
	}
	if vals, err := stCmd.Result(); err != nil {
		stateErr = s.fail(err, "load state of "+string(id), key)
	} else {
		st, found, stateErr = s.decodeState(id, vals)
	}
	s.unreadable.note(kindState, key, stateErr)
	if all, err := pCmd.Result(); err != nil {
		profilesErr = s.fail(err, "read profiles of "+string(id), pkey)
	} else {
		personal, profilesErr = s.decodeProfiles(id, all)
	}
	s.unreadable.note(kindProfile, pkey, profilesErr)
	if stCmd.Err() == nil && pCmd.Err() == nil {
		s.ok()
	}
	return st, found, personal, stateErr, profilesErr
}

// archiveScript appends the last journal entry (ARGV[3], trimmed to about ARGV[2]) to
// KEYS[1], the user's journal, then renames every key of KEYS that exists to ARGV[3+i]'s name
// under the archive prefix ARGV[1]. One round trip, atomic.
const archiveScript = `
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'entry', ARGV[3])
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    redis.call('RENAME', k, ARGV[1] .. ARGV[3 + i])
    n = n + 1
  end
end
return n
`

// ArchivePrefix is where Archive moves the keys of a user removed from the configuration:
// <prefix>archive:<UTC time>:<the key without prefix>, e.g.
// presenced:archive:20261206T101500Z:user:alice.
func (s *StateStore) ArchivePrefix(at time.Time) string {
	return s.prefix + "archive:" + at.UTC().Format("20060102T150405Z") + ":"
}

// Archive keeps a user removed from the configuration out of the live keys without losing
// anything: it appends last to their journal, then renames their state, personal profiles and
// journal, and the keys of other packages extra names (all under the store's prefix), to
// ArchivePrefix. It returns that prefix. The write is fenced like the engine's others.
func (s *StateStore) Archive(ctx context.Context, id UserID, last JournalEntry, extra []string) (string, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return "", err
	}
	b, err := json.Marshal(last)
	if err != nil {
		return "", fmt.Errorf("presence: encode journal entry of %s: %w", id, err)
	}
	dest := s.ArchivePrefix(last.At)
	keys := append([]string{s.journalKey(id), s.userKey(id), s.profilesKey(id)}, extra...)
	args := []any{dest, strconv.FormatInt(s.journalLength, 10), string(b)}
	for _, k := range keys {
		if !strings.HasPrefix(k, s.prefix) {
			return "", fmt.Errorf("presence: archive %s: key %q is not under %q", id, k, s.prefix)
		}
		args = append(args, strings.TrimPrefix(k, s.prefix))
	}
	err = s.confirmed(ctx, "archive "+string(id), func(c redis.Cmdable) error {
		return s.run(ctx, c, s.archive, keys, args...).Err()
	})
	if fenced(err) {
		return "", ErrFenced
	}
	if err != nil {
		return "", s.fail(err, "archive "+string(id), s.userKey(id))
	}
	s.ok()
	return dest, nil
}
