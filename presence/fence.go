package presence

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// ErrFenced means a write of the engine's state was refused because this instance no longer
// holds the leadership it was made under (see Fence): another instance writes now.
var ErrFenced = errors.New("presence: write refused: this instance is no longer the leader")

// Fence makes a write conditional on the leadership it is made under: the write happens only
// if Redis key Key still holds Value (package leader's lease, whose value names the instance
// and its term), checked in the same script as the write.
type Fence struct {
	Key, Value string
}

// fencePrelude takes the fence off the end of KEYS and ARGV and refuses the script's write
// unless the fence key holds the fence value.
const fencePrelude = `local fencekey = table.remove(KEYS)
local fencevalue = table.remove(ARGV)
if redis.call('GET', fencekey) ~= fencevalue then return redis.error_reply('FENCED') end
`

// script is a write of the store's, fenced when the store has a fence.
type script struct {
	plain, fenced *redis.Script
	sources       [2]string // plain's, fenced's: what SCRIPT LOAD loads (runShared)
}

func newScript(src string) script {
	return script{plain: redis.NewScript(src), fenced: redis.NewScript(fencePrelude + src), sources: [2]string{src, fencePrelude + src}}
}

// run runs the script on c (the store's client, or the connection of a confirmed write), under
// the store's fence if it has one: refused at once (ErrFenced)
// when the store's fence says this instance does not lead, and by Redis when the lease
// changed meanwhile.
func (s *StateStore) run(ctx context.Context, c redis.Scripter, sc script, keys []string, args ...any) *redis.Cmd {
	if s.fence == nil {
		return sc.plain.Run(ctx, c, keys, args...)
	}
	f, ok := s.fence()
	if !ok {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ErrFenced)
		return cmd
	}
	return sc.fenced.Run(ctx, c, append(keys, f.Key), append(args, f.Value)...)
}

// fenced reports whether err is the refusal of a fenced write.
func fenced(err error) bool {
	return errors.Is(err, ErrFenced) || redis.HasErrorPrefix(err, "FENCED")
}
