package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisOptions configures the connection to the state store's Redis (OpenRedis).
type RedisOptions struct {
	// URL is a redis:// or rediss:// URL. Empty (and no Sentinel) means the embedded in-process
	// store.
	URL string
	// Sentinel, when set, finds the Redis master through Redis Sentinel and follows it when the
	// sentinels fail it over; URL must then be empty.
	Sentinel *SentinelOptions
	// Username and Password, when set, override the URL's (so the password can come from a
	// file); with Sentinel they are the master's (and its replicas') credentials.
	Username, Password string
	// WaitReplicas is how many replicas must hold each write presenced acknowledges (a switch's
	// state and journal entry, a personal profile) before it is acknowledged: Redis WAIT, bounded
	// by WaitTimeout (zero means 1 s). A write not confirmed in time fails with an
	// *UnavailableError (see Redis.Confirmed). Zero does not wait; it needs a Redis server.
	WaitReplicas int
	WaitTimeout  time.Duration
	// DialTimeout, ReadTimeout and WriteTimeout bound every Redis operation. Zero means 2 s, 1 s, 1 s.
	// A failed command is retried once (unless the URL sets max_retries), on a new
	// connection when its connection broke.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// SnapshotPath is where the embedded store keeps its data across restarts. Empty means
	// the embedded store is not persisted.
	SnapshotPath string
	// SnapshotInterval is how often the embedded store is written to SnapshotPath. Zero means 10 s.
	SnapshotInterval time.Duration
	// SnapshotTimeout bounds writing one periodic snapshot. Zero means SnapshotInterval. (The
	// last one, in Close, is bounded by Close's context.)
	SnapshotTimeout time.Duration
	// Logger receives the store's messages. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the store's metrics. Nil registers none.
	Registerer prometheus.Registerer
}

// SentinelOptions says how to find the master through Redis Sentinel.
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor the master by.
	MasterName string
	// Addresses are host:port of sentinels; one that answers is enough (it names the others).
	Addresses []string
	// Username and Password authenticate to the sentinels (their requirepass, or an ACL user);
	// empty when they need none.
	Username, Password string
	// DB is the database number on the master.
	DB int
}

// Redis is the connection to the Redis the state store lives in: a real Redis (by URL, or
// found through Sentinel), or the embedded one with its snapshots. It is the connection, not
// the layout of the keys: the StateStore made from it (StateStore) keeps the users' states,
// records and journals; other packages keep their own keys through Client, and acknowledge
// their writes through Confirmed.
type Redis struct {
	rdb      *redis.Client
	embedded *miniredis.Miniredis
	opts     RedisOptions
	log      *slog.Logger

	stop     context.CancelFunc // ends the loops, and abandons a periodic snapshot in progress
	stopped  context.Context
	loops    sync.WaitGroup // the embedded store's clock and snapshots
	closeMu  sync.Mutex
	closed   bool
	snapshot *snapshotter

	// states is the StateStore made by StateStore, whose schema every new connection checks.
	states atomic.Pointer[StateStore]
	// wait makes acknowledged writes wait for replicas (Confirmed); nil when they do not.
	wait *waitReplicas
}

// OpenRedis connects to Redis, or starts the embedded store (restoring its snapshot) when
// opts.URL is empty. It does not wait for a real Redis to answer: Ping tells whether it does.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = time.Second
	}
	if opts.SnapshotInterval == 0 {
		opts.SnapshotInterval = 10 * time.Second
	}
	if opts.SnapshotTimeout == 0 {
		opts.SnapshotTimeout = opts.SnapshotInterval
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = time.Second
	}
	switch {
	case opts.WaitReplicas < 0 || opts.WaitTimeout < 0:
		return nil, errors.New("store: WaitReplicas and WaitTimeout must not be negative")
	case opts.WaitReplicas > 0 && opts.URL == "" && opts.Sentinel == nil:
		return nil, errors.New("store: WaitReplicas needs a Redis server with replicas, not the embedded store")
	case opts.Sentinel != nil && opts.URL != "":
		return nil, errors.New("store: set either URL or Sentinel, not both")
	case opts.Sentinel != nil && opts.Sentinel.MasterName == "":
		return nil, errors.New("store: Sentinel.MasterName is empty")
	case opts.Sentinel != nil && len(opts.Sentinel.Addresses) == 0:
		return nil, errors.New("store: Sentinel.Addresses is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Redis{opts: opts, log: log, wait: newWaitReplicas(opts.WaitReplicas, opts.WaitTimeout, opts.Registerer)}
	s.stopped, s.stop = context.WithCancel(context.Background())

	var ropts *redis.Options
	switch {
	case opts.Sentinel != nil:
		s.rdb = newFailoverClient(opts)
		// The schema check goes on the client's own options, not FailoverOptions.OnConnect:
		// go-redis hands that to its connections to the sentinels too (sentinel.go,
		// sentinelOptions), where there is no schema to read. No connection is open yet.
		s.rdb.Options().OnConnect = s.onConnect
	case opts.URL != "":
		var err error
		ropts, err = redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("store: parse redis url: %w", err)
		}
		if opts.Username != "" {
			ropts.Username = opts.Username
		}
		if opts.Password != "" {
			ropts.Password = opts.Password
		}
	default:
		s.embedded = miniredis.NewMiniRedis()
		if err := s.embedded.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("store: start embedded store: %w", err)
		}
		// Expiry follows the wall clock, as on a real Redis, a tick at a time (ttlLoop).
		s.loops.Go(s.ttlLoop)
		ropts = &redis.Options{Addr: s.embedded.Addr()}
	}
	if ropts != nil {
		ropts.DialTimeout = opts.DialTimeout
		ropts.ReadTimeout = opts.ReadTimeout
		ropts.WriteTimeout = opts.WriteTimeout
		ropts.ContextTimeoutEnabled = true
		if ropts.MaxRetries == 0 { // not set in the URL (max_retries)
			// One retry covers a pooled connection that died (Redis restarted); go-redis's
			// default of three makes a hung Redis hold a request for 4 read timeouts and more
			// before it is answered 503.
			ropts.MaxRetries = 1
		}
		ropts.OnConnect = s.onConnect
		s.rdb = redis.NewClient(ropts)
	}
	if opts.Registerer != nil {
		s.rdb.AddHook(newStoreMetrics(opts.Registerer))
	}

	if s.embedded == nil {
		return s, nil
	}
	if opts.SnapshotPath != "" {
		s.snapshot = &snapshotter{rdb: s.rdb, path: opts.SnapshotPath}
		n, err := s.snapshot.restore(ctx)
		if err != nil {
			s.stop()
			s.loops.Wait()
			s.rdb.Close()
			s.embedded.Close()
			return nil, fmt.Errorf("store: restore embedded store from %s: %w", opts.SnapshotPath, err)
		}
		log.Info("embedded store restored", "path", opts.SnapshotPath, "keys", n)
		s.loops.Go(s.snapshotLoop)
	}
	return s, nil
}

