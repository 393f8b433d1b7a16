package main

import (
	"fmt"
	"strings"
	"time"
)

// durationLimit is the range an interval or timeout of the configuration must lie in: the
// minimum protects Asterisk, Redis or presenced from a value that is too small (a check every
// nanosecond), the maximum catches a typo (a unit too large).
type durationLimit struct {
	key      string
	value    time.Duration
	min, max time.Duration
	// why, when set, says what the minimum protects.
	why string
}

// numberLimit is the range of a numeric configuration value.
type numberLimit struct {
	key      string
	value    int64
	min, max int64
}

// minOtherConnections is how many of http.max_connections http.max_event_streams must leave
// to the API and the page loads.
const minOtherConnections = 4

// minEngineShutdown is the least of shutdown_timeout the engine's stage must be left with once
// the HTTP stage and the final snapshot have their budgets (daemon.shutdown).
const minEngineShutdown = time.Second

// embeddedSnapshots reports whether the embedded store is used and written to a file, so that
// its snapshot keys matter.
func (c *Config) embeddedSnapshots() bool {
	return c.Redis.embedded() && c.Store.SnapshotPath != ""
}

// limits lists every interval, timeout and number of the configuration with its range.
func (c *Config) limits() ([]durationLimit, []numberLimit) {
	const (
		ms     = time.Millisecond
		sec    = time.Second
		minute = time.Minute
		hr     = time.Hour
	)
	durations := []durationLimit{
		{"asterisk.ami.dial_timeout", c.Asterisk.AMI.DialTimeout, 500 * ms, minute, ""},
		{"asterisk.ami.ping_interval", c.Asterisk.AMI.PingInterval, sec, 5 * minute, "every ping is an AMI action"},
		{"asterisk.ami.backoff_max", c.Asterisk.AMI.BackoffMax, sec, 10 * minute, "every reconnect is a login to Asterisk"},
		{"asterisk.ari.request_timeout", c.Asterisk.ARI.RequestTimeout, 500 * ms, minute, ""},
		{"redis.dial_timeout", c.Redis.DialTimeout, 100 * ms, minute, ""},
		{"redis.read_timeout", c.Redis.ReadTimeout, 100 * ms, minute, ""},
		{"redis.write_timeout", c.Redis.WriteTimeout, 100 * ms, minute, ""},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout, sec, 5 * minute, ""},
		{"http.read_timeout", c.HTTP.ReadTimeout, sec, 10 * minute, ""},
		{"http.write_timeout", c.HTTP.WriteTimeout, 15 * sec, hr, "an API switch reads the PBX for up to 10s"},
		{"http.idle_timeout", c.HTTP.IdleTimeout, sec, hr, ""},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout, sec, 5 * minute, ""},
		{"shutdown_timeout", c.ShutdownTimeout, 3 * sec, 10 * minute, ""},
		{"reconcile.interval", c.Reconcile.Interval, 10 * sec, 24 * hr, "a full reconcile reads every user's state from Asterisk"},
		{"feature_codes.lockout", c.FeatureCodes.Lockout, minute, 24 * hr, "it is what makes guessing PINs slow"},
		{"feature_codes.first_digit_timeout", c.FeatureCodes.FirstDigitTimeout, sec, minute, ""},
		{"feature_codes.digit_timeout", c.FeatureCodes.DigitTimeout, sec, 30 * sec, ""},
		{"web.session_idle", c.Web.SessionIdle, minute, 24 * hr, ""},
		{"web.session_max", c.Web.SessionMax, minute, 30 * 24 * hr, ""},
		{"web.lockout", c.Web.Lockout, minute, 24 * hr, "it is what makes guessing passwords slow"},
		{"triggers.tick", c.Triggers.Tick, 100 * ms, minute, "every tick reads the due triggers from the store"},
		{"calendar.poll_interval", c.Calendar.PollInterval, 10 * sec, 24 * hr, "every poll reads every calendar"},
		{"calendar.horizon", c.Calendar.Horizon, hr, 62 * 24 * hr, ""},
		{"triggers.external_max_duration", c.Triggers.ExternalMaxDuration, minute, 7 * 24 * hr, "an external trigger whose end never comes holds the user this long"},
		{"leader.lease", c.Leader.Lease, sec, minute, "the leader renews it several times per lease"},
		{"dnd_key.window", c.DNDKey.Window, minute, 24 * hr, ""},
	}
	if c.embeddedSnapshots() {
		durations = append(durations,
			durationLimit{"store.snapshot_interval", c.Store.SnapshotInterval, sec, hr, "every snapshot reads the whole store"},
			durationLimit{"store.snapshot_timeout", c.Store.SnapshotTimeout, sec, 5 * minute, ""},
		)
	}
	if c.Redis.Sentinel.enabled() {
		durations = append(durations, durationLimit{"redis.sentinel.wait_timeout", c.Redis.Sentinel.WaitTimeout, 10 * ms, 30 * sec,
			"replicas on the same network confirm a write in about a millisecond"})
	}
	numbers := []numberLimit{
		{"api.max_body_bytes", c.API.MaxBodyBytes, 1 << 10, 8 << 20},
		{"asterisk.ami.write_sessions", int64(c.Asterisk.AMI.WriteSessions), 1, 16},
		{"asterisk.ari.max_connections", int64(c.Asterisk.ARI.MaxConnections), 1, 1000},
		{"feature_codes.pin_attempts", int64(c.FeatureCodes.PINAttempts), 1, 20},
		{"web.password_attempts", int64(c.Web.PasswordAttempts), 1, 20},
		{"http.max_connections", int64(c.HTTP.MaxConnections), 8, 65536},
		{"http.max_header_bytes", int64(c.HTTP.MaxHeaderBytes), 4 << 10, 1 << 20},
		{"dnd_key.switches", int64(c.DNDKey.Switches), 1, 1000},
	}
	if c.Redis.Sentinel.enabled() {
		numbers = append(numbers,
			numberLimit{"redis.db", int64(c.Redis.DB), 0, 1 << 16},
			numberLimit{"redis.sentinel.wait_replicas", int64(c.Redis.Sentinel.WaitReplicas), 0, 16})
	}
	return durations, numbers
}

