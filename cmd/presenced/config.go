package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/viper"

	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
	"go.yaml.in/yaml/v3"
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
	ShutdownTimeout time.Duration      `mapstructure:"shutdown_timeout"`
	Reconcile       ReconcileConfig    `mapstructure:"reconcile"`
	// Users and Profiles are validated into a presence.Catalog.
	Users    []presence.User    `mapstructure:"users"`
	Profiles []presence.Profile `mapstructure:"profiles"`
	// Schedules are the system-wide schedule entries every user without their own inherits;
	// Holidays (YYYY-MM-DD) suppress them (package trigger).
	Schedules []presence.Schedule `mapstructure:"schedules"`
	Holidays  []string            `mapstructure:"holidays"`
	Triggers  TriggersConfig      `mapstructure:"triggers"`

	catalog *presence.Catalog
	// observeFeatureCode, set by tests, sees the outcome of every feature-code call.
	observeFeatureCode func(featurecode.Outcome)
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
}

// Policies is the configuration as the engine takes it.
func (p PolicyConfig) Policies() presence.Policies {
	return presence.Policies{
		presence.DriftQueueMembership: p.QueueMembership, presence.DriftQueuePause: p.QueuePause,
		presence.DriftQueuePenalty: p.QueuePenalty, presence.DriftAstDB: p.AstDB, presence.DriftLamp: p.Lamp,
		presence.DriftPresence: p.Presence, presence.DriftGlobal: p.Global,
	}
}

