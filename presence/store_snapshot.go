package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
)

// snapshotVersion is the format of the embedded store's snapshot file.
const snapshotVersion = 1

// snapshotFile is what the embedded store writes to disk: every key with its type, value and
// remaining time to live.
type snapshotFile struct {
	Version int           `json:"version"`
	SavedAt time.Time     `json:"saved_at"`
	Keys    []snapshotKey `json:"keys"`
}

type snapshotKey struct {
	Key    string            `json:"key"`
	Type   string            `json:"type"`
	TTLms  int64             `json:"ttl_ms,omitempty"`
	String *string           `json:"string,omitempty"`
	Hash   map[string]string `json:"hash,omitempty"`
	List   []string          `json:"list,omitempty"`
	Set    []string          `json:"set,omitempty"`
	ZSet   []redis.Z         `json:"zset,omitempty"`
	Stream []snapshotEntry   `json:"stream,omitempty"`
}

type snapshotEntry struct {
	ID     string         `json:"id"`
	Values map[string]any `json:"values"`
}

// snapshotter saves and restores the embedded store through ordinary Redis commands, so it
// needs nothing from miniredis but what a Redis server offers.
type snapshotter struct {
	rdb  *redis.Client
	path string
}

func (s *snapshotter) save(ctx context.Context) error {
	snap := snapshotFile{Version: snapshotVersion, SavedAt: time.Now().UTC(), Keys: []snapshotKey{}}
	iter := s.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k, err := s.dumpKey(ctx, iter.Val())
		if err != nil {
			return fmt.Errorf("store: snapshot %s: %w", s.path, err)
		}
		if k != nil {
			snap.Keys = append(snap.Keys, *k)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("store: snapshot %s: scan: %w", s.path, err)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("store: snapshot %s: encode: %w", s.path, err)
	}
	if err := writeFileAtomic(s.path, b); err != nil {
		return fmt.Errorf("store: snapshot %s: %w", s.path, err)
	}
	return nil
}

// dumpKey reads one key; nil when it vanished meanwhile.
func (s *snapshotter) dumpKey(ctx context.Context, key string) (*snapshotKey, error) {
	typ, err := s.rdb.Type(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("type %q: %w", key, err)
	}
	k := &snapshotKey{Key: key, Type: typ}
	switch typ {
	case "none":
		return nil, nil
	case "string":
		v, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get %q: %w", key, err)
		}
		k.String = &v
	case "hash":
		k.Hash, err = s.rdb.HGetAll(ctx, key).Result()
	case "list":
		k.List, err = s.rdb.LRange(ctx, key, 0, -1).Result()
	case "set":
		k.Set, err = s.rdb.SMembers(ctx, key).Result()
	case "zset":
		k.ZSet, err = s.rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "stream":
		var msgs []redis.XMessage
		msgs, err = s.rdb.XRange(ctx, key, "-", "+").Result()
		for _, m := range msgs {
			k.Stream = append(k.Stream, snapshotEntry{ID: m.ID, Values: m.Values})
		}
	default:
		return nil, fmt.Errorf("key %q has type %q, which the snapshot cannot hold", key, typ)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %q: %w", typ, key, err)
	}
	ttl, err := s.rdb.PTTL(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("pttl %q: %w", key, err)
	}
	if ttl > 0 {
		k.TTLms = ttl.Milliseconds()
	}
	return k, nil
}

// restore loads the snapshot file into the (empty) embedded store. A missing file is an empty
// store; a file that cannot be read is an error, so a damaged snapshot is never overwritten.
func (s *snapshotter) restore(ctx context.Context) (int, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var snap snapshotFile
	if err := json.Unmarshal(b, &snap); err != nil {
		return 0, fmt.Errorf("decode: %w (move the file away to start empty)", err)
	}
	if snap.Version != snapshotVersion {
		return 0, fmt.Errorf("snapshot version %d, this presenced reads version %d", snap.Version, snapshotVersion)
	}
	for i, k := range snap.Keys {
		if err := s.restoreKey(ctx, k); err != nil {
			return i, fmt.Errorf("key %q: %w", k.Key, err)
		}
	}
	return len(snap.Keys), nil
}

func (s *snapshotter) restoreKey(ctx context.Context, k snapshotKey) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, k.Key)
		switch k.Type {
		case "string":
			if k.String == nil {
				return errors.New("string without value")
			}
			p.Set(ctx, k.Key, *k.String, 0)
		case "hash":
			p.HSet(ctx, k.Key, k.Hash)
		case "list":
			p.RPush(ctx, k.Key, toAny(k.List)...)
		case "set":
			p.SAdd(ctx, k.Key, toAny(k.Set)...)
		case "zset":
			p.ZAdd(ctx, k.Key, k.ZSet...)
		case "stream":
			for _, e := range k.Stream {
				p.XAdd(ctx, &redis.XAddArgs{Stream: k.Key, ID: e.ID, Values: e.Values})
			}
		default:
			return fmt.Errorf("unknown type %q", k.Type)
		}
		if k.TTLms > 0 {
			p.PExpire(ctx, k.Key, time.Duration(k.TTLms)*time.Millisecond)
		}
		return nil
	})
	return err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// writeFileAtomic replaces path with b so that a crash leaves either the old or the new file.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
