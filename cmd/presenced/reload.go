package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/presenced/presenced/presence"
)

// A reload (SIGHUP, or POST /-/reload with the admin token) reads the configuration again
// from where the daemon read it at start (the same -config file and flags, the environment
// the process was started with, the secret files), validates all of it and then puts in
// force what can change while presenced runs. A configuration that does not validate changes
// nothing: the error is logged and answered, and presenced_config_last_reload_successful is 0
// until a reload succeeds. Each instance reloads its own file; only the leader's engine acts on
// the PBX for it (presence/reload.go).

// hotKeys are the configuration keys (and key prefixes) a reload puts in force at once; a
// change of any other key is reported as needing a restart.
var hotKeys = []string{"users", "profiles", "schedules", "holidays", "personal_profiles", "hot_desks", "limits",
	"calendar", "unanswered_calls", "api.admin_token", "api.admin_token_file", "api.admin_token_hash"}

// reloadResult is the answer of a reload: what changed, and what still needs a restart.
type reloadResult struct {
	Status string `json:"status"` // "ok" or "error"
	Error  string `json:"error,omitempty"`
	presence.CatalogChanges
	// RestartNeeded are the keys whose change takes effect only at the next start (connection
	// settings, listeners, timeouts): the reload did not apply them.
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// reloadMetrics are presenced_config_last_reload_successful and
// presenced_config_last_reload_success_timestamp_seconds, as Prometheus names them.
type reloadMetrics struct {
	ok   prometheus.Gauge
	when prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		ok: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "presenced_config_last_reload_successful",
			Help: "1 when the last configuration reload succeeded (or none was tried since the start), 0 when it failed and the configuration before it stays in force.",
		}),
		when: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "presenced_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully (the start, or a reload), Unix seconds.",
		}),
	}
	m.ok.Set(1)
	m.when.SetToCurrentTime()
	return m
}

// reload reads, validates and applies the configuration again; see the comment above.
func (d *daemon) reload(ctx context.Context) reloadResult {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	defer d.notifyReload()()
	fail := func(err error) reloadResult {
		d.reloads.ok.Set(0)
		d.log.Error("configuration reload failed; the configuration in force is kept", "err", err)
		return reloadResult{Status: "error", Error: err.Error()}
	}
	if d.cfg.reload == nil {
		return fail(errors.New("this daemon was started without a configuration to read again"))
	}
	cfg, err := d.cfg.reload()
	if err != nil {
		return fail(err)
	}
	cur := d.applied
	restart := restartNeeded(cur, cfg)
	// The calendars first: their sources' credential files are read now, and one that cannot
	// be read changes nothing at all.
	if err := d.cal.Reconfigure(cfg.catalog, cfg.Calendar.Rules, cfg.Calendar.PollInterval, cfg.Calendar.Horizon); err != nil {
		return fail(fmt.Errorf("calendar: %w", err))
	}
	// Everything is checked: from here on nothing fails but what the validation rules out.
	ch := d.engine.SetCatalog(cfg.catalog)
	var errs []error
	if err := d.missed.SetRules(cfg.UnansweredCalls.rules()); err != nil {
		errs = append(errs, fmt.Errorf("unanswered_calls: %w", err))
	}
	if err := d.trig.SetSchedules(cfg.Schedules, cfg.Holidays, d.location); err != nil {
		errs = append(errs, fmt.Errorf("schedules: %w", err))
	}
	d.acc.SetCatalog(cfg.catalog)
	if err := d.acc.SetAdmin(string(cfg.API.AdminToken), cfg.API.AdminTokenHash); err != nil {
		errs = append(errs, err)
	}
	if err := d.api.SetCredentials(string(cfg.API.AdminToken), cfg.API.AdminTokenHash); err != nil {
		errs = append(errs, err)
	}
	d.devices.SetDevices(phonesOf(cfg.catalog))
	if d.certs != nil {
		// The certificate files are read again too (a renewal); a pair that does not load
		// leaves the last good one in use.
		if err := d.certs.Reload(); err != nil {
			d.log.Warn("reload: http.tls certificate not read again; the one in use stays", "err", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// Not reached with a validated configuration; the catalog is in force, what failed is not.
		res := fail(fmt.Errorf("configuration partly applied: %w", err))
		res.CatalogChanges = ch
		return res
	}
	d.applied = cfg
	d.reloads.ok.Set(1)
	d.reloads.when.SetToCurrentTime()
	for _, w := range cfg.warnings() {
		d.log.Warn("configuration: " + w)
	}
	d.log.Info("configuration reloaded", "users_added", ch.Added, "users_removed", ch.Removed, "users_changed", ch.Changed,
		"profiles_changed", ch.Profiles, "personal_rules_changed", ch.Rules, "leader", d.engine.Running())
	if len(restart) > 0 {
		d.log.Warn("configuration reload: these settings changed but take effect only after a restart", "keys", restart)
	}
	return reloadResult{Status: "ok", CatalogChanges: ch, RestartNeeded: restart}
}

// serveReload is POST /-/reload: 200 with what changed, or 400 with why nothing did.
func (d *daemon) serveReload(w http.ResponseWriter, r *http.Request) {
	res := d.reload(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if res.Status != "ok" {
		w.WriteHeader(http.StatusBadRequest)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(res)
}

// reloadOnSignal reloads at every signal on sigs until ctx ends.
func (d *daemon) reloadOnSignal(ctx context.Context, sigs <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
			d.log.Info("SIGHUP: reloading the configuration")
			d.reload(ctx)
		}
	}
}

// phonesOf lists the dial strings of every user's devices and of the hot desks users may be
// bound to (whose calls are the bound user's).
func phonesOf(cat *presence.Catalog) []string {
	var phones []string
	for _, u := range cat.Users {
		for _, dev := range u.Devices {
			phones = append(phones, dev.Dial)
		}
	}
	return append(phones, cat.HotDesks()...)
}

// restartNeeded lists the configuration keys, other than hotKeys, whose values differ between
// cur and next. Secret values are compared, never shown.
func restartNeeded(cur, next Config) []string {
	a, b := map[string]any{}, map[string]any{}
	flatten(reflect.ValueOf(cur), "", a)
	flatten(reflect.ValueOf(next), "", b)
	var out []string
	for k, v := range b {
		if isHot(k) {
			continue
		}
		if !reflect.DeepEqual(a[k], v) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func isHot(key string) bool {
	for _, h := range hotKeys {
		if key == h || strings.HasPrefix(key, h+".") {
			return true
		}
	}
	return false
}

// flatten records the leaves of a configuration struct by their dotted keys (mapstructure
// tags); lists are leaves.
func flatten(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			flatten(fv, prefix+name+".", out)
			continue
		}
		out[prefix+name] = fv.Interface()
	}
}
