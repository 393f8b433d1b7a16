package main

import (
	"cmp"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/viper"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/internal/httpserve"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/missedcalls"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
	"github.com/presenced/presenced/web/icon"
)

// envPrefix prefixes the environment variables that override configuration keys:
// asterisk.ami.secret is PRESENCED_ASTERISK_AMI_SECRET.
const envPrefix = "PRESENCED"

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
	// different sessions partly in parallel.
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

// defaults holds every configuration key with its default value. Every key must be here:
// viper only applies environment variables to keys it knows. A default that is a package's own
// (its exported default) is taken from that package, not written again.
func defaults() map[string]any {
	n := presence.DefaultNaming()
	lim := presence.DefaultLimits()
	thr := throttle.DefaultOptions()
	d := map[string]any{
		"asterisk.naming.queue_interface":          n.QueueInterface,
		"asterisk.naming.state_interface":          n.StateInterface,
		"asterisk.naming.dnd_family":               n.DNDFamily,
		"asterisk.naming.forward_family":           n.ForwardFamily,
		"asterisk.naming.forward_busy_family":      n.BusyFamily,
		"asterisk.naming.forward_no_answer_family": n.NoAnswerFamily,
		"asterisk.naming.profile_family":           n.ProfileFamily,
		"asterisk.naming.dnd_lamp":                 n.DNDLamp,
		"asterisk.naming.profile_lamp":             n.ProfileLamp,
		"asterisk.naming.presence_provider":        n.PresenceProvider,
		"asterisk.naming.lamp_off":                 n.LampOff,
		"instance_id":                              "",
		"log.level":                                "info",
		"log.format":                               "text",
		"asterisk.ami.address":                     "127.0.0.1:5038",
		"asterisk.ami.username":                    "presenced",
		"asterisk.ami.secret":                      "",
		"asterisk.ami.secret_file":                 "",
		"asterisk.ami.events":                      ami.DefaultEvents,
		"asterisk.ami.dial_timeout":                ami.DefaultDialTimeout.String(),
		"asterisk.ami.ping_interval":               ami.DefaultPingInterval.String(),
		"asterisk.ami.backoff_max":                 ami.DefaultBackoffMax.String(),
		"asterisk.ami.write_sessions":              4,
		"asterisk.ari.url":                         "http://127.0.0.1:8088/ari",
		"asterisk.ari.username":                    "presenced",
		"asterisk.ari.password":                    "",
		"asterisk.ari.password_file":               "",
		"asterisk.ari.app":                         "presenced",
		"asterisk.ari.request_timeout":             ari.DefaultRequestTimeout.String(),
		"redis.url":                                "",
		"redis.url_file":                           "",
		"redis.username":                           "",
		"redis.password":                           "",
		"redis.password_file":                      "",
		"redis.db":                                 0,
		"redis.dial_timeout":                       "2s",
		"redis.read_timeout":                       "1s",
		"redis.write_timeout":                      "1s",
		"redis.sentinel.master_name":               "",
		"redis.sentinel.addresses":                 []string{},
		"redis.sentinel.username":                  "",
		"redis.sentinel.password":                  "",
		"redis.sentinel.password_file":             "",
		"redis.sentinel.wait_replicas":             1,
		"redis.sentinel.wait_timeout":              "1s",
		"store.snapshot_path":                      "presenced-store.json",
		"store.snapshot_interval":                  "10s",
		"store.snapshot_timeout":                   "4s",
		"http.listen":                              "127.0.0.1:8080",
		"http.read_header_timeout":                 "5s",
		"http.read_timeout":                        "15s",
		"http.write_timeout":                       "90s",
		"http.idle_timeout":                        "30s",
		"http.shutdown_timeout":                    "4s",
		"http.max_connections":                     1024,
		"http.max_event_streams":                   0,
		"http.max_header_bytes":                    32 << 10,
		"http.tls.cert_file":                       "",
		"http.tls.key_file":                        "",
		"api.admin_token":                          "",
		"api.admin_token_file":                     "",
		"api.admin_token_hash":                     "",
		"api.throttle.failures":                    thr.Failures,
		"api.throttle.window":                      thr.Window.String(),
		"api.throttle.block":                       thr.Block.String(),
		"api.throttle.max_addresses":               thr.MaxKeys,
		"api.trusted_proxies":                      []string{},
		"api.max_body_bytes":                       65536,
		"shutdown_timeout":                         "10s",
		"reconcile.interval":                       "5m",
		"asterisk.id":                              "default",
		"leader.lease":                             leader.DefaultLease.String(),
		"leader.renew_interval":                    "0s",
		"leader.clock_drift_margin":                "0s",
		"reconcile.policy.dnd":                     "",
		"dnd_key.profile":                          presence.ProfileDND,
		"dnd_key.default_profile":                  "",
		"dnd_key.switches":                         presence.DefaultDNDKeySwitches,
		"dnd_key.window":                           presence.DefaultDNDKeyWindow.String(),
		"dnd_key.fallback":                         string(presence.PolicyEnforce),
		"feature_codes.default_profile":            presence.ProfileAvailable,
		"feature_codes.always_pin":                 false,
		"feature_codes.pin_attempts":               featurecode.DefaultPINAttempts,
		"feature_codes.lockout":                    featurecode.DefaultLockout.String(),
		"feature_codes.first_digit_timeout":        featurecode.DefaultFirstDigitTimeout.String(),
		"feature_codes.digit_timeout":              featurecode.DefaultDigitTimeout.String(),
		"feature_codes.trusted_contexts":           []string{},
		"triggers.default_time_zone":               "",
		"web.session_idle":                         account.DefaultIdleTimeout.String(),
		"web.session_max":                          account.DefaultMaxAge.String(),
		"web.password_attempts":                    account.DefaultAttempts,
		"web.lockout":                              account.DefaultLockout.String(),
		"triggers.tick":                            "1s",
		"unanswered_calls.profile":                 "",
		"unanswered_calls.calls":                   3,
		"unanswered_calls.window":                  missedcalls.DefaultWindow.String(),
		"unanswered_calls.per_queue":               false,
		"unanswered_calls.queues":                  []string{},
		"calendar.poll_interval":                   "5m",
		"calendar.horizon":                         "168h",
		"triggers.external_max_duration":           trigger.DefaultExternalMaxDuration.String(),
		"holidays":                                 []string{},
		"hot_desks":                                []string{},
		"personal_profiles.allowed_actions":        kindNames(presence.DefaultPersonalActions()),
		"personal_profiles.variables":              []string{},
		"personal_profiles.lamps":                  []string{},
		"personal_profiles.forward_allow":          []string{},
		"personal_profiles.forward_deny":           []string{},
		"limits.info_length":                       lim.InfoLength,
		"limits.personal_profiles":                 lim.PersonalProfiles,
		"limits.actions":                           lim.Actions,
		"limits.external_triggers":                 lim.ExternalTriggers,
	}
	for _, k := range presence.DriftKinds() {
		d["reconcile.policy."+string(k)] = string(presence.PolicyEnforce)
	}
	return d
}

