package main

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCheck watches what the daemon's JSON log handler (newLogger) receives and writes: a
// time.Duration must reach JSON as a string, never as a number of nanoseconds, wherever it is
// (an attribute, a group, a field of a struct logged with slog.Any); no line may hold a key
// twice; a number under a key that names a duration is suspect too.
type logCheck struct {
	t testing.TB

	mu        sync.Mutex // held by durationWatch.Handle across the JSON handler's write
	pending   []string   // the dotted keys of the record being written that hold durations
	problems  []string
	lines     int
	durations int // duration values found written as strings
}

// logger is newLogger's JSON logger at level debug, writing through c.
func (c *logCheck) logger() *slog.Logger {
	next := newLogger(LogConfig{Level: "debug", Format: "json"}, c).Handler()
	return slog.New(&durationWatch{next: next, c: c})
}

func (c *logCheck) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Write takes one line of the JSON handler (c.mu held by durationWatch.Handle).
func (c *logCheck) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	c.lines++
	c.t.Log(line)
	flat, err := flatJSON(line)
	if err != nil {
		c.problem("%v: %s", err, line)
		return len(p), nil
	}
	for _, k := range c.pending {
		switch v, ok := flat[k]; {
		case !ok:
			c.problem("the duration %s is not in the line: %s", k, line)
		case isNumber(v):
			c.problem("the duration %s is a bare number: %s", k, line)
		default:
			if s, ok := v.(string); !ok {
				c.problem("the duration %s is %T: %s", k, v, line)
			} else if _, err := time.ParseDuration(s); err != nil {
				c.problem("the duration %s is %q, not a Go duration: %s", k, s, line)
			} else {
				c.durations++
			}
		}
	}
	for k, v := range flat {
		if isNumber(v) && durationName(k) {
			c.problem("%s is a number, and its name says duration: %s", k, line)
		}
	}
	return len(p), nil
}

func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

// durationName reports whether a log key names a duration.
func durationName(k string) bool {
	base := k[strings.LastIndex(k, ".")+1:]
	for _, d := range []string{"took", "duration", "timeout", "budget", "elapsed", "backoff", "delay", "interval",
		"retry_after", "lease", "ttl", "age", "wait", "latency"} {
		if base == d || strings.HasSuffix(base, "_"+d) {
			return true
		}
	}
	return false
}

// durationWatch is a slog.Handler in front of the daemon's JSON handler: it notes the keys of
// each record that hold a time.Duration (for logCheck.Write to find them in the line), and
// reports durations inside values the JSON handler encodes with encoding/json.
type durationWatch struct {
	next   slog.Handler
	c      *logCheck
	prefix string   // the groups opened by WithGroup, dotted
	with   []string // keys of WithAttrs attributes holding durations
}

func (h *durationWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *durationWatch) Handle(ctx context.Context, r slog.Record) error {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	keys := slices.Clone(h.with)
	r.Attrs(func(a slog.Attr) bool {
		keys = h.c.collect(h.prefix, a, keys, r.Message)
		return true
	})
	h.c.pending = keys
	defer func() { h.c.pending = nil }()
	return h.next.Handle(ctx, r)
}

func (h *durationWatch) WithAttrs(attrs []slog.Attr) slog.Handler {
	with := slices.Clone(h.with)
	h.c.mu.Lock()
	for _, a := range attrs {
		with = h.c.collect(h.prefix, a, with, "(With)")
	}
	h.c.mu.Unlock()
	return &durationWatch{next: h.next.WithAttrs(attrs), c: h.c, prefix: h.prefix, with: with}
}

func (h *durationWatch) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &durationWatch{next: h.next.WithGroup(name), c: h.c, prefix: h.prefix + name + ".", with: slices.Clone(h.with)}
}

// collect appends the dotted keys of a that hold durations (c.mu held).
func (c *logCheck) collect(prefix string, a slog.Attr, keys []string, msg string) []string {
	v := a.Value.Resolve()
	key := prefix + a.Key
	switch v.Kind() {
	case slog.KindDuration:
		keys = append(keys, key)
	case slog.KindGroup:
		sub := prefix
		if a.Key != "" {
			sub = key + "."
		}
		for _, g := range v.Group() {
			keys = c.collect(sub, g, keys, msg)
		}
	case slog.KindAny:
		if path, ok := durationInside(reflect.ValueOf(v.Any()), key, 0); ok {
			c.problem("%q: %s holds a time.Duration that encoding/json writes as nanoseconds", msg, path)
		}
	}
	return keys
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	errorType     = reflect.TypeFor[error]()
	durationType  = reflect.TypeFor[time.Duration]()
)

