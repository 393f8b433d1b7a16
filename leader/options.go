package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults applied by New to zero fields of Options.
const (
	// DefaultLease is how long a lease lasts in Redis without a renewal: the longest a standby
	// waits after the leader vanished without releasing it (kill -9, power loss).
	DefaultLease = 5 * time.Second
	// DefaultPrefix starts the keys of the lease.
	DefaultPrefix = "presenced:"
	// MinLease is the shortest lease New accepts: a renewal is a round trip to Redis, and
	// anything shorter leaves no room for one.
	MinLease = 100 * time.Millisecond
	// maxNameLength bounds Options.Asterisk and Options.Instance.
	maxNameLength = 200
)

// Options configures an Elector.
type Options struct {
	// Redis holds the lease; required. Every instance that may lead the same Asterisk must use
	// the same Redis and database. A Sentinel (failover) client serves as well as a plain one.
	Redis redis.Cmdable
	// Confirm, when set, carries the writes that take and renew the lease, so that they
	// survive a failover of Redis: it calls write with the client, or a connection of it, to
	// run them on (the same Redis as Redis), and when write returns nil it returns nil only
	// once what write wrote is safe (presence.Redis.Confirmed: WAIT until enough replicas hold
	// it); it returns write's own error as it is, without waiting. An acquisition or renewal
	// that Confirm fails counts as failed: the instance does not lead on a lease it took
	// unconfirmed (it releases it at once), and a renewal not confirmed does not extend the
	// leader's deadline. op says what is written. Nil writes to Redis directly: enough for a
	// Redis without replicas; with Sentinel see "Across a failover of Redis" in the package
	// documentation.
	Confirm func(ctx context.Context, op string, write func(c redis.Cmdable) error) error
	// Asterisk names the Asterisk the lease guards; required. The lease key is
	// <Prefix>leader:<Asterisk>, so one Redis can serve the instances of several PBXes. Letters,
	// digits and punctuation, no spaces, at most 200 bytes.
	Asterisk string
	// Prefix starts the keys of the lease; empty means DefaultPrefix.
	Prefix string
	// Instance names this instance in the lease (and in logs and Leader's answer); required.
	// Two instances with the same name still never share a lease: the lease's value carries the
	// term's epoch too. No spaces, at most 200 bytes.
	Instance string

	// Lease is how long the lease lasts in Redis after each renewal; zero means DefaultLease.
	// A leader that vanishes without releasing it is replaced between Lease − RenewInterval and
	// Lease later.
	Lease time.Duration
	// RenewInterval is how often the leader renews its lease, and how often a standby tries to
	// take it; zero means Lease/3. It may be at most (Lease − ClockDriftMargin)/2, so that one
	// failed renewal does not cost the lease. After a failed renewal the next one is tried
	// after RenewInterval/4.
	RenewInterval time.Duration
	// ClockDriftMargin is how much earlier than Redis a leader considers its lease over: its
	// local deadline is the start of its last successful renewal + Lease − ClockDriftMargin.
	// It covers a local clock slower than Redis's, and the time between a Leading check and
	// the write it allows reaching Asterisk. Zero means Lease/10; at most Lease/2.
	ClockDriftMargin time.Duration

	// OnStartedLeading, when set, is called in a goroutine of its own when this instance starts
	// leading, with the term's epoch and a context cancelled when the term ends. It may return
	// at once or run until the context ends; the Elector waits for it to return before it calls
	// OnStoppedLeading, campaigns again or releases the lease, so a term's work never overlaps
	// the next term's, here or (after a release) on another instance.
	OnStartedLeading func(ctx context.Context, epoch int64)
	// OnStoppedLeading, when set, is called once OnStartedLeading returned after a term ended.
	OnStoppedLeading func()

	// Logger receives the changes of leadership at Info and Redis failures at Warn (once
	// per change, not at every attempt). Nil discards them.
	Logger *slog.Logger
	// Registerer receives presenced_leader, presenced_leader_changes_total,
	// presenced_leader_lease_renew_failures_total and presenced_leader_epoch. Nil registers none.
	Registerer prometheus.Registerer
}

// fill replaces zero fields by their defaults.
func (o *Options) fill() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.RenewInterval == 0 {
		o.RenewInterval = o.Lease / 3
	}
	if o.ClockDriftMargin == 0 {
		o.ClockDriftMargin = o.Lease / 10
	}
}

// validate checks filled-in Options; the error names the field.
func (o Options) validate() error {
	if o.Redis == nil {
		return errors.New("leader: Options.Redis is required")
	}
	if err := checkName("Asterisk", o.Asterisk); err != nil {
		return err
	}
	if err := checkName("Instance", o.Instance); err != nil {
		return err
	}
	if err := checkName("Prefix", o.Prefix); err != nil {
		return err
	}
	switch {
	case o.Lease < MinLease:
		return fmt.Errorf("leader: Options.Lease must be at least %v, got %v", MinLease, o.Lease)
	case o.ClockDriftMargin <= 0:
		return fmt.Errorf("leader: Options.ClockDriftMargin must be positive, got %v", o.ClockDriftMargin)
	case o.ClockDriftMargin > o.Lease/2:
		return fmt.Errorf("leader: Options.ClockDriftMargin must be at most half of Options.Lease (%v), got %v",
			o.Lease/2, o.ClockDriftMargin)
	case o.RenewInterval <= 0:
		return fmt.Errorf("leader: Options.RenewInterval must be positive, got %v", o.RenewInterval)
	case o.RenewInterval > (o.Lease-o.ClockDriftMargin)/2:
		return fmt.Errorf("leader: Options.RenewInterval must be at most half of Options.Lease − Options.ClockDriftMargin "+
			"(%v), so that one failed renewal does not cost the lease; got %v", (o.Lease-o.ClockDriftMargin)/2, o.RenewInterval)
	}
	return nil
}

// checkName accepts a non-empty name of at most maxNameLength bytes without spaces or
// control characters: it goes into Redis keys and the lease's "<instance> <epoch>" value.
func checkName(field, s string) error {
	if s == "" {
		return fmt.Errorf("leader: Options.%s is required", field)
	}
	if len(s) > maxNameLength {
		return fmt.Errorf("leader: Options.%s must be at most %d bytes, got %d", field, maxNameLength, len(s))
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("leader: Options.%s %q must not contain spaces or control characters", field, s)
		}
	}
	return nil
}