// loadGCPercent is the garbage collector's GOGC while a configuration loads.
const loadGCPercent = 20

// flagKeys maps command-line flags to the configuration keys they set.
var flagKeys = map[string]string{
	"log-level":   "log.level",
	"log-format":  "log.format",
	"http-listen": "http.listen",
	"instance-id": "instance_id",
}

// options is what the command line asks for besides configuration keys.
type options struct {
	configPath  string
	checkConfig bool
	printHints  bool
	hashSecret  bool
	hashPass    bool
	pwLink      string
	version     bool
	// help is -help or -h: usage writes the flags' usage.
	help        bool
	usage       func(io.Writer)
	healthcheck bool
}

// loadConfig reads the configuration from args (without the program name), the environment
// (environ, as os.Environ) and the YAML file args name. The error is one line naming the key.
func loadConfig(args, environ []string, stderr io.Writer) (Config, options, error) {
	// Loading builds several short-lived copies of the file (the YAML parser's node tree, the
	// tree of maps, the decoded structs): collecting more often while it runs keeps the peak
	// near what is live rather than twice it (docs/BENCHMARKS.md, "Configuration loading").
	defer debug.SetGCPercent(debug.SetGCPercent(loadGCPercent))
	var opts options
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned in one line, -help's usage goes to stdout
	fs.StringVar(&opts.configPath, "config", "", "YAML configuration `file` (default: none, environment and flags only)")
	fs.BoolVar(&opts.checkConfig, "check-config", false, "validate the configuration and exit")
	fs.BoolVar(&opts.printHints, "print-hints", false, "print the per-user BLF hint contexts for *55<n> keys (extensions.conf) and exit")
	fs.BoolVar(&opts.hashPass, "hash-password", false, "read a web app password from the first line of standard input, print its argon2id hash (for a user's password_hash) and exit")
	fs.StringVar(&opts.pwLink, "password-link", "", "make a one-time set-password link for the `user` (id or extension) in the configured Redis, print its path and exit")
	fs.BoolVar(&opts.hashSecret, "hash-secret", false, "read a token or PIN from the first line of standard input, print its argon2id hash (for token_hash, pin_hash, api.admin_token_hash) and exit")
	fs.BoolVar(&opts.version, "version", false, "print the version and exit")
	fs.BoolVar(&opts.healthcheck, "healthcheck", false, "ask the presenced running with this configuration for /healthz (on http.listen, from this host) and exit 0 when it answers 200, 1 otherwise: a container's HEALTHCHECK")
	flagVals := map[string]*string{}
	for name, key := range flagKeys {
		flagVals[name] = fs.String(name, "", "sets "+key)
	}
	opts.usage = func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprintln(w, "Usage: presenced [flags]  (every configuration key is also a PRESENCED_* variable; see the README)")
		fs.PrintDefaults()
	}
	fs.Usage = func() {} // a wrong flag is reported in one line; -help prints the usage to stdout
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			opts.help = true
			return Config{}, opts, nil
		}
		return Config{}, opts, fmt.Errorf("command line: %w (presenced -help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, opts, fmt.Errorf("command line: unexpected argument %q", fs.Arg(0))
	}
	if opts.version || opts.hashSecret || opts.hashPass {
		return Config{}, opts, nil
	}

	v := viper.New()
	defs := defaults()
	for k, val := range defs {
		v.SetDefault(k, val)
	}
	env := envMap(environ)
	// Environment variables are applied by hand from environ (not os.Getenv), so that tests can
	// pass their own and unknown PRESENCED_* names can be reported.
	known := map[string]string{}
	for k := range defs {
		known[envName(k)] = k
	}
	var unknownEnv []string
	for name, val := range env {
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		key, ok := known[name]
		if !ok {
			unknownEnv = append(unknownEnv, name)
			continue
		}
		v.Set(key, val)
	}
	if len(unknownEnv) > 0 {
		sort.Strings(unknownEnv)
		return Config{}, opts, fmt.Errorf("environment: unknown variable %s (no such configuration key)", strings.Join(unknownEnv, ", "))
	}

	var lists fileLists
	var listProblems []string
	if opts.configPath != "" {
		raw, err := os.ReadFile(opts.configPath)
		if err != nil {
			return Config{}, opts, fmt.Errorf("config file: %w", err)
		}
		tree, l, unknownInLists, problems, err := readConfigFile(raw)
		if err != nil {
			return Config{}, opts, fmt.Errorf("config file %s: %w", opts.configPath, oneLine(err))
		}
		lists, listProblems = l, problems
		if unknown := append(unknownKeys(tree, "", defs), unknownInLists...); len(unknown) > 0 {
			sort.Strings(unknown)
			return Config{}, opts, fmt.Errorf("config file %s: unknown key %s", opts.configPath, strings.Join(unknown, ", "))
		}
		// The file sits between defaults and the environment: apply it only where the
		// environment said nothing. The tree parsed above is used as it is (a second parse
		// of a file of 10,000 users doubled what loading it took: docs/BENCHMARKS.md).
		for k, val := range fileSettings(tree, "", defs) {
			if _, fromEnv := env[envName(k)]; !fromEnv {
				v.Set(k, val)
			}
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			v.Set(key, *flagVals[f.Name])
		}
	})

	var cfg Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		durationWithUnit,
		stringToHolidays,
	)))
	if err != nil {
		listProblems = append(decodeProblems(err), listProblems...)
	}
	if opts.healthcheck {
		return cfg, opts, nil // it needs http.* only: no secrets, no validation of the rest
	}
	if len(listProblems) > 0 {
		sort.Strings(listProblems)
		return Config{}, opts, fmt.Errorf("invalid configuration: %s", strings.Join(listProblems, "; "))
	}
	lists.set(&cfg)
	cfg.offline = opts.checkConfig || opts.printHints
	cfg.withoutAsterisk = cfg.offline || opts.pwLink != ""
	if err := cfg.readSecretFiles(); err != nil {
		return Config{}, opts, err
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID()
	}
	if opts.printHints {
		// The hints need the users and profiles, not the secrets of connections never made.
		if cfg.Asterisk.AMI.Secret == "" {
			cfg.Asterisk.AMI.Secret = "unused by -print-hints"
		}
		if cfg.Asterisk.ARI.Password == "" {
			cfg.Asterisk.ARI.Password = "unused by -print-hints"
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, opts, err
	}
	cfg.reload = func() (Config, error) {
		c, _, err := loadConfig(args, environ, io.Discard)
		return c, err
	}
	return cfg, opts, nil
}

