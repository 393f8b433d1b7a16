package lab

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisClient is a client of the lab Redis, closed when the test ends; mod, when not nil,
// adjusts its options (a PoolSize...).
func (e *Env) RedisClient(t testing.TB, mod func(*redis.Options)) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(e.RedisURL)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if mod != nil {
		mod(opt)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
