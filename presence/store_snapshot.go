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

// snapshotBatch is how many keys a snapshot reads at once: two pipelined round trips per batch
// (the keys' types, then their values and TTLs) rather than three per key.
const snapshotBatch = 1000

func (s *snapshotter) save(ctx context.Context) error {
	snap := snapshotFile{Version: snapshotVersion, SavedAt: time.Now().UTC(), Keys: []snapshotKey{}}
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, "*", snapshotBatch).Result()
		if err != nil {
			return fmt.Errorf("store: snapshot %s: scan: %w", s.path, err)
		}
		dumped, err := s.dumpKeys(ctx, keys)
		if err != nil {
			return fmt.Errorf("store: snapshot %s: %w", s.path, err)
		}
		snap.Keys = append(snap.Keys, dumped...)
		if cursor = next; cursor == 0 {
			break
		}
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

// dumpKeys reads the keys, leaving out those that vanished meanwhile.
func (s *snapshotter) dumpKeys(ctx context.Context, keys []string) ([]snapshotKey, error) {
	types := make([]*redis.StatusCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			types[i] = p.Type(ctx, key)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	values := make([]redis.Cmder, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			switch typ := types[i].Val(); typ {
			case "none":
				continue
			case "string":
				values[i] = p.Get(ctx, key)
			case "hash":
				values[i] = p.HGetAll(ctx, key)
			case "list":
				values[i] = p.LRange(ctx, key, 0, -1)
			case "set":
				values[i] = p.SMembers(ctx, key)
			case "zset":
				values[i] = p.ZRangeWithScores(ctx, key, 0, -1)
			case "stream":
				values[i] = p.XRange(ctx, key, "-", "+")
			default:
				return fmt.Errorf("key %q has type %q, which the snapshot cannot hold", key, typ)
			}
			ttls[i] = p.PTTL(ctx, key)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err // a failed command; a key that vanished (redis.Nil) is left out below
	}
	var out []snapshotKey
	for i, key := range keys {
		if values[i] == nil {
			continue
		}
		if err := values[i].Err(); errors.Is(err, redis.Nil) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read %s %q: %w", types[i].Val(), key, err)
		}
		ttl, err := ttls[i].Result()
		if err != nil {
			return nil, fmt.Errorf("pttl %q: %w", key, err)
		}
		if ttl == -2 || ttl == -2*time.Millisecond {
			continue // vanished after its type was read
		}
		k := snapshotKey{Key: key, Type: types[i].Val()}
		switch v := values[i].(type) {
		case *redis.StringCmd:
			str := v.Val()
			k.String = &str
		case *redis.MapStringStringCmd:
			k.Hash = v.Val()
		case *redis.StringSliceCmd:
			if k.Type == "list" {
				k.List = v.Val()
			} else {
				k.Set = v.Val()
			}
		case *redis.ZSliceCmd:
			k.ZSet = v.Val()
		case *redis.XMessageSliceCmd:
			for _, m := range v.Val() {
				k.Stream = append(k.Stream, snapshotEntry{ID: m.ID, Values: m.Values})
			}
		}
		if ttl > 0 {
			k.TTLms = ttl.Milliseconds()
		}
		out = append(out, k)
	}
	return out, nil
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
