package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record is what the engine keeps about a user besides their desired state: what its last look
// at the user's PBX state found and left there, and when it looks again after a failure. It is
// in Redis (field record of presenced:user:<id>, with the sets below) so that every instance
// reports the same status and metrics, and a new leader knows who needs a repair; only the
// leader writes it.
type Record struct {
	// Checked is when the engine last compared the user's PBX state with the desired state,
	// and Version the state version it compiled.
	Checked time.Time `json:"checked"`
	Version int64     `json:"version"`
	// InSync is false while something failed, was only reported, or waits for a call.
	InSync bool `json:"in_sync"`
	// Reported is drift left on the PBX under the report policy.
	Reported []Op `json:"reported,omitempty"`
	// Deferred are queue changes waiting for the user's call to end (on the device OnCall).
	Deferred []Op   `json:"deferred,omitempty"`
	OnCall   string `json:"on_call,omitempty"`
	// Failed are the operations that failed, with their errors.
	Failed []Outcome `json:"failed,omitempty"`
	// Phones are the states of the user's devices as the check knew them (for who is on a call
	// and which device will not ring, the same on every instance).
	Phones map[string]string `json:"phones,omitempty"`
	// Attempts counts the checks in a row that failed; RetryAt is when the next one is due.
	Attempts int        `json:"attempts,omitempty"`
	RetryAt  *time.Time `json:"retry_at,omitempty"`
	// DND is the DND the PBX last showed in step with the desired state (nil: not known): under
	// the drift policy switch only a change away from it is the DND key of a phone (dndkey.go).
	DND *bool `json:"dnd,omitempty"`
}

// DeviceState implements DeviceStates over the phones the record knows.
func (r *Record) DeviceState(device string) string {
	if r == nil {
		return ""
	}
	return r.Phones[device]
}

// settled reports whether the record holds nothing the engine must come back for.
func (r *Record) settled() bool {
	return r == nil || (r.InSync && len(r.Reported)+len(r.Deferred)+len(r.Failed) == 0 && r.RetryAt == nil)
}

// The keys of the records' indexes: users whose last check left them out of sync, and users
// with a retry due (scored by its time, in Unix milliseconds).
func (s *StateStore) outOfSyncKey() string { return s.prefix + "outofsync" }
func (s *StateStore) retriesKey() string   { return s.prefix + "retries" }

// saveRecordScript writes a user's record and keeps the indexes in step, appends an entry to
// the user's journal with it, and announces the change. KEYS: the user's hash, the out-of-sync
// set, the retries sorted set, the user's journal. ARGV: the record (JSON), the user id, "1"
// when in sync, the retry time in Unix milliseconds ("" for none), the journal's length bound,
// the journal entry (JSON; "" for none), the channel the change is announced on (changes.go).
const saveRecordScript = `
redis.call('HSET', KEYS[1], 'record', ARGV[1])
if ARGV[3] == '1' then redis.call('SREM', KEYS[2], ARGV[2]) else redis.call('SADD', KEYS[2], ARGV[2]) end
if ARGV[4] == '' then redis.call('ZREM', KEYS[3], ARGV[2]) else redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2]) end
local id = ''
if ARGV[6] ~= '' then id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'entry', ARGV[6]) end
redis.call('PUBLISH', ARGV[7], ARGV[2])
return id
`

// SaveRecord writes the user's record.
func (s *StateStore) SaveRecord(ctx context.Context, id UserID, r Record) error {
	return s.SaveRecordJournal(ctx, id, r, nil)
}

// SaveRecordJournal writes the user's record and, when e is not nil, appends e to the user's
// journal, in one round trip: the end of every pass over a user. With an entry it is
// acknowledged like AppendJournal (through Redis.Confirmed).
func (s *StateStore) SaveRecordJournal(ctx context.Context, id UserID, r Record, e *JournalEntry) error {
	if err := s.EnsureSchema(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("presence: encode record of %s: %w", id, err)
	}
	var entry []byte
	if e != nil {
		if entry, err = json.Marshal(e); err != nil {
			return fmt.Errorf("presence: encode journal entry of %s: %w", id, err)
		}
	}
	inSync, retry := "0", ""
	if r.InSync {
		inSync = "1"
	}
	if r.RetryAt != nil {
		retry = strconv.FormatInt(r.RetryAt.UnixMilli(), 10)
	}
	key := s.userKey(id)
	keys := []string{key, s.outOfSyncKey(), s.retriesKey(), s.journalKey(id)}
	args := []any{string(b), string(id), inSync, retry, strconv.FormatInt(s.journalLength, 10), string(entry), s.changesChannel()}
	op := "save record of " + string(id)
	if e == nil {
		err = s.runShared(ctx, s.saveRecord, keys, args...).Err()
	} else {
		op = "save record and journal of " + string(id)
		err = s.runAcknowledged(ctx, op, s.saveRecord, keys, args...).Err()
	}
	if fenced(err) {
		return ErrFenced
	}
	if err != nil {
		return s.fail(err, op, key)
	}
	s.ok()
	return nil
}

// decodeRecord reads the record field of a user's hash; an unreadable one is reported as a
// CorruptError (the state beside it is still readable).
func (s *StateStore) decodeRecord(id UserID, raw any) (*Record, error) {
	str, _ := raw.(string)
	if str == "" {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal([]byte(str), &r); err != nil {
		return nil, &CorruptError{Key: s.userKey(id), Field: "record", Err: err}
	}
	return &r, nil
}

// RecordCounts are the sizes of the records' indexes: how many users are out of sync, and how
// many wait for a retry. Every instance reads the same.
func (s *StateStore) RecordCounts(ctx context.Context) (outOfSync, retries int64, err error) {
	var sc *redis.IntCmd
	var zc *redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		sc = p.SCard(ctx, s.outOfSyncKey())
		zc = p.ZCard(ctx, s.retriesKey())
		return nil
	})
	if err != nil {
		return 0, 0, s.fail(err, "count records", s.outOfSyncKey())
	}
	s.ok()
	return sc.Val(), zc.Val(), nil
}