// limitProblems checks every interval, timeout and number against its range, and the stages
// of the shutdown against shutdown_timeout. Each problem names its key and the allowed range.
func (c *Config) limitProblems() []string {
	var problems []string
	durations, numbers := c.limits()
	for _, l := range durations {
		if l.value < l.min || l.value > l.max {
			p := fmt.Sprintf("%s: %s is out of range (allowed %s to %s", l.key, formatDuration(l.value), formatDuration(l.min), formatDuration(l.max))
			if l.why != "" && l.value < l.min {
				p += ": " + l.why
			}
			problems = append(problems, p+")")
		}
	}
	for _, l := range numbers {
		if l.value < l.min || l.value > l.max {
			problems = append(problems, fmt.Sprintf("%s: %d is out of range (allowed %d to %d)", l.key, l.value, l.min, l.max))
		}
	}
	if c.HTTP.ReadTimeout < c.HTTP.ReadHeaderTimeout {
		problems = append(problems, fmt.Sprintf("http.read_timeout: %s is shorter than http.read_header_timeout %s (it bounds the headers and the body)",
			formatDuration(c.HTTP.ReadTimeout), formatDuration(c.HTTP.ReadHeaderTimeout)))
	}
	if n := c.HTTP.MaxEventStreams; n != 0 && (n < 1 || n > c.HTTP.MaxConnections-minOtherConnections) {
		problems = append(problems, fmt.Sprintf("http.max_event_streams: %d is out of range (allowed 1 to http.max_connections %d minus %d, "+
			"which the API and the pages keep; 0 for all but %d)", n, c.HTTP.MaxConnections, minOtherConnections, eventStreamsReserve))
	}
	if c.Web.SessionMax < c.Web.SessionIdle {
		problems = append(problems, fmt.Sprintf("web.session_max: %s is shorter than web.session_idle %s",
			formatDuration(c.Web.SessionMax), formatDuration(c.Web.SessionIdle)))
	}
	if engine := c.engineShutdownBudget(); engine < minEngineShutdown {
		others := "http.shutdown_timeout " + formatDuration(c.HTTP.ShutdownTimeout)
		if c.embeddedSnapshots() {
			others += " and store.snapshot_timeout " + formatDuration(c.Store.SnapshotTimeout)
		}
		problems = append(problems, fmt.Sprintf("shutdown_timeout: %s leaves the engine %s after %s, less than the %s it needs (raise shutdown_timeout or lower the others)",
			formatDuration(c.ShutdownTimeout), formatDuration(max(engine, 0)), others, formatDuration(minEngineShutdown)))
	}
	return problems
}

// engineShutdownBudget is the engine's part of shutdown_timeout: what the HTTP stage and the
// final snapshot of the embedded store leave.
func (c *Config) engineShutdownBudget() time.Duration {
	d := c.ShutdownTimeout - c.HTTP.ShutdownTimeout
	if c.embeddedSnapshots() {
		d -= c.Store.SnapshotTimeout
	}
	return d
}

// formatDuration writes d as an admin would: 5m rather than 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
