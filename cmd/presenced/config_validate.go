package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/ari/featurecode"
	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
	"github.com/presenced/presenced/web/icon"
)

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