func kindNames(kinds []presence.ActionKind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

// bareNumber is a number without a unit, as YAML or an environment variable may give it.
var bareNumber = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// durationWithUnit decodes a time.Duration from a string with a unit ("10s", "5m", "1h30m")
// and refuses a bare number, YAML integer or float or string: decoded as is it would be
// nanoseconds (reconcile.interval: 300 would start a full reconcile every 300 ns).
func durationWithUnit(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() || from == to {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, noUnit(fmt.Sprint(data))
	case reflect.String:
		s := strings.TrimSpace(reflect.ValueOf(data).String())
		if bareNumber.MatchString(s) {
			return nil, noUnit(s)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration such as 500ms, 10s, 5m or 1h30m", s)
		}
		return d, nil
	}
	return data, nil
}

// noUnit is the error for a duration given as a bare number; it suggests what to write.
func noUnit(n string) error {
	hint := "a unit, e.g. 10s or 5m"
	if i, err := strconv.ParseUint(n, 10, 63); err == nil && i >= 60 && i%60 == 0 {
		hint = n + "s or " + strconv.FormatUint(i/60, 10) + "m"
	} else if err == nil {
		hint = n + "s or " + n + "ms"
	} else if _, err := time.ParseDuration(n + "s"); err == nil {
		hint = n + "s"
	}
	return fmt.Errorf("%s has no unit (write %s)", n, hint)
}

// decodeProblems turns a decoding error into one "key: problem" per key. mapstructure names
// the key in its DecodeError ('asterisk.ami.ping_interval'); nested structs join their fields'
// errors.
func decodeProblems(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var de *mapstructure.DecodeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case *mapstructure.DecodeError:
			if errors.As(e.Unwrap(), &de) {
				walk(e.Unwrap()) // the innermost names the key
				return
			}
			var pe *mapstructure.ParseError
			if errors.As(e.Unwrap(), &pe) && pe.Expected.IsValid() {
				out = append(out, fmt.Sprintf("%s: %q is not a valid %s", e.Name(), fmt.Sprint(pe.Value), pe.Expected.Type()))
				return
			}
			out = append(out, e.Name()+": "+oneLine(e.Unwrap()).Error())
		default:
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner)
				return
			}
			out = append(out, oneLine(err).Error())
		}
	}
	walk(err)
	sort.Strings(out)
	return out
}

