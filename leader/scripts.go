package leader

import "github.com/redis/go-redis/v9"

// The lease lives in three keys, for an Asterisk named A and the default prefix:
//
//	presenced:leader:A         "<instance> <epoch>", with a TTL of the lease: who holds it
//	presenced:leader:A:epoch   the last epoch handed out: each term's fencing token
//	presenced:leader:A:until   Redis's clock, in ms since 1970, when the last lease granted
//	                           ends at the latest (raised by every acquire and renewal, lowered
//	                           by a release)
//
// A term's epoch is one more than the last (INCR), raised to Redis's clock in ms when that is
// higher: so epochs keep increasing even when Redis lost the counter (restarted without its
// data, or a failover to a replica that had not got the last INCR), as long as Redis's clock
// does not go back. Two terms never share an epoch, whatever their instances are named.
//
// A lease key that vanished before its time (deleted by hand, lost by a failover to a replica
// that had not got it) does not let a new leader start while the old one may still lead: the
// new holder waits until :until. Without :epoch (a new store, or one that lost its data) the
// history is unknown, and the new holder waits one whole lease.
//
// The scripts read Redis's clock (TIME) and compare it only with times Redis wrote, so no
// instance's clock is compared with another's.

// acquireScript takes the lease if nobody holds it.
//
// KEYS: lease, epoch, until. ARGV: instance, lease (ms).
// Returns {1, value, epoch, wait ms} when taken: the holder may lead after wait ms. Returns
// {0, value, pttl ms} when another holds it (pttl −1: the key has no expiry).
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  return {0, cur, redis.call('PTTL', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[3]))
local wait = lease
if redis.call('EXISTS', KEYS[2]) == 1 and last then
  wait = math.max(0, last - now)
end
local epoch = redis.call('INCR', KEYS[2])
if epoch < now then
  epoch = now
  redis.call('SET', KEYS[2], string.format('%d', now))
end
local value = ARGV[1] .. ' ' .. epoch
redis.call('SET', KEYS[1], value, 'PX', lease)
redis.call('SET', KEYS[3], string.format('%d', math.max(last or 0, now + lease)))
return {1, value, epoch, wait}
`)

// renewScript extends the lease if KEYS[1] still holds ARGV[1].
//
// KEYS: lease, until. ARGV: value, lease (ms).
// Returns {1} when renewed, {0, what the key holds (empty when missing)} when not.
var renewScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then
  return {0, cur or ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
local last = tonumber(redis.call('GET', KEYS[2]))
if not last or last < now + lease then
  redis.call('SET', KEYS[2], string.format('%d', now + lease))
end
return {1}
`)

// releaseScript deletes the lease if KEYS[1] still holds ARGV[1]. With ARGV[2] = '1' (the
// holder's wait was over: every earlier lease had ended) it also sets :until to now, so that
// the next holder leads at once; otherwise :until stays, and the next holder waits as this one
// did.
//
// KEYS: lease, until. ARGV: value, '1' or '0'.
// Returns 1 when released, 0 when the key held something else.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
end
return 1
`)