// durationInside finds a time.Duration that encoding/json would write as a number in v.
func durationInside(v reflect.Value, path string, depth int) (string, bool) {
	if !v.IsValid() || depth > 8 {
		return "", false
	}
	t := v.Type()
	if t == durationType {
		return path, true
	}
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) || t.Implements(errorType) {
		return "", false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return durationInside(v.Elem(), path, depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" || strings.Contains(tag, ",string") {
				continue
			}
			if p, ok := durationInside(v.Field(i), path+"."+f.Name, depth+1); ok {
				return p, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range min(v.Len(), 20) {
			if p, ok := durationInside(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1); ok {
				return p, true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if p, ok := durationInside(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k), depth+1); ok {
				return p, true
			}
		}
	}
	return "", false
}

// flatJSON reads one JSON object and returns its scalar values by dotted key, failing on a key
// that appears twice in an object.
func flatJSON(line string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	out := map[string]any{}
	var object func(prefix string) error
	var skip func() error
	skip = func() error {
		for depth := 1; depth > 0; {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			switch t {
			case json.Delim('['), json.Delim('{'):
				depth++
			case json.Delim(']'), json.Delim('}'):
				depth--
			}
		}
		return nil
	}
	object = func(prefix string) error {
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key := tok.(string)
			if seen[key] {
				return fmt.Errorf("key %q twice", prefix+key)
			}
			seen[key] = true
			if tok, err = dec.Token(); err != nil {
				return err
			}
			switch tok {
			case json.Delim('{'):
				err = object(prefix + key + ".")
			case json.Delim('['):
				err = skip()
			default:
				out[prefix+key] = tok
			}
			if err != nil {
				return err
			}
		}
		_, err := dec.Token() // the closing brace
		return err
	}
	return out, object("")
}

// TestLogCheckFindsWhatItLooksFor: the check of the JSON log reports a duration written as
// a number (inside a struct, as the JSON handler encodes it), a key twice, a number under a
// duration's name, and passes durations as Go duration strings.
func TestLogCheckFindsWhatItLooksFor(t *testing.T) {
	c := &logCheck{t: t}
	log := c.logger()
	log.Info("fine", "took", 1500*time.Millisecond, slog.Group("g", "wait", time.Second))
	log.With("budget", time.Minute).Info("fine too")
	if len(c.problems) != 0 || c.durations != 3 {
		t.Fatalf("problems %q, %d durations, want none and 3", c.problems, c.durations)
	}
	log.Info("struct", "opts", struct{ Timeout time.Duration }{time.Second})
	log.Info("twice", "component", "a", "component", "b")
	log.Info("number", "retry_after", 3)
	if len(c.problems) != 3 || !strings.Contains(c.problems[0], "opts.Timeout") ||
		!strings.Contains(c.problems[1], `key "component" twice`) || !strings.Contains(c.problems[2], "retry_after is a number") {
		t.Fatalf("problems %q", c.problems)
	}
}

// TestJSONLogDurationsAndKeys runs presenced against the lab with its JSON log (newLogger)
// behind logCheck, through switches that call webhooks (one answering, one too slow), a
// configuration reload, a reconcile and the shutdown: no line holds a key twice, no duration
// reaches the log as a number.
func TestJSONLogDurationsAndKeys(t *testing.T) {
	var calls sync.WaitGroup
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer ok.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		defer calls.Done()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	yaml := fixture(t, "config/end-to-end.yaml", nil) + `  - id: hooked
    name: Hooked
    activation: "8"
    on_enter:
      - {action: webhook, url: "` + ok.URL + `/switch", timeout: 1s}
      - {action: webhook, url: "` + slow.URL + `/slow", timeout: 200ms}
`
	cfg, path := profileConfigFile(t, yaml)
	c := &logCheck{t: t}
	d := startDaemonLogging(t, cfg, c.logger())
	d.waitReady(t, 15*time.Second)

	admin := testToken("admin")
	for _, p := range []string{"hooked", "lunch", "available"} {
		if code, ans := d.call(t, http.MethodPut, "/api/v1/users/alice/profile", admin, map[string]string{"profile": p}); code != http.StatusOK {
			t.Fatalf("switch alice to %s: %d %v", p, code, ans)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Replace(yaml, "name: Hooked", "name: Hooked again", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, ans := d.reload(t, admin); code != http.StatusOK {
		t.Fatalf("reload: %d %v", code, ans)
	}
	if code, ans := d.call(t, http.MethodPost, "/api/v1/users/carol/reconcile", admin, nil); code != http.StatusOK {
		t.Fatalf("reconcile carol: %d %v", code, ans)
	}
	d.stop(t)
	calls.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Error(p)
	}
	if c.durations == 0 {
		t.Errorf("%d lines, none with a duration: the check looked at nothing", c.lines)
	}
	t.Logf("%d lines, %d durations written as Go durations", c.lines, c.durations)
}