// stringToHolidays reads holidays from a string (PRESENCED_HOLIDAYS="2026-12-25,2027-01-01").
func stringToHolidays(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeFor[[]string]() {
		return data, nil
	}
	s, _ := data.(string)
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out, nil
}

func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// fileSettings flattens the file's tree into dotted configuration keys (lower case, as viper
// keeps them) and their values: the sections are descended, the values of keys (lists of
// users, profiles, ...) are kept whole. unknownKeys has refused every other key.
func fileSettings(settings map[string]any, prefix string, defs map[string]any) map[string]any {
	out := map[string]any{}
	for k, val := range settings {
		full := prefix + strings.ToLower(k)
		if sub, ok := val.(map[string]any); ok && hasPrefix(defs, full+".") {
			for sk, sv := range fileSettings(sub, full+".", defs) {
				out[sk] = sv
			}
			continue
		}
		out[full] = val
	}
	return out
}

// unknownKeys lists the dotted keys of settings that are not configuration keys.
func unknownKeys(settings map[string]any, prefix string, defs map[string]any) []string {
	var out []string
	for k, val := range settings {
		full := prefix + strings.ToLower(k) // viper's keys are case-insensitive
		if _, ok := defs[full]; ok {
			continue
		}
		if typ, ok := listKeys()[full]; ok {
			out = append(out, unknownInList(val, full, typ)...)
			continue
		}
		if sub, ok := val.(map[string]any); ok && hasPrefix(defs, full+".") {
			out = append(out, unknownKeys(sub, full+".", defs)...)
			continue
		}
		out = append(out, full)
	}
	sort.Strings(out)
	return out
}

