package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/ari"
	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/missedcalls"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// envPrefix prefixes the environment variables that override configuration keys:
// asterisk.ami.secret is PRESENCED_ASTERISK_AMI_SECRET.
const envPrefix = "PRESENCED"

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
		"asterisk.ari.max_connections":             ari.DefaultMaxConnections,
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
