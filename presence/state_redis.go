package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// SchemaVersion is the layout of presenced's keys in Redis. A store written by another
// layout is refused rather than misread.
const SchemaVersion = "1"

// ErrConflict means another writer changed a user's state since it was read.
var ErrConflict = errors.New("presence: state changed concurrently")

// CorruptError is Redis data presenced cannot read. The data is left as it is.
type CorruptError struct {
	Key   string
	Field string
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("presence: unreadable data in redis key %s field %s: %v (fix or delete it)", e.Key, e.Field, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// StateStore keeps users' states, personal profiles and journals in Redis:
//
//	presenced:schema                  "1"
//	presenced:user:<id>               hash: state (JSON UserState), version, adopted (JSON Target)
//	presenced:user:<id>:profiles      hash: profile id → JSON Profile
//	presenced:user:<id>:journal       stream of JournalEntry, trimmed to about JournalLength
type StateStore struct {
	rdb           *redis.Client
	prefix        string
	journalLength int64
	save          *redis.Script
	adopt         *redis.Script
	schemaOK      atomic.Bool
}

// StateStoreOptions configures a StateStore.
type StateStoreOptions struct {
	// Prefix starts every key; empty means "presenced:".
	Prefix string
	// JournalLength bounds each user's journal (approximately); zero means 1000.
	JournalLength int64
}

// saveScript writes a user's state if its version is still ARGV[1], and returns the new
// version; otherwise it answers CONFLICT. One round trip, atomic.
const saveScript = `
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return redis.error_reply('CONFLICT') end
local next = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'version', tostring(next))
redis.call('HDEL', KEYS[1], 'adopted')
return next
`

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
// in an empty Redis) by the first operation, or by CheckSchema.
func NewStateStore(rdb *redis.Client, opts StateStoreOptions) *StateStore {
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.JournalLength == 0 {
		opts.JournalLength = 1000
	}
	return &StateStore{rdb: rdb, prefix: opts.Prefix, journalLength: opts.JournalLength, save: redis.NewScript(saveScript),
		adopt: redis.NewScript(adoptScript)}
}

// CheckSchema makes sure Redis holds presenced's schema version, writing it into an empty
// Redis. Once it succeeded it costs nothing.
func (s *StateStore) CheckSchema(ctx context.Context) error {
	if s.schemaOK.Load() {
		return nil
	}
	key := s.prefix + "schema"
	if err := s.rdb.SetNX(ctx, key, SchemaVersion, 0).Err(); err != nil {
		return fmt.Errorf("presence: write schema version: %w", err)
	}
	got, err := s.rdb.Get(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("presence: read schema version: %w", err)
	}
	if got != SchemaVersion {
		return fmt.Errorf("presence: redis key %s is %q, this presenced uses schema %s", key, got, SchemaVersion)
	}
	s.schemaOK.Store(true)
	return nil
}

func (s *StateStore) userKey(id UserID) string     { return s.prefix + "user:" + string(id) }
func (s *StateStore) profilesKey(id UserID) string { return s.userKey(id) + ":profiles" }
func (s *StateStore) journalKey(id UserID) string  { return s.userKey(id) + ":journal" }

// Load returns a user's state; found is false for a user presenced has never switched.
func (s *StateStore) Load(ctx context.Context, id UserID) (st UserState, found bool, err error) {
	if err := s.CheckSchema(ctx); err != nil {
		return UserState{}, false, err
	}
	vals, err := s.rdb.HMGet(ctx, s.userKey(id), "state", "version", "adopted").Result()
	if err != nil {
		return UserState{}, false, fmt.Errorf("presence: load state of %s: %w", id, err)
	}
	return s.decodeState(id, vals)
}

// LoadMany returns the states of many users in one round trip; users never switched are absent.
// Users whose data cannot be read are reported in the error and left out.
func (s *StateStore) LoadMany(ctx context.Context, ids []UserID) (map[UserID]UserState, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.userKey(id), "state", "version", "adopted")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence: load states: %w", err)
	}
	out := make(map[UserID]UserState, len(ids))
	var errs []error
	for i, id := range ids {
		st, found, err := s.decodeState(id, cmds[i].Val())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if found {
			out[id] = st
		}
	}
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
	return st, true, nil
}

// SaveAdopted records what the user's desired state adopted from the PBX (nil forgets it), if
// the state's version is still version; ErrConflict otherwise. A switch forgets adoptions.
func (s *StateStore) SaveAdopted(ctx context.Context, id UserID, version int64, adopted *Target) error {
	if err := s.CheckSchema(ctx); err != nil {
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
	err := s.adopt.Run(ctx, s.rdb, []string{s.userKey(id)}, strconv.FormatInt(version, 10), raw).Err()
	if err != nil {
		if strings.Contains(err.Error(), "CONFLICT") {
			return ErrConflict
		}
		return fmt.Errorf("presence: save adopted state of %s: %w", id, err)
	}
	return nil
}

// Version reads only the version of a user's state, so that state that cannot be read can be
// replaced by a compare-and-set all the same.
func (s *StateStore) Version(ctx context.Context, id UserID) (int64, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return 0, err
	}
	v, err := s.rdb.HGet(ctx, s.userKey(id), "version").Int64()
	if err != nil {
		return 0, &CorruptError{Key: s.userKey(id), Field: "version", Err: err}
	}
	return v, nil
}