// listKeys are the configuration keys holding lists of structs, with the struct type.
func listKeys() map[string]reflect.Type {
	return map[string]reflect.Type{
		"users":          reflect.TypeFor[presence.User](),
		"profiles":       reflect.TypeFor[presence.Profile](),
		"schedules":      reflect.TypeFor[presence.Schedule](),
		"calendar.rules": reflect.TypeFor[presence.CalendarRule](),
	}
}

// unknownInList reports the keys of the list's items that typ has no field for, e.g.
// users[0].extention, profiles[1].on_enter[0].queue.
func unknownInList(val any, path string, typ reflect.Type) []string {
	items, ok := val.([]any)
	if !ok {
		if val == nil {
			return nil
		}
		return []string{path + " (must be a list)"}
	}
	var out []string
	for i, item := range items {
		out = append(out, unknownInStruct(item, fmt.Sprintf("%s[%d]", path, i), typ)...)
	}
	return out
}

func unknownInStruct(val any, path string, typ reflect.Type) []string {
	m, ok := val.(map[string]any)
	if !ok {
		return nil // a type error, which decoding reports with its path
	}
	fields := map[string]reflect.Type{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var out []string
	for k, v := range m {
		ft, ok := fields[strings.ToLower(k)]
		if !ok {
			out = append(out, path+"."+k)
			continue
		}
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, unknownInList(v, path+"."+k, ft.Elem())...)
		case ft.Kind() == reflect.Struct:
			out = append(out, unknownInStruct(v, path+"."+k, ft)...)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			out = append(out, unknownInStruct(v, path+"."+k, ft.Elem())...)
		}
	}
	return out
}

