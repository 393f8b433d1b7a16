package presence

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// changesSuffix names the Redis channel, after the store's prefix, on which every write of a
// user's state (a switch) or record (what a pass found on the PBX) is announced with the
// user's id, for the instances' live views (the web app's Server-Sent Events).
const changesSuffix = "changes"

// changesChannel is the channel the save scripts announce changes on (saveScript,
// saveRecordScript: in the same round trip as the write).
func (s *StateStore) changesChannel() string { return s.prefix + changesSuffix }

// Changes delivers the ids of the users whose state or record changes, on any instance
// sharing this Redis, until ctx ends; then the channel is closed. A reader that falls behind
// loses announcements (go-redis drops them after a while), never blocks the writers. A
// reconnect to Redis may lose the announcements made meanwhile; the subscription is renewed
// by itself, and each time it is (re)established, the first time included, Changes delivers an
// empty id: anything may have changed meanwhile, and a reader that keeps a view re-reads it
// whole.
func (s *StateStore) Changes(ctx context.Context, log *slog.Logger) <-chan UserID {
	out := make(chan UserID, 256)
	ps := s.rdb.Subscribe(ctx, s.changesChannel())
	go func() {
		// The reader hears of the end at once; closing the subscription may wait for a
		// reconnect in progress (a Redis that is down, a Sentinel failover).
		defer ps.Close()
		defer close(out)
		msgs := ps.ChannelWithSubscriptions() // *redis.Subscription on every (re)subscribe
		var dropped int
		var logged time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				msg, isMsg := m.(*redis.Message)
				if !isMsg {
					if sub, ok := m.(*redis.Subscription); ok && sub.Kind == "subscribe" {
						select { // never dropped: it stands for every announcement lost
						case out <- "":
						case <-ctx.Done():
							return
						}
					}
					continue
				}
				select {
				case out <- UserID(msg.Payload):
				default:
					// A burst (a full check writes every user's record) may outrun the reader:
					// logged once a minute at most, with the count.
					if dropped++; log != nil && time.Since(logged) > time.Minute {
						log.Warn("change announcements dropped: the reader is behind", "dropped", dropped)
						dropped, logged = 0, time.Now()
					}
				}
			}
		}
	}()
	return out
}
