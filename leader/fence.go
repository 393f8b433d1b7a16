package leader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFenced is what a fenced write returns (errors.Is) when the term it was made for is over:
// the lease key no longer holds that term's value, because the lease expired, was released or
// lost, or another instance holds it now. Nothing was written.
var ErrFenced = errors.New("leader: fenced: the lease of this write's term is no longer held")

// fencedReply is the error a fenced script answers; Redis takes its first word as the code.
const fencedReply = "FENCED the leader lease is no longer held by this term"

// Fence is what a leader's write carries to prove it is still the current term's: the store
// refuses the write (ErrFenced) unless the lease key still holds Value, checked in the same
// atomic script that writes. Value names the instance and the epoch, so a fence is refused
// from the moment the lease expired or was released, even before another instance took it;
// and once taken, the new term's value carries a higher epoch. Get it from Elector.Fence.
// The zero Fence is refused without I/O.
type Fence struct {
	// Key is the lease key.
	Key string
	// Value is what the lease key holds during the term: "<instance> <epoch>".
	Value string
	// Epoch is the term's fencing token (also in Value).
	Epoch int64
}

// FenceLua returns a Lua statement for the start of a script that writes: unless KEYS[key]
// holds ARGV[arg], the script ends with a FENCED error before it writes anything. The caller
// passes Fence.Key as KEYS[key] and Fence.Value as ARGV[arg], and turns the script's error into
// ErrFenced with AsFenced.
//
//	var save = redis.NewScript(leader.FenceLua(2, 3) + `redis.call('HSET', KEYS[1], 'state', ARGV[1]) ...`)
//	err := leader.AsFenced(save.Run(ctx, rdb, []string{userKey, f.Key}, state, version, f.Value).Err())
//
// Scripts that would rather not number the fence among their keys use NewScript.
func FenceLua(key, arg int) string {
	return fmt.Sprintf("if redis.call('GET', KEYS[%d]) ~= ARGV[%d] then return redis.error_reply('%s') end\n",
		key, arg, fencedReply)
}

// AsFenced returns an error that wraps ErrFenced when err is a fenced script's FENCED reply,
// and err unchanged otherwise (nil stays nil).
func AsFenced(err error) error {
	var rerr redis.Error
	if err == nil || errors.Is(err, ErrFenced) || !errors.As(err, &rerr) {
		return err
	}
	// Redis answers the reply as it is; the embedded store (miniredis) puts "ERR " before it.
	msg := strings.TrimPrefix(rerr.Error(), "ERR ")
	if strings.HasPrefix(msg, "FENCED") {
		return fmt.Errorf("%w (redis: %s)", ErrFenced, msg)
	}
	return err
}

// Script is a Lua script whose writes are fenced: Run checks the fence first, in the same
// atomic execution, and the script sees its own KEYS and ARGV from index 1, as if unfenced.
// Create one with NewScript (a package-level variable, like redis.NewScript).
type Script struct {
	s *redis.Script
}

// fencePrelude takes the fence off the front of KEYS and ARGV and checks it.
const fencePrelude = `local fenceKey = table.remove(KEYS, 1)
local fenceValue = table.remove(ARGV, 1)
if redis.call('GET', fenceKey) ~= fenceValue then return redis.error_reply('` + fencedReply + `') end
`

// NewScript returns src fenced. src indexes its KEYS and ARGV from 1 as usual. On a Redis
// Cluster all keys of a script, the lease key included, would have to share a hash slot;
// presenced does not use a Cluster.
func NewScript(src string) *Script {
	return &Script{s: redis.NewScript(fencePrelude + src)}
}

// Run runs the script with f checked first. The command's error wraps ErrFenced when the
// fence was refused (or f is the zero Fence: then nothing is sent).
func (s *Script) Run(ctx context.Context, c redis.Scripter, f Fence, keys []string, args ...any) *redis.Cmd {
	if f.Key == "" {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(fmt.Errorf("%w (no term)", ErrFenced))
		return cmd
	}
	fk := append(make([]string, 0, len(keys)+1), f.Key)
	fa := append(make([]any, 0, len(args)+1), f.Value)
	cmd := s.s.Run(ctx, c, append(fk, keys...), append(fa, args...)...)
	if err := cmd.Err(); err != nil {
		cmd.SetErr(AsFenced(err))
	}
	return cmd
}

var (
	fencedSet = NewScript(`
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
`)
	fencedHSet = NewScript(`return redis.call('HSET', KEYS[1], unpack(ARGV))`)
	fencedDel  = NewScript(`return redis.call('DEL', unpack(KEYS))`)
)

// Set is SET key value (with PX ttl when ttl > 0) if f is still current; errors.Is(err,
// ErrFenced) when it is not.
func (f Fence) Set(ctx context.Context, c redis.Scripter, key string, value any, ttl time.Duration) error {
	if ttl > 0 && ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	if err := fencedSet.Run(ctx, c, f, []string{key}, value, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("fenced set %s: %w", key, err)
	}
	return nil
}

// HSet is HSET key field value [field value ...] if f is still current; errors.Is(err,
// ErrFenced) when it is not.
func (f Fence) HSet(ctx context.Context, c redis.Scripter, key string, fieldValues ...any) error {
	if len(fieldValues) == 0 || len(fieldValues)%2 != 0 {
		return fmt.Errorf("fenced hset %s: want field and value pairs, got %d arguments", key, len(fieldValues))
	}
	if err := fencedHSet.Run(ctx, c, f, []string{key}, fieldValues...).Err(); err != nil {
		return fmt.Errorf("fenced hset %s: %w", key, err)
	}
	return nil
}

// Del is DEL key [key ...] if f is still current; errors.Is(err, ErrFenced) when it is not.
func (f Fence) Del(ctx context.Context, c redis.Scripter, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := fencedDel.Run(ctx, c, f, keys).Err(); err != nil {
		return fmt.Errorf("fenced del %s: %w", strings.Join(keys, " "), err)
	}
	return nil
}
