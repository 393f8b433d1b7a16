package main

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/internal/httpserve"
	"github.com/presenced/presenced/missedcalls"
	"github.com/presenced/presenced/presence"
)

// Secret is a configuration value that never shows in logs or error messages.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue redacts the secret in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Config is presenced's whole configuration, as read from the YAML file, the environment and
// the command line, in increasing precedence.
type Config struct {
	// InstanceID names this daemon among several; it makes the Stasis application name unique.
	InstanceID      string             `mapstructure:"instance_id"`
	Log             LogConfig          `mapstructure:"log"`
	Asterisk        AsteriskConfig     `mapstructure:"asterisk"`
	Redis           RedisConfig        `mapstructure:"redis"`
	Store           StoreConfig        `mapstructure:"store"`
	HTTP            HTTPConfig         `mapstructure:"http"`
	API             APIConfig          `mapstructure:"api"`
	FeatureCodes    FeatureCodesConfig `mapstructure:"feature_codes"`
	Web             WebConfig          `mapstructure:"web"`
	ShutdownTimeout time.Duration      `mapstructure:"shutdown_timeout"` // the whole shutdown (daemon.shutdown)
	Reconcile       ReconcileConfig    `mapstructure:"reconcile"`
	Leader          LeaderConfig       `mapstructure:"leader"`
	// Users and Profiles are validated into a presence.Catalog.
	Users    []presence.User    `mapstructure:"users"`
	Profiles []presence.Profile `mapstructure:"profiles"`
	// Schedules are the system-wide schedule entries every user without their own inherits;
	// Holidays (YYYY-MM-DD) suppress them (package trigger).
	Schedules []presence.Schedule `mapstructure:"schedules"`
	Holidays  []string            `mapstructure:"holidays"`
	Triggers  TriggersConfig      `mapstructure:"triggers"`
	// UnansweredCalls switches users who let queue calls go unanswered (package missedcalls);
	// off while it names no profile.
	UnansweredCalls UnansweredCallsConfig `mapstructure:"unanswered_calls"`
	// DNDKey says where the DND key of a phone switches users under reconcile.policy.dnd
	// switch, and how often (presence.DNDKeyOptions).
	DNDKey DNDKeyConfig `mapstructure:"dnd_key"`
	// Calendar configures the calendar connector: the system-wide rules and defaults of the
	// users' calendar sources (users[].calendar; package calendar).
	Calendar CalendarConfig `mapstructure:"calendar"`
	// PersonalProfiles says what users may put into their own profiles; HotDesks are the
	// shared phones they may bind to; Limits bound what one user can make presenced keep.
	PersonalProfiles presence.PersonalRules `mapstructure:"personal_profiles"`
	HotDesks         []string               `mapstructure:"hot_desks"`
	Limits           presence.Limits        `mapstructure:"limits"`

	catalog *presence.Catalog
	// service is what systemd told presenced (Type=notify, the watchdog); set by realMain.
	service serviceManager
	// offline is set for the commands that connect to nothing (-check-config, -print-hints):
	// the connection secrets are not required and a secret file that cannot be read is not an
	// error; offlineWarnings say what a daemon would refuse. withoutAsterisk is set for those
	// that do not connect to Asterisk (-password-link): its secrets are not required.
	offline         bool
	withoutAsterisk bool
	offlineWarnings []string
	// reload reads the configuration again from where this one was read (loadConfig).
	reload func() (Config, error)
	// reloadSignals, when set, are the signals (SIGHUP) that make the daemon reload.
	reloadSignals <-chan os.Signal
	// observeFeatureCode, set by tests, sees the outcome of every feature-code call.
	observeFeatureCode func(featurecode.Outcome)
	// amiDial, set by tests, opens every AMI session's connection (nil: a net.Dialer).
	amiDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// LeaderConfig configures the election of the one instance that writes to Asterisk (package
// leader): a lease in Redis, keyed by asterisk.id.
type LeaderConfig struct {
	// Lease is how long a leader's lease lasts without a renewal: a standby takes over at most
	// this long after the leader died.
	Lease time.Duration `mapstructure:"lease"`
	// RenewInterval is how often the leader renews; ClockDriftMargin how long before its lease
	// can expire a leader that could not renew stops writing. Zero means lease/3 and lease/10.
	RenewInterval    time.Duration `mapstructure:"renew_interval"`
	ClockDriftMargin time.Duration `mapstructure:"clock_drift_margin"`
}

// ReconcileConfig configures how presenced finds drift it is not told about.
type ReconcileConfig struct {
	// Interval is how often every user's PBX state is checked (astdb changes have no events).
	Interval time.Duration `mapstructure:"interval"`
	// Policy says, per kind of state, what presenced does when the PBX differs from a user's
	// profile: enforce (put it back), report (warn in the user's status) or adopt (accept the
	// PBX's value until the user's next switch).
	Policy PolicyConfig `mapstructure:"policy"`
}

// PolicyConfig is the drift policy of every kind of state (presence.DriftKinds).
type PolicyConfig struct {
	QueueMembership presence.Policy `mapstructure:"queue_membership"`
	QueuePause      presence.Policy `mapstructure:"queue_pause"`
	QueuePenalty    presence.Policy `mapstructure:"queue_penalty"`
	AstDB           presence.Policy `mapstructure:"astdb"`
	Lamp            presence.Policy `mapstructure:"lamp"`
	Presence        presence.Policy `mapstructure:"presence"`
	Global          presence.Policy `mapstructure:"global"`
	// DND is the policy of the users' DND key and lamp; empty: they follow astdb and lamp.
	// Besides enforce, report and adopt it may be switch (the DND key of a phone switches
	// profiles: DNDKeyConfig).
	DND presence.Policy `mapstructure:"dnd"`
}

// Policies is the configuration as the engine takes it.
func (p PolicyConfig) Policies() presence.Policies {
	return presence.Policies{
		presence.DriftQueueMembership: p.QueueMembership, presence.DriftQueuePause: p.QueuePause,
		presence.DriftQueuePenalty: p.QueuePenalty, presence.DriftAstDB: p.AstDB, presence.DriftLamp: p.Lamp,
		presence.DriftPresence: p.Presence, presence.DriftGlobal: p.Global, presence.DriftDND: p.DND,
	}
}

// DNDKeyConfig is where the DND key of a phone switches users under reconcile.policy.dnd
// switch: DND on to Profile (or the user's dnd_profile), DND off back to the profile before
// (else the user's default_profile, DefaultProfile, feature_codes.default_profile); at most
// Switches of one user within Window, then Fallback (enforce or report).
type DNDKeyConfig struct {
	Profile        string          `mapstructure:"profile"`
	DefaultProfile string          `mapstructure:"default_profile"`
	Switches       int             `mapstructure:"switches"`
	Window         time.Duration   `mapstructure:"window"`
	Fallback       presence.Policy `mapstructure:"fallback"`
}

// options are the configuration as the engine takes it; defaultProfile is
// feature_codes.default_profile, for an empty default_profile.
func (c DNDKeyConfig) options(defaultProfile string) presence.DNDKeyOptions {
	return presence.DNDKeyOptions{Profile: c.Profile, DefaultProfile: cmp.Or(c.DefaultProfile, defaultProfile),
		Switches: c.Switches, Window: c.Window, Fallback: c.Fallback}
}

// APIConfig configures the REST API.
type APIConfig struct {
	// AdminToken may act on every user; or AdminTokenFile names a file holding it, or
	// AdminTokenHash is an argon2id or bcrypt hash of it (presented with Basic auth as user
	// "admin"). At most one of the three; none disables admin access.
	AdminToken     Secret `mapstructure:"admin_token"`
	AdminTokenFile string `mapstructure:"admin_token_file"`
	AdminTokenHash string `mapstructure:"admin_token_hash"`
	MaxBodyBytes   int64  `mapstructure:"max_body_bytes"`
	// Throttle blocks client addresses with too many failed authentications.
	Throttle ThrottleConfig `mapstructure:"throttle"`
	// TrustedProxies are the reverse proxies (addresses or CIDRs) whose X-Forwarded-For names
	// the client; without them the TCP peer is the client.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// ThrottleConfig says when a client address is blocked (internal/throttle): Failures failed
// authentications within Window block it for Block. MaxAddresses bounds the addresses counted
// in memory while Redis is unreachable.
type ThrottleConfig struct {
	Failures     int           `mapstructure:"failures"`
	Window       time.Duration `mapstructure:"window"`
	Block        time.Duration `mapstructure:"block"`
	MaxAddresses int           `mapstructure:"max_addresses"`
}

// FeatureCodesConfig configures the *55 feature codes (package ari/featurecode).
type FeatureCodesConfig struct {
	// DefaultProfile is where dialing the active profile's number returns to, for users
	// without a default_profile of their own.
	DefaultProfile string `mapstructure:"default_profile"`
	// AlwaysPIN asks users who have a PIN for it also on their own phones.
	AlwaysPIN bool `mapstructure:"always_pin"`
	// PINAttempts wrong PINs lock a user's feature codes for Lockout.
	PINAttempts int           `mapstructure:"pin_attempts"`
	Lockout     time.Duration `mapstructure:"lockout"`
	// FirstDigitTimeout and DigitTimeout bound the wait for the first and each further digit.
	FirstDigitTimeout time.Duration `mapstructure:"first_digit_timeout"`
	DigitTimeout      time.Duration `mapstructure:"digit_timeout"`
	// TrustedContexts are the dialplan contexts in which a call that is no user's device is
	// identified by its caller ID number without a PIN (never Local channels: forwards, queue
	// calls). Empty: only a user's own devices switch without a PIN.
	TrustedContexts []string `mapstructure:"trusted_contexts"`
}

// WebConfig configures the web app's sign-in (packages web and account).
type WebConfig struct {
	// SessionIdle ends a session not used for that long; SessionMax one that old.
	SessionIdle time.Duration `mapstructure:"session_idle"`
	SessionMax  time.Duration `mapstructure:"session_max"`
	// PasswordAttempts wrong passwords lock a user's sign-in for Lockout.
	PasswordAttempts int           `mapstructure:"password_attempts"`
	Lockout          time.Duration `mapstructure:"lockout"`
}

// TriggersConfig configures schedules, timed profiles and external triggers (package trigger).
type TriggersConfig struct {
	// DefaultTimeZone is the IANA zone of users without time_zone; empty means the daemon's
	// local zone.
	DefaultTimeZone string `mapstructure:"default_time_zone"`
	// Tick is how often due triggers are looked for.
	Tick time.Duration `mapstructure:"tick"`
	// ExternalMaxDuration is how long an external trigger holds a user when its start does not
	// say (max_duration): if its end never comes, the user returns then.
	ExternalMaxDuration time.Duration `mapstructure:"external_max_duration"`
}

// UnansweredCallsConfig is when queue calls that go unanswered switch a user
// (missedcalls.Rules): after Calls calls in a row within Window, to Profile; PerQueue counts
// each queue apart; Queues limits it to these queues. Off while Profile is empty.
type UnansweredCallsConfig struct {
	Calls    int           `mapstructure:"calls"`
	Window   time.Duration `mapstructure:"window"`
	Profile  string        `mapstructure:"profile"`
	PerQueue bool          `mapstructure:"per_queue"`
	Queues   []string      `mapstructure:"queues"`
}

// on reports whether unanswered calls switch anybody.
func (c UnansweredCallsConfig) on() bool { return c.Profile != "" }

// rules are the configuration as missedcalls.Rules.
func (c UnansweredCallsConfig) rules() missedcalls.Rules {
	return missedcalls.Rules{Calls: c.Calls, Window: c.Window, Profile: c.Profile, PerQueue: c.PerQueue, Queues: c.Queues}
}

// CalendarConfig configures the calendar connector (package calendar).
type CalendarConfig struct {
	// Rules map events to profiles for users whose calendar names none; empty means the
	// default rules ("m:" → meeting, "h:" → holiday, out of office → holiday, of the profiles
	// that exist).
	Rules []presence.CalendarRule `mapstructure:"rules"`
	// PollInterval is how often a calendar is read when its source does not say.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// Horizon is how far ahead the plan of a calendar reaches.
	Horizon time.Duration `mapstructure:"horizon"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// AsteriskConfig says how to reach Asterisk.
type AsteriskConfig struct {
	// ID names the Asterisk presenced writes to: the instances sharing one ID elect one
	// leader among them (one Redis can serve several PBXes under different IDs).
	ID     string          `mapstructure:"id"`
	AMI    AMIConfig       `mapstructure:"ami"`
	ARI    ARIConfig       `mapstructure:"ari"`
	Naming presence.Naming `mapstructure:"naming"`
}

// AMIConfig is the Asterisk Manager Interface connection.
type AMIConfig struct {
	Address      string        `mapstructure:"address"`
	Username     string        `mapstructure:"username"`
	Secret       Secret        `mapstructure:"secret"`
	SecretFile   string        `mapstructure:"secret_file"`
	Events       string        `mapstructure:"events"`
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	PingInterval time.Duration `mapstructure:"ping_interval"`
	BackoffMax   time.Duration `mapstructure:"backoff_max"`
	// WriteSessions is how many sessions queue changes are spread over, the main one
	// included (an interface's changes always over the same one): Asterisk applies changes of
	// different sessions partly in parallel. With more than one, the astdb and lamp changes go
	// over one more session of their own, which receives no events.
	WriteSessions int `mapstructure:"write_sessions"`
}

// ARIConfig is the Asterisk REST Interface connection.
type ARIConfig struct {
	URL            string        `mapstructure:"url"`
	Username       string        `mapstructure:"username"`
	Password       Secret        `mapstructure:"password"`
	PasswordFile   string        `mapstructure:"password_file"`
	App            string        `mapstructure:"app"`
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// MaxConnections bounds the HTTP connections of REST requests at once (ari.Config).
	MaxConnections int `mapstructure:"max_connections"`
}

// RedisConfig is the state store: a Redis server at URL, a master found through Sentinel, or
// (neither) the embedded store.
type RedisConfig struct {
	URL     Secret `mapstructure:"url"`
	URLFile string `mapstructure:"url_file"`
	// Username and Password override the URL's; with Sentinel they are the master's.
	Username     string         `mapstructure:"username"`
	Password     Secret         `mapstructure:"password"`
	PasswordFile string         `mapstructure:"password_file"`
	DB           int            `mapstructure:"db"` // with Sentinel; a URL names its database
	DialTimeout  time.Duration  `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration  `mapstructure:"read_timeout"`
	WriteTimeout time.Duration  `mapstructure:"write_timeout"`
	Sentinel     SentinelConfig `mapstructure:"sentinel"`
}

// SentinelConfig finds the Redis master through Redis Sentinel (instead of redis.url), and
// says how many replicas must confirm a write before presenced acknowledges it.
type SentinelConfig struct {
	MasterName string   `mapstructure:"master_name"`
	Addresses  []string `mapstructure:"addresses"`
	// Username, Password and PasswordFile authenticate to the sentinels.
	Username     string `mapstructure:"username"`
	Password     Secret `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	// WaitReplicas replicas must hold a switch's state and journal entry (and a personal
	// profile) within WaitTimeout, or the request fails with 503 (presence.RedisOptions).
	WaitReplicas int           `mapstructure:"wait_replicas"`
	WaitTimeout  time.Duration `mapstructure:"wait_timeout"`
}

// enabled reports whether the master is found through Sentinel.
func (s SentinelConfig) enabled() bool { return s.MasterName != "" || len(s.Addresses) > 0 }

// embedded reports whether the embedded in-process store is used: no redis.url, no Sentinel.
func (r RedisConfig) embedded() bool { return r.URL == "" && !r.Sentinel.enabled() }

// kind names the store for the log: embedded, redis or sentinel.
func (r RedisConfig) kind() string {
	switch {
	case r.Sentinel.enabled():
		return "sentinel"
	case r.URL != "":
		return "redis"
	}
	return "embedded"
}

// StoreConfig configures the embedded store used when no Redis URL is set.
type StoreConfig struct {
	SnapshotPath     string        `mapstructure:"snapshot_path"`
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval"`
	// SnapshotTimeout bounds writing one snapshot; the final one, at shutdown, gets it on a
	// deadline of its own, after everything else has stopped.
	SnapshotTimeout time.Duration `mapstructure:"snapshot_timeout"`
}

// HTTPConfig is the HTTP listener (API, metrics, health, readiness) and the limits that keep
// slow or idle clients from holding it (package internal/httpserve).
type HTTPConfig struct {
	Listen string `mapstructure:"listen"`
	// ReadHeaderTimeout bounds reading a request's headers; ReadTimeout the whole request,
	// headers and body. Neither bounds the handler once the request is read.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds handling a request and writing its answer, from the end of its
	// headers.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout is how long a kept-alive connection may wait for its next request.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// ShutdownTimeout is how long requests in progress get to finish at shutdown before their
	// connections are closed.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MaxConnections caps the connections open at once; more are refused with 503.
	MaxConnections int `mapstructure:"max_connections"`
	// MaxEventStreams caps the web app's live update streams (each open page holds one
	// connection); more are refused with 503, and the pages reload now and then instead. Zero
	// means eventStreams' default.
	MaxEventStreams int `mapstructure:"max_event_streams"`
	// MaxHeaderBytes bounds a request's headers (431 beyond).
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// TLS makes the listener speak HTTPS.
	TLS HTTPTLSConfig `mapstructure:"tls"`
}

// HTTPTLSConfig is the HTTP listener's certificate: PEM files, read again when they change
// (httpserve.CertFiles). Both or neither.
type HTTPTLSConfig struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

func (c HTTPTLSConfig) enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// eventStreamsReserve is how many of http.max_connections the default http.max_event_streams
// leaves to everything else (the API, page loads, metrics): with the default 1,024
// connections, 1,000 open pages (docs/BENCHMARKS.md, "Web app").
const eventStreamsReserve = 24

// eventStreams is http.max_event_streams, or its default: all of max_connections but
// eventStreamsReserve, and at most half of them when max_connections is small.
func (c HTTPConfig) eventStreams() int {
	if c.MaxEventStreams != 0 {
		return c.MaxEventStreams
	}
	return min(max(c.MaxConnections-eventStreamsReserve, c.MaxConnections/2), c.MaxConnections-1)
}

// limits are the listener's bounds, every request body bounded by maxBody.
func (c HTTPConfig) limits(maxBody int64) httpserve.Limits {
	return httpserve.Limits{ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes, MaxConnections: c.MaxConnections, MaxBodyBytes: maxBody}
}