// newFailoverClient is the client of a master found through Redis Sentinel, with the same
// timeouts and single retry as a client of a URL. On each new connection it asks a sentinel
// for the master's address, and when a sentinel announces a failover (+switch-master) it
// closes its connections to the old master: the next command connects to the new one.
func newFailoverClient(opts RedisOptions) *redis.Client {
	so := opts.Sentinel
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            so.MasterName,
		SentinelAddrs:         so.Addresses,
		SentinelUsername:      so.Username,
		SentinelPassword:      so.Password,
		Username:              opts.Username,
		Password:              opts.Password,
		DB:                    so.DB,
		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
}

// Client is the client to use for reads and writes.
func (s *Redis) Client() *redis.Client { return s.rdb }

// StateStore returns the StateStore over this store. Every new connection to Redis checks its
// schema version before it is used (Redis restarted, from another data set, or a failover):
// on a mismatch the connection is refused, so no command reaches a layout this presenced does
// not understand, however the client reconnected. Make one StateStore per Redis.
//
// Its acknowledged writes wait for RedisOptions.WaitReplicas replicas (see Confirmed).
func (s *Redis) StateStore(opts StateStoreOptions) *StateStore {
	st := NewStateStore(s.rdb, opts)
	st.wait = s.wait
	s.states.Store(st)
	return st
}

// onConnect runs on every new connection before its first command.
func (s *Redis) onConnect(ctx context.Context, cn *redis.Conn) error {
	if st := s.states.Load(); st != nil {
		return st.checkConn(ctx, cn)
	}
	return nil
}

// Ping checks that the store answers.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// ttlTick is how often the embedded store's expiry follows the wall clock: keys expire up to a
// tick late. miniredis's own ClockTTL follows it on every command instead, walking and sorting
// every key each time, so that each command costs in proportion to the whole store (a snapshot
// of 3,000 keys took 5 s with it, 0.4 s without).
const ttlTick = time.Second

func (s *Redis) ttlLoop() {
	t := time.NewTicker(ttlTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.stopped.Done():
			return
		case <-t.C:
			now := time.Now()
			s.embedded.FastForward(now.Sub(last))
			last = now
		}
	}
}

func (s *Redis) snapshotLoop() {
	t := time.NewTicker(s.opts.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopped.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.stopped, s.opts.SnapshotTimeout)
			if err := s.snapshot.save(ctx); err != nil && s.stopped.Err() == nil {
				s.log.Error("embedded store snapshot failed", "path", s.opts.SnapshotPath, "err", err)
			}
			cancel()
		}
	}
}

// Close writes a last snapshot of the embedded store, bounded by ctx, and releases the
// connection. A periodic snapshot in progress is abandoned for it (the file is replaced whole
// or not at all), so the last snapshot starts at once.
func (s *Redis) Close(ctx context.Context) error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()

	s.stop()
	s.loops.Wait()
	var errs []error
	if s.snapshot != nil {
		if err := s.snapshot.save(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		errs = append(errs, fmt.Errorf("store: close: %w", err))
	}
	if s.embedded != nil {
		s.embedded.Close()
	}
	return errors.Join(errs...)
}