// Save writes st if the stored version is still st.Version (0 for a new user) and returns the
// state with its new version; ErrConflict when another writer came first.
func (s *StateStore) Save(ctx context.Context, id UserID, st UserState) (UserState, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return st, err
	}
	st.Adopted = nil // a switch forgets what was adopted; the script deletes it
	b, err := json.Marshal(st)
	if err != nil {
		return st, fmt.Errorf("presence: encode state of %s: %w", id, err)
	}
	n, err := s.save.Run(ctx, s.rdb, []string{s.userKey(id)}, strconv.FormatInt(st.Version, 10), string(b)).Int64()
	if err != nil {
		if strings.Contains(err.Error(), "CONFLICT") {
			return st, ErrConflict
		}
		return st, fmt.Errorf("presence: save state of %s: %w", id, err)
	}
	st.Version = n
	return st, nil
}

// AppendJournal adds an entry to the user's journal and trims it; it returns the entry's ID.
func (s *StateStore) AppendJournal(ctx context.Context, id UserID, e JournalEntry) (string, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return "", err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("presence: encode journal entry of %s: %w", id, err)
	}
	jid, err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.journalKey(id), MaxLen: s.journalLength, Approx: true,
		Values: map[string]any{"entry": string(b)},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("presence: append journal of %s: %w", id, err)
	}
	return jid, nil
}

// Journal returns up to count of the user's newest journal entries, newest first. Entries that
// cannot be read are reported in the error and left out.
func (s *StateStore) Journal(ctx context.Context, id UserID, count int64) ([]JournalEntry, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return nil, err
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.journalKey(id), "+", "-", count).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: read journal of %s: %w", id, err)
	}
	out := make([]JournalEntry, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		raw, _ := m.Values["entry"].(string)
		var e JournalEntry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			errs = append(errs, &CorruptError{Key: s.journalKey(id), Field: m.ID, Err: err})
			continue
		}
		e.ID = m.ID
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// PersonalProfiles returns the user's own profiles. Profiles that cannot be read are reported
// in the error and left out.
func (s *StateStore) PersonalProfiles(ctx context.Context, id UserID) ([]*Profile, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return nil, err
	}
	all, err := s.rdb.HGetAll(ctx, s.profilesKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: read profiles of %s: %w", id, err)
	}
	return s.decodeProfiles(id, all)
}

// decodeProfiles reads the fields of a user's profiles hash, sorted; profiles that cannot be
// read are reported in the error and left out.
func (s *StateStore) decodeProfiles(id UserID, all map[string]string) ([]*Profile, error) {
	out := make([]*Profile, 0, len(all))
	var errs []error
	for pid, raw := range all {
		var p Profile
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			errs = append(errs, &CorruptError{Key: s.profilesKey(id), Field: pid, Err: err})
			continue
		}
		p.ID, p.Owner = pid, id
		out = append(out, &p)
	}
	sortProfiles(out)
	return out, errors.Join(errs...)
}

// PersonalProfilesMany returns the own profiles of many users in one round trip. Profiles that
// cannot be read are reported in the error and left out.
func (s *StateStore) PersonalProfilesMany(ctx context.Context, ids []UserID) (map[UserID][]*Profile, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.profilesKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence: read profiles: %w", err)
	}
	out := make(map[UserID][]*Profile, len(ids))
	var errs []error
	for i, id := range ids {
		all := cmds[i].Val()
		if len(all) == 0 {
			continue
		}
		ps, err := s.decodeProfiles(id, all)
		if err != nil {
			errs = append(errs, err)
		}
		out[id] = ps
	}
	return out, errors.Join(errs...)
}

// SavePersonalProfile writes (creates or replaces) one of the user's own profiles.
func (s *StateStore) SavePersonalProfile(ctx context.Context, id UserID, p *Profile) error {
	if err := s.CheckSchema(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("presence: encode profile %s of %s: %w", p.ID, id, err)
	}
	if err := s.rdb.HSet(ctx, s.profilesKey(id), p.ID, string(b)).Err(); err != nil {
		return fmt.Errorf("presence: save profile %s of %s: %w", p.ID, id, err)
	}
	return nil
}

// DeletePersonalProfile removes one of the user's own profiles; false when there was none.
func (s *StateStore) DeletePersonalProfile(ctx context.Context, id UserID, pid string) (bool, error) {
	if err := s.CheckSchema(ctx); err != nil {
		return false, err
	}
	n, err := s.rdb.HDel(ctx, s.profilesKey(id), pid).Result()
	if err != nil {
		return false, fmt.Errorf("presence: delete profile %s of %s: %w", pid, id, err)
	}
	return n > 0, nil
}