func hasPrefix(defs map[string]any, prefix string) bool {
	for k := range defs {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// readSecretFiles fills secrets from their *_file keys (trailing newline removed), the users'
// token_file and pin_file included.
func (c *Config) readSecretFiles() error {
	if c.API.AdminTokenFile != "" && c.API.AdminTokenHash != "" {
		return errors.New("api.admin_token_file: set only one of api.admin_token, api.admin_token_hash and api.admin_token_file")
	}
	for _, s := range []struct {
		key, fileKey string
		value        *Secret
		file         string
	}{
		{"asterisk.ami.secret", "asterisk.ami.secret_file", &c.Asterisk.AMI.Secret, c.Asterisk.AMI.SecretFile},
		{"asterisk.ari.password", "asterisk.ari.password_file", &c.Asterisk.ARI.Password, c.Asterisk.ARI.PasswordFile},
		{"redis.url", "redis.url_file", &c.Redis.URL, c.Redis.URLFile},
		{"redis.password", "redis.password_file", &c.Redis.Password, c.Redis.PasswordFile},
		{"redis.sentinel.password", "redis.sentinel.password_file", &c.Redis.Sentinel.Password, c.Redis.Sentinel.PasswordFile},
		{"api.admin_token", "api.admin_token_file", &c.API.AdminToken, c.API.AdminTokenFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			return fmt.Errorf("%s: set either %s or %s, not both", s.key, s.key, s.fileKey)
		}
		b, err := os.ReadFile(s.file)
		if err != nil && c.offline {
			c.offlineWarnings = append(c.offlineWarnings, fmt.Sprintf("%s: %v (not needed here; the daemon needs it)", s.fileKey, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.fileKey, err)
		}
		val := strings.TrimRight(string(b), "\r\n")
		if val == "" {
			return fmt.Errorf("%s: file %s is empty", s.fileKey, s.file)
		}
		*s.value = Secret(val)
	}
	return c.readUserSecretFiles()
}

// readUserSecretFiles reads the users' token_file and pin_file into Token and PIN, leaving the
// *_file keys set (presence's validation then names them in its errors). A file key next to
// its plain or hashed sibling is refused here, naming the file key.
func (c *Config) readUserSecretFiles() error {
	var problems []string
	for i := range c.Users {
		u := &c.Users[i]
		path := fmt.Sprintf("users[%d]", i)
		if u.ID != "" {
			path = fmt.Sprintf("users[%d] (%s)", i, u.ID)
		}
		for _, f := range []struct {
			key, siblings string
			file          string
			plain, hash   *string
		}{
			{"token_file", "token, token_hash and token_file", u.TokenFile, &u.Token, &u.TokenHash},
			{"pin_file", "pin, pin_hash and pin_file", u.PINFile, &u.PIN, &u.PINHash},
		} {
			if f.file == "" {
				continue
			}
			if *f.plain != "" || *f.hash != "" {
				problems = append(problems, fmt.Sprintf("%s.%s: set only one of %s", path, f.key, f.siblings))
				continue
			}
			b, err := os.ReadFile(f.file)
			if err != nil && c.offline {
				c.offlineWarnings = append(c.offlineWarnings, fmt.Sprintf("%s.%s: %v (not needed here; the daemon needs it)", path, f.key, err))
				continue
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %v", path, f.key, err))
				continue
			}
			val := strings.TrimRight(string(b), "\r\n")
			if val == "" {
				problems = append(problems, fmt.Sprintf("%s.%s: file %s is empty", path, f.key, f.file))
				continue
			}
			*f.plain = val
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	logLevels    = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	logFormats   = map[string]bool{"text": true, "json": true}
	eventClasses = map[string]bool{"system": true, "call": true, "log": true, "verbose": true, "command": true, "agent": true,
		"user": true, "config": true, "dtmf": true, "reporting": true, "cdr": true, "dialplan": true, "originate": true,
		"agi": true, "cc": true, "aoc": true, "test": true, "security": true, "message": true, "all": true, "on": true, "off": true}
)

// Validate checks every key and reports all problems in one line, each naming its key.
func (c *Config) Validate() error {
	var problems []string
	add := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	if !namePattern.MatchString(c.InstanceID) {
		add("instance_id", "%q must be letters, digits, '-' or '_'", c.InstanceID)
	}
	if !namePattern.MatchString(c.Asterisk.ID) || len(c.Asterisk.ID) > 64 {
		add("asterisk.id", "%q must be 1-64 letters, digits, '-' or '_'", c.Asterisk.ID)
	}
	if c.Leader.RenewInterval != 0 && (c.Leader.RenewInterval < 100*time.Millisecond || c.Leader.RenewInterval > c.Leader.Lease/2) {
		add("leader.renew_interval", "%s is out of range (allowed 0 for lease/3, or 100ms to half of leader.lease: a renewal must be tried twice within a lease)", formatDuration(c.Leader.RenewInterval))
	}
	if c.Leader.ClockDriftMargin != 0 && (c.Leader.ClockDriftMargin < 10*time.Millisecond || c.Leader.ClockDriftMargin > c.Leader.Lease/2) {
		add("leader.clock_drift_margin", "%s is out of range (allowed 0 for lease/10, or 10ms to half of leader.lease)", formatDuration(c.Leader.ClockDriftMargin))
	}
	if _, ok := logLevels[c.Log.Level]; !ok {
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !logFormats[c.Log.Format] {
		add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if err := checkHostPort(c.Asterisk.AMI.Address); err != nil {
		add("asterisk.ami.address", "%v", err)
	}
	if c.Asterisk.AMI.Username == "" {
		add("asterisk.ami.username", "required")
	}
	if c.Asterisk.AMI.Secret == "" {
		c.requireSecret(add, "asterisk.ami.secret", "asterisk.ami.secret_file")
	}
	hasSystem := false
	for _, class := range strings.Split(c.Asterisk.AMI.Events, ",") {
		class = strings.TrimSpace(class)
		if !eventClasses[class] {
			add("asterisk.ami.events", "%q is not an AMI event class", class)
			hasSystem = true // one problem at a time
			break
		}
		hasSystem = hasSystem || class == "system" || class == "all" || class == "on"
	}
	if !hasSystem {
		add("asterisk.ami.events", "%q must include system: presenced waits for FullyBooted before it acts", c.Asterisk.AMI.Events)
	}
	if u, err := url.Parse(c.Asterisk.ARI.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("asterisk.ari.url", "%q is not an http(s) URL such as http://127.0.0.1:8088/ari", c.Asterisk.ARI.URL)
	} else if err := checkHostPort(u.Host); err != nil && u.Port() != "" {
		add("asterisk.ari.url", "%v", err)
	}
	if c.Asterisk.ARI.Username == "" {
		add("asterisk.ari.username", "required")
	}
	if c.Asterisk.ARI.Password == "" {
		c.requireSecret(add, "asterisk.ari.password", "asterisk.ari.password_file")
	}
	if !namePattern.MatchString(c.Asterisk.ARI.App) {
		add("asterisk.ari.app", "%q must be letters, digits, '-' or '_'", c.Asterisk.ARI.App)
	}
	if c.Redis.URL != "" {
		if _, err := redis.ParseURL(string(c.Redis.URL)); err != nil {
			add("redis.url", "not a redis:// URL: %v", redactURLError(err))
		}
	}
	c.validateSentinel(add)
	if err := checkHostPort(c.HTTP.Listen); err != nil {
		add("http.listen", "%v", err)
	}
	switch t := c.HTTP.TLS; {
	case t.CertFile != "" && t.KeyFile == "":
		add("http.tls.key_file", "missing: http.tls.cert_file needs its key")
	case t.CertFile == "" && t.KeyFile != "":
		add("http.tls.cert_file", "missing: http.tls.key_file needs its certificate")
	case t.enabled():
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			add("http.tls.cert_file", "%s with http.tls.key_file %s: %v", t.CertFile, t.KeyFile, err)
		}
	}
	problems = append(problems, c.limitProblems()...)
	var verr *presence.ValidationError
	if err := c.Reconcile.Policy.Policies().Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			problems = append(problems, "reconcile.policy."+p)
		}
	} else if err != nil {
		problems = append(problems, err.Error())
	}
	c.validateAPIAuth(add)
	for i, name := range c.FeatureCodes.TrustedContexts {
		if err := featurecode.CheckContext(name); err != nil {
			add(fmt.Sprintf("feature_codes.trusted_contexts[%d]", i), "%v", err)
		}
	}
	if err := c.Asterisk.Naming.Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			problems = append(problems, "asterisk."+p)
		}
	}
	catalog, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: c.Users, Profiles: c.Profiles,
		Personal: c.PersonalProfiles, Limits: c.Limits, HotDesks: c.HotDesks, Naming: c.Asterisk.Naming})
	if errors.As(err, &verr) {
		problems = append(problems, verr.Problems...)
	} else if err != nil {
		problems = append(problems, err.Error())
	}
	c.catalog = catalog
	if c.Triggers.DefaultTimeZone != "" {
		if _, err := time.LoadLocation(c.Triggers.DefaultTimeZone); err != nil {
			add("triggers.default_time_zone", "%q is not a known time zone", c.Triggers.DefaultTimeZone)
		}
	}
	if catalog != nil {
		if err := trigger.Check(catalog, c.Schedules, c.Holidays); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		} else if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if c.UnansweredCalls.on() && catalog != nil {
		if err := c.UnansweredCalls.rules().Validate("unanswered_calls", catalog); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		}
	}
	if catalog != nil {
		if err := calendar.Check(catalog, c.Calendar.Rules); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		} else if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if catalog != nil {
		// Checked whatever the policy, so that switching it on later needs no other change.
		if err := c.DNDKey.options("").Validate("dnd_key", catalog); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		}
	}
	if catalog != nil {
		if _, ok := catalog.Profile(c.FeatureCodes.DefaultProfile); !ok {
			add("feature_codes.default_profile", "%q is not a system-wide profile", c.FeatureCodes.DefaultProfile)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

// requireSecret reports a connection secret that is missing: a problem for the daemon, a
// warning for the commands that do not connect where it is needed.
func (c *Config) requireSecret(add func(key, format string, args ...any), key, fileKey string) {
	msg := fmt.Sprintf("required (or %s, or %s)", fileKey, envName(key))
	switch {
	case c.offline:
		c.offlineWarnings = append(c.offlineWarnings, key+": "+msg+" by the daemon; not needed here")
	case !c.withoutAsterisk:
		add(key, "%s", msg)
	}
}

// warnings are what is valid in the configuration but probably not meant: a system-wide
// profile's icon that the web app does not draw (package web/icon).
func (c *Config) warnings() []string {
	return icon.Unknown(c.Profiles)
}

// validateSentinel checks redis.sentinel: a master name and the sentinels' addresses together,
// never beside redis.url; redis.db only with it (a URL names its database).
func (c *Config) validateSentinel(add func(key, format string, args ...any)) {
	s := c.Redis.Sentinel
	if !s.enabled() {
		if c.Redis.DB != 0 {
			add("redis.db", "only with redis.sentinel (redis.url names its database: redis://host:6379/%d)", c.Redis.DB)
		}
		return
	}
	if c.Redis.URL != "" {
		add("redis.sentinel", "set either redis.url or redis.sentinel, not both")
	}
	if s.MasterName == "" {
		add("redis.sentinel.master_name", "required with redis.sentinel.addresses: the name the sentinels monitor the master by")
	} else if strings.ContainsAny(s.MasterName, " \t\r\n") {
		add("redis.sentinel.master_name", "%q must not contain spaces", s.MasterName)
	}
	if len(s.Addresses) == 0 {
		add("redis.sentinel.addresses", "required with redis.sentinel.master_name: host:port of the sentinels (%s=a:26379,b:26379)",
			envName("redis.sentinel.addresses"))
	}
	for i, a := range s.Addresses {
		if err := checkHostPort(a); err != nil {
			add(fmt.Sprintf("redis.sentinel.addresses[%d]", i), "%v", err)
		}
	}
	if s.Username != "" && s.Password == "" {
		add("redis.sentinel.username", "needs redis.sentinel.password (or redis.sentinel.password_file)")
	}
}

// validateAPIAuth checks the admin token (long and random enough, or a hash presenced can
// verify), the throttle and the trusted proxies.
func (c *Config) validateAPIAuth(add func(key, format string, args ...any)) {
	adminKey := "api.admin_token"
	if c.API.AdminTokenFile != "" {
		adminKey = "api.admin_token_file"
	}
	switch {
	case c.API.AdminToken != "" && c.API.AdminTokenHash != "":
		add("api.admin_token_hash", "set only one of api.admin_token, api.admin_token_hash and api.admin_token_file")
	case c.API.AdminToken != "":
		if secret.IsHash(string(c.API.AdminToken)) {
			add(adminKey, "is a hash: give it as api.admin_token_hash")
		} else if err := secret.CheckToken(string(c.API.AdminToken)); err != nil {
			add(adminKey, "%v", err)
		}
	case c.API.AdminTokenHash != "":
		if _, err := secret.ParseHash(c.API.AdminTokenHash); err != nil {
			add("api.admin_token_hash", "%v", err)
		}
	}
	t := c.API.Throttle
	if t.Failures < 1 || t.Failures > 1000 {
		add("api.throttle.failures", "%d must be between 1 and 1000", t.Failures)
	}
	if t.Window < time.Second || t.Window > 24*time.Hour {
		add("api.throttle.window", "%v must be between 1s and 24h", t.Window)
	}
	if t.Block < time.Second || t.Block > 24*time.Hour {
		add("api.throttle.block", "%v must be between 1s and 24h", t.Block)
	}
	if t.MaxAddresses < 100 || t.MaxAddresses > 10_000_000 {
		add("api.throttle.max_addresses", "%d must be between 100 and 10000000", t.MaxAddresses)
	}
	for i, p := range c.API.TrustedProxies {
		if _, err := throttle.ParsePrefix(p); err != nil {
			add(fmt.Sprintf("api.trusted_proxies[%d]", i), "%v", err)
		}
	}
}

// trustedProxies are api.trusted_proxies as prefixes (Validate has checked them).
func (c *Config) trustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.API.TrustedProxies {
		if p, err := throttle.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// redactURLError keeps a URL parse error from echoing a password.
func redactURLError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has an invalid host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}

// defaultInstanceID is the host name made safe for a Stasis application name. It stays the same
// across restarts, so a restarted daemon finds the calls its predecessor left in its application.
func defaultInstanceID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "default"
	}
	h = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, h)
	if h = strings.Trim(h, "-_"); h == "" {
		return "default"
	}
	return h
}
