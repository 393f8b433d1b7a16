package presence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// ErrUnconfirmed is what an *UnavailableError wraps when a write reached the master but not
// enough replicas confirmed it in time (StoreOptions.WaitReplicas). Whether it survives is
// unknown: a failover now loses it, no failover keeps it.
var ErrUnconfirmed = errors.New("write not confirmed by the replicas")

// waitReplicas is how the StateStore makes the writes it acknowledges survive a failover.
//
// Redis replicates asynchronously: the master answers a write before any replica has it, and
// a replica promoted by Sentinel lacks whatever had not reached it, so a switch presenced
// acknowledged can vanish. WAIT <n> <timeout>, sent on the connection that wrote, blocks
// until n replicas have acknowledged every write of that connection, or the timeout; so a
// write presenced acknowledges is on n replicas, and Sentinel promotes the replica with the
// most data. The master's own min-replicas-to-write is no substitute: it refuses writes only
// while fewer replicas have pinged within min-replicas-max-lag seconds (1 s at best), so a
// write answered in that window is still lost; it does stop an old master cut off from its
// replicas from taking writes at all, which suits other clients, so it is worth setting
// besides.
type waitReplicas struct {
	n           int
	timeout     time.Duration
	unconfirmed prometheus.Counter // nil without a registerer
}

// newWaitReplicas returns nil for n == 0: the writes are not waited for.
func newWaitReplicas(n int, timeout time.Duration, reg prometheus.Registerer) *waitReplicas {
	if n <= 0 {
		return nil
	}
	w := &waitReplicas{n: n, timeout: timeout}
	if reg != nil {
		w.unconfirmed = promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "presenced_store_unconfirmed_writes_total",
			Help: "State-store writes that fewer replicas than redis.sentinel.wait_replicas confirmed in time; each failed its request (503).",
		})
	}
	return w
}

// confirmed runs write (the commands of one write presenced acknowledges) and, when the store
// waits for replicas, sends WAIT on the same connection. It returns write's error as it is, so
// that the caller tells a script's reply (CONFLICT) from a failure and describes it; WAIT's own
// failure comes back for the caller to describe too. A write that too few replicas confirmed is
// an *UnavailableError wrapping ErrUnconfirmed (503): the caller must not acknowledge it.
//
// write gets the client, or the connection WAIT will be sent on; it runs its commands there
// (a script's Run included) and returns their error. op says what the write is, as for fail
// ("save state of alice").
func (s *StateStore) confirmed(ctx context.Context, op string, write func(c redis.Cmdable) error) error {
	if s.wait == nil {
		return write(s.rdb)
	}
	cn := s.rdb.Conn()
	defer cn.Close()
	if err := write(cn); err != nil {
		return err
	}
	// go-redis gives WAIT's reply the wait and 10 s more; a master that hangs meanwhile is
	// given up after the wait and one read timeout, as any other command.
	wctx, cancel := context.WithTimeout(ctx, s.wait.timeout+s.rdb.Options().ReadTimeout)
	defer cancel()
	got, err := cn.Wait(wctx, s.wait.n, s.wait.timeout).Result()
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return &UnavailableError{Reason: "timed out", Op: "presence: " + op, Err: err}
	}
	if err != nil {
		return err
	}
	if got < int64(s.wait.n) {
		if s.wait.unconfirmed != nil {
			s.wait.unconfirmed.Inc()
		}
		return &UnavailableError{
			Reason: fmt.Sprintf("the write was not confirmed by %d replica(s) within %s, so it could be lost if Redis fails over (it may also stay: repeat the request)",
				s.wait.n, s.wait.timeout),
			Op:  "presence: " + op,
			Err: fmt.Errorf("%w (WAIT %d: %d confirmed)", ErrUnconfirmed, s.wait.n, got),
		}
	}
	return nil
}
