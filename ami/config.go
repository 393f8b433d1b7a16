package ami

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultEvents       = "system,call,agent,user"
	DefaultDialTimeout  = 5 * time.Second
	DefaultPingInterval = 10 * time.Second
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
)

// Config configures a [Client].
type Config struct {
	// Addr is the AMI address, "host:port".
	Addr string
	// Username and Secret are the manager.conf user and its secret.
	Username, Secret string

	// Events is the Login "Events:" value: "on" or a comma-separated list
	// of classes. "" means DefaultEvents. It must let "system" through,
	// because the FullyBooted event (class system) is what triggers
	// OnReady; the AMI user also needs read=system in manager.conf.
	Events string

	// DialTimeout bounds dialling, reading the banner and logging in.
	// 0 means DefaultDialTimeout.
	DialTimeout time.Duration

	// PingInterval is the keepalive period: a Ping action is sent every
	// interval, and two Pings in a row that go unanswered while Asterisk
	// sends nothing else on the session either close the connection, which
	// is then re-established. A Ping that waits behind slow actions while
	// their replies come is a busy session, not a missed Ping. 0 means
	// DefaultPingInterval.
	PingInterval time.Duration

	// BackoffMin and BackoffMax bound the exponential backoff (with
	// jitter) between connection attempts. 0 means DefaultBackoffMin and
	// DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// Dial opens the TCP connection. nil means a net.Dialer. Tests inject
	// faults here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// OnReady, if set, runs after every (re)connect once Asterisk reports
	// FullyBooted, on its own goroutine. Its ctx is cancelled when that
	// connection ends or Run returns. A typical OnReady re-lists the
	// state it mirrors (QueueStatus, DeviceStateList, DBGetTree, ...).
	OnReady func(ctx context.Context)
	// Gate, when set, is asked right before an action is written to the
	// socket (Login, Challenge, Ping and Logoff excepted); an error keeps
	// the action off the wire and the call returns it wrapped in ErrGated.
	// presenced gates its writing session on holding the leadership, so
	// that an instance that lost it stops writing to Asterisk before
	// another one can start. It must be quick and must not block.
	Gate func() error

	// Logger receives state changes at Info, problems at Warn and
	// per-action detail at Debug. nil discards.
	Logger *slog.Logger

	// Registerer receives the client's metrics (presenced_ami_*). nil
	// means no metrics.
	Registerer prometheus.Registerer
}

// withDefaults validates c and fills zero fields. Errors name the field.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, fmt.Errorf("ami: Config.Addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("ami: Config.Addr %q: %w", c.Addr, err)
	}
	if c.Username == "" {
		return c, fmt.Errorf("ami: Config.Username is required")
	}
	for name, v := range map[string]string{"Username": c.Username, "Secret": c.Secret, "Events": c.Events} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return c, fmt.Errorf("ami: Config.%s contains CR, LF or NUL", name)
		}
	}
	if c.Events == "" {
		c.Events = DefaultEvents
	}
	if !eventsIncludeSystem(c.Events) {
		return c, fmt.Errorf("ami: Config.Events %q must include \"system\" (or be \"on\"): FullyBooted is a system event", c.Events)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &c.DialTimeout, DefaultDialTimeout},
		{"PingInterval", &c.PingInterval, DefaultPingInterval},
		{"BackoffMin", &c.BackoffMin, DefaultBackoffMin},
		{"BackoffMax", &c.BackoffMax, DefaultBackoffMax},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return c, fmt.Errorf("ami: Config.%s must not be negative, got %v", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.BackoffMax < c.BackoffMin {
		return c, fmt.Errorf("ami: Config.BackoffMax (%v) must not be less than BackoffMin (%v)", c.BackoffMax, c.BackoffMin)
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func eventsIncludeSystem(events string) bool {
	for _, f := range strings.Split(events, ",") {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "system", "on", "all", "yes", "true":
			return true
		}
	}
	return false
}