// APIConfig configures the REST API.
type APIConfig struct {
	AdminToken     Secret `mapstructure:"admin_token"`
	AdminTokenFile string `mapstructure:"admin_token_file"`
	MaxBodyBytes   int64  `mapstructure:"max_body_bytes"`
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

// TriggersConfig configures schedules, timed profiles and external triggers (package trigger).
type TriggersConfig struct {
	// DefaultTimeZone is the IANA zone of users without time_zone; empty means the daemon's
	// local zone.
	DefaultTimeZone string `mapstructure:"default_time_zone"`
	// Tick is how often due triggers are looked for.
	Tick time.Duration `mapstructure:"tick"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// AsteriskConfig says how to reach Asterisk.
type AsteriskConfig struct {
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

// RedisConfig is the state store. An empty URL means the embedded store.
type RedisConfig struct {
	URL          Secret        `mapstructure:"url"`
	URLFile      string        `mapstructure:"url_file"`
	Password     Secret        `mapstructure:"password"`
	PasswordFile string        `mapstructure:"password_file"`
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
}

// StoreConfig configures the embedded store used when no Redis URL is set.
type StoreConfig struct {
	SnapshotPath     string        `mapstructure:"snapshot_path"`
	SnapshotInterval time.Duration `mapstructure:"snapshot_interval"`
}

// HTTPConfig is the HTTP listener (metrics, health, readiness).
type HTTPConfig struct {
	Listen string `mapstructure:"listen"`
}

// defaults holds every configuration key with its default value. Every key must be here:
// viper only applies environment variables to keys it knows.
func defaults() map[string]any {
	n := presence.DefaultNaming()
	return map[string]any{
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
		"asterisk.ami.events":                      "system,call,agent,user",
		"asterisk.ami.dial_timeout":                "5s",
		"asterisk.ami.ping_interval":               "10s",
		"asterisk.ami.backoff_max":                 "30s",
		"asterisk.ari.url":                         "http://127.0.0.1:8088/ari",
		"asterisk.ari.username":                    "presenced",
		"asterisk.ari.password":                    "",
		"asterisk.ari.password_file":               "",
		"asterisk.ari.app":                         "presenced",
		"asterisk.ari.request_timeout":             "5s",
		"redis.url":                                "",
		"redis.url_file":                           "",
		"redis.password":                           "",
		"redis.password_file":                      "",
		"redis.dial_timeout":                       "2s",
		"redis.read_timeout":                       "1s",
		"redis.write_timeout":                      "1s",
		"store.snapshot_path":                      "presenced-store.json",
		"store.snapshot_interval":                  "10s",
		"http.listen":                              "127.0.0.1:8080",
		"api.admin_token":                          "",
		"api.admin_token_file":                     "",
		"api.max_body_bytes":                       65536,
		"shutdown_timeout":                         "10s",
		"reconcile.interval":                       "5m",
		"reconcile.policy.queue_membership":        "enforce",
		"reconcile.policy.queue_pause":             "enforce",
		"reconcile.policy.queue_penalty":           "enforce",
		"reconcile.policy.astdb":                   "enforce",
		"reconcile.policy.lamp":                    "enforce",
		"reconcile.policy.presence":                "enforce",
		"reconcile.policy.global":                  "enforce",
		"feature_codes.default_profile":            presence.ProfileAvailable,
		"feature_codes.always_pin":                 false,
		"feature_codes.pin_attempts":               5,
		"feature_codes.lockout":                    "15m",
		"feature_codes.first_digit_timeout":        "5s",
		"feature_codes.digit_timeout":              "3s",
		"feature_codes.trusted_contexts":           []string{},
		"triggers.default_time_zone":               "",
		"triggers.tick":                            "1s",
		"holidays":                                 []string{},
	}
}

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
	version     bool
}

// loadConfig reads the configuration from args (without the program name), the environment
// (environ, as os.Environ) and the YAML file args name. The error is one line naming the key.
func loadConfig(args, environ []string, stderr io.Writer) (Config, options, error) {
	var opts options
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.configPath, "config", "", "YAML configuration `file` (default: none, environment and flags only)")
	fs.BoolVar(&opts.checkConfig, "check-config", false, "validate the configuration and exit")
	fs.BoolVar(&opts.printHints, "print-hints", false, "print the per-user BLF hint contexts for *55<n> keys (extensions.conf) and exit")
	fs.BoolVar(&opts.version, "version", false, "print the version and exit")
	flagVals := map[string]*string{}
	for name, key := range flagKeys {
		flagVals[name] = fs.String(name, "", "sets "+key)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, opts, fmt.Errorf("command line: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, opts, fmt.Errorf("command line: unexpected argument %q", fs.Arg(0))
	}
	if opts.version {
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

	if opts.configPath != "" {
		raw, err := os.ReadFile(opts.configPath)
		if err != nil {
			return Config{}, opts, fmt.Errorf("config file: %w", err)
		}
		var tree map[string]any
		if err := yaml.Unmarshal(raw, &tree); err != nil {
			return Config{}, opts, fmt.Errorf("config file %s: %w", opts.configPath, oneLine(err))
		}
		if unknown := unknownKeys(tree, "", defs); len(unknown) > 0 {
			return Config{}, opts, fmt.Errorf("config file %s: unknown key %s", opts.configPath, strings.Join(unknown, ", "))
		}
		file := viper.New()
		file.SetConfigType("yaml")
		if err := file.ReadConfig(bytes.NewReader(raw)); err != nil {
			return Config{}, opts, fmt.Errorf("config file %s: %w", opts.configPath, oneLine(err))
		}
		// The file sits between defaults and the environment: apply it only where the
		// environment said nothing.
		for _, k := range file.AllKeys() {
			if _, fromEnv := env[envName(k)]; !fromEnv {
				v.Set(k, file.Get(k))
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
		mapstructure.StringToTimeDurationHookFunc(),
		stringToHolidays,
	)))
	if err != nil {
		return Config{}, opts, fmt.Errorf("config: %w", oneLine(err))
	}
	if err := cfg.readSecretFiles(); err != nil {
		return Config{}, opts, err
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID()
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, opts, err
	}
	return cfg, opts, nil
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
		"users":     reflect.TypeFor[presence.User](),
		"profiles":  reflect.TypeFor[presence.Profile](),
		"schedules": reflect.TypeFor[presence.Schedule](),
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

// readSecretFiles fills secrets from their *_file keys (trailing newline removed).
func (c *Config) readSecretFiles() error {
	for _, s := range []struct {
		key, fileKey string
		value        *Secret
		file         string
	}{
		{"asterisk.ami.secret", "asterisk.ami.secret_file", &c.Asterisk.AMI.Secret, c.Asterisk.AMI.SecretFile},
		{"asterisk.ari.password", "asterisk.ari.password_file", &c.Asterisk.ARI.Password, c.Asterisk.ARI.PasswordFile},
		{"redis.url", "redis.url_file", &c.Redis.URL, c.Redis.URLFile},
		{"redis.password", "redis.password_file", &c.Redis.Password, c.Redis.PasswordFile},
		{"api.admin_token", "api.admin_token_file", &c.API.AdminToken, c.API.AdminTokenFile},
	} {
		if s.file == "" {
			continue
		}
		if *s.value != "" {
			return fmt.Errorf("%s: set either %s or %s, not both", s.key, s.key, s.fileKey)
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return fmt.Errorf("%s: %w", s.fileKey, err)
		}
		val := strings.TrimRight(string(b), "\r\n")
		if val == "" {
			return fmt.Errorf("%s: file %s is empty", s.fileKey, s.file)
		}
		*s.value = Secret(val)
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
		add("asterisk.ami.secret", "required (or asterisk.ami.secret_file, or %s)", envName("asterisk.ami.secret"))
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
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add(key, "%v must be a positive duration", d)
		}
	}
	positive("asterisk.ami.dial_timeout", c.Asterisk.AMI.DialTimeout)
	positive("asterisk.ami.ping_interval", c.Asterisk.AMI.PingInterval)
	positive("asterisk.ami.backoff_max", c.Asterisk.AMI.BackoffMax)
	if u, err := url.Parse(c.Asterisk.ARI.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("asterisk.ari.url", "%q is not an http(s) URL such as http://127.0.0.1:8088/ari", c.Asterisk.ARI.URL)
	} else if err := checkHostPort(u.Host); err != nil && u.Port() != "" {
		add("asterisk.ari.url", "%v", err)
	}
	if c.Asterisk.ARI.Username == "" {
		add("asterisk.ari.username", "required")
	}
	if c.Asterisk.ARI.Password == "" {
		add("asterisk.ari.password", "required (or asterisk.ari.password_file, or %s)", envName("asterisk.ari.password"))
	}
	if !namePattern.MatchString(c.Asterisk.ARI.App) {
		add("asterisk.ari.app", "%q must be letters, digits, '-' or '_'", c.Asterisk.ARI.App)
	}
	positive("asterisk.ari.request_timeout", c.Asterisk.ARI.RequestTimeout)
	if c.Redis.URL != "" {
		if _, err := redis.ParseURL(string(c.Redis.URL)); err != nil {
			add("redis.url", "not a redis:// URL: %v", redactURLError(err))
		}
	} else if c.Store.SnapshotPath != "" {
		positive("store.snapshot_interval", c.Store.SnapshotInterval)
	}
	positive("redis.dial_timeout", c.Redis.DialTimeout)
	positive("redis.read_timeout", c.Redis.ReadTimeout)
	positive("redis.write_timeout", c.Redis.WriteTimeout)
	if err := checkHostPort(c.HTTP.Listen); err != nil {
		add("http.listen", "%v", err)
	}
	positive("shutdown_timeout", c.ShutdownTimeout)
	positive("reconcile.interval", c.Reconcile.Interval)
	policies := c.Reconcile.Policy.Policies()
	for _, kind := range presence.DriftKinds() {
		switch pol := policies[kind]; pol {
		case presence.PolicyEnforce, presence.PolicyReport, presence.PolicyAdopt:
		default:
			add("reconcile.policy."+string(kind), "%q is not enforce, report or adopt", pol)
		}
	}
	if c.API.MaxBodyBytes < 1024 {
		add("api.max_body_bytes", "%d is too small (at least 1024)", c.API.MaxBodyBytes)
	}
	if c.FeatureCodes.PINAttempts < 1 {
		add("feature_codes.pin_attempts", "%d must be at least 1", c.FeatureCodes.PINAttempts)
	}
	positive("feature_codes.lockout", c.FeatureCodes.Lockout)
	positive("feature_codes.first_digit_timeout", c.FeatureCodes.FirstDigitTimeout)
	positive("feature_codes.digit_timeout", c.FeatureCodes.DigitTimeout)
	for i, name := range c.FeatureCodes.TrustedContexts {
		if err := featurecode.CheckContext(name); err != nil {
			add(fmt.Sprintf("feature_codes.trusted_contexts[%d]", i), "%v", err)
		}
	}
	var verr *presence.ValidationError
	if err := c.Asterisk.Naming.Validate(); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			problems = append(problems, "asterisk."+p)
		}
	}
	catalog, err := presence.NewCatalog(c.Users, c.Profiles)
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
	positive("triggers.tick", c.Triggers.Tick)
	if catalog != nil {
		if err := trigger.Check(catalog, c.Schedules, c.Holidays); errors.As(err, &verr) {
			problems = append(problems, verr.Problems...)
		} else if err != nil {
			problems = append(problems, err.Error())
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
