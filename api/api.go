// Package api serves presenced's REST API under /api/v1: switching profiles (and previewing a
// switch, also to a personal profile as edited, unsaved), a user's status with desired and observed PBX state and the drift between them,
// personal profiles, everyone's presence, the journal, timed profiles ("until") and external
// triggers (with package trigger), and the API's own OpenAPI description.
//
// Requests authenticate with "Authorization: Bearer <token>" (tokens the configuration holds
// as they are) or HTTP Basic auth with the user id, extension or "admin" and the token (every
// token, and the only way for tokens given as hashes): the admin token may act on every user,
// a user's token (presence.User.Token, TokenHash) only on that user. A client address with too
// many failed authentications is refused for a while (package internal/throttle). Bodies and
// answers are JSON; errors are {"error": "...", "field": "..."} with the status codes
// openapi.json lists:
//
//	400 the body is not a JSON object, is malformed, has an unknown field or a value of the wrong
//	    type, or a query parameter is invalid
//	401 no or an invalid token (with WWW-Authenticate: Bearer, or Basic after a failed Basic)
//	403 a user's token acting on another user; changing a system-wide profile
//	404 unknown user, profile or path
//	405 a method the path does not serve (with Allow)
//	409 changing or deleting the active profile
//	413 a body larger than Options.MaxBodyBytes
//	422 a well-formed request whose values are invalid (presence.ValidationError), naming the field
//	429 too many failed authentications from the client's address (with Retry-After), answered
//	    before any credential is verified
//	503 the state store is unavailable: down, unreachable, not answering in time, loading its
//	    data, read-only, or holding a schema this presenced does not understand
//	    ({"error": "state store unavailable: <reason>"}, with Retry-After); or the trigger
//	    endpoint of an API built without the trigger scheduler
//	500 unreadable Redis data (the message names the key) or an internal error; the message of
//	    any other internal error is logged, not answered
//
// A user's schedule: GET /users/{user}/schedule (the inherited entries, the user's own, the
// coming week, the time zones), PATCH /users/{user}/schedule (the time zone the user's own
// entries run in), PUT and DELETE /users/{user}/schedule/{name} (the user's own entries).
//
// The web app's passwords (package account): PUT /users/{user}/password sets the user's
// password (a user's token must give the current one, the admin's need not), POST
// /users/{user}/password-link (admin only) makes a one-time set-password link, and the public
// POST /password spends one.
//
// GET /users (admin token only) is every user's presence with what the engine's last look at
// their PBX found (in sync, reported drift, on a call), filtered as the web app's admin page
// filters it.
//
// GET /instance (admin token only) is this instance's health: its id and version, whether it
// leads or stands by, the leader it knows of, and its readiness checks (what the web app's
// admin page shows).
//
// GET /events streams, as Server-Sent Events, every change of anyone's entry of GET /presence
// as the token may see it (event "presence": {"user", "entry", "html"}; "reload" when the
// client fell behind): what the web app's pages are updated by.
//
// GET /presence is open to every valid token. A user whose active profile is private shows to
// colleagues only as the presence state and its neutral text; the user and the admin see it
// all. A user whose record cannot be read is left out of it rather than failing it.
//
// A request whose client went away is counted with status 499, as nginx does.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// Prefix is the path every endpoint of the API starts with.
const Prefix = "/api/v1"

// AdminActor is the actor the journal records for switches made with the admin token.
const AdminActor = "admin"

// DefaultMaxBodyBytes bounds request bodies when Options.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 64 << 10

// Options configures a Handler.
type Options struct {
	// Engine does the work; required.
	Engine *presence.Engine
	// AdminToken may act on every user. Empty disables admin access, unless AdminTokenHash is
	// set: an argon2id or bcrypt hash of the admin token (package internal/secret), presented
	// with Basic auth as user "admin". At most one of the two.
	AdminToken     string
	AdminTokenHash string
	// Throttle counts failed authentications per client address and refuses an address it
	// blocks (429) before verifying anything; nil means one in this process's memory with
	// throttle.DefaultOptions().
	Throttle *throttle.Limiter
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client address
	// (throttle.ClientAddr); empty means the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds request bodies; larger ones get 413. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives request errors and recovered panics; nil discards them.
	Logger *slog.Logger
	// Triggers serves timed profiles ("until"), external triggers and the "why" of GET user;
	// nil disables them ("until" is refused, the trigger endpoint answers 503).
	Triggers *trigger.Scheduler
	// Calendars serves GET /users/{user}/calendar (package calendar); nil answers it 503.
	Calendars *calendar.Connector
	// Events, when set, streams the live updates (GET /events) to a caller as the viewer may
	// see them (viewer empty for the admin token); nil answers 503. The web app serves it
	// (web.Handler.Stream).
	Events func(w http.ResponseWriter, r *http.Request, viewer presence.UserID, admin bool)
	// Accounts serves the web app's passwords (PUT /users/{user}/password, set-password links);
	// nil answers them 503.
	Accounts *account.Service
	// Instance, when set, serves GET /instance: this instance's role, its leader and its
	// readiness, as the daemon knows them; nil answers it 503.
	Instance func(ctx context.Context) Instance
	// Now is the clock "until" is measured from; nil means time.Now.
	Now func() time.Time
	// Version is presenced's version, the info.version of the OpenAPI document it serves;
	// empty serves the document's own ("dev").
	Version string
	// Registerer receives presenced_api_requests_total{route,code},
	// presenced_api_request_duration_seconds{route}, presenced_api_auth_failures_total{reason},
	// presenced_api_throttled_total and presenced_api_hash_verifications_total; nil leaves
	// them unregistered.
	Registerer prometheus.Registerer
}

// Handler serves the /api/v1/ subtree; mount it as mux.Handle("/api/v1/", h). It serves
// requests concurrently; its only mutable state is the cache of credentials verified against
// hashes and the throttle's counters. The tokens are read from the engine's catalog when New
// runs; SetCredentials reads them again after a reload.
type Handler struct {
	engine   *presence.Engine
	triggers *trigger.Scheduler
	// calendars is Options.Calendars.
	calendars *calendar.Connector
	accounts  *account.Service
	events    func(w http.ResponseWriter, r *http.Request, viewer presence.UserID, admin bool)
	health    func(ctx context.Context) Instance
	now       func() time.Time
	creds     atomic.Pointer[credentials]
	throttle  *throttle.Limiter
	proxies   []netip.Prefix
	maxBody   int64
	log       *slog.Logger
	metrics   *metrics
	routes    []route
	mux       *http.ServeMux
	document  []byte // the OpenAPI document served
}

// access says who may call an endpoint.
type access int

const (
	accessPublic access = iota // no token needed
	accessAny                  // any valid token
	accessUser                 // the admin token, or the token of the user the path names
	accessAdmin                // the admin token only
)

// route is one endpoint: its method and path pattern, who may call it, and what it does.
type route struct {
	method, path string
	access       access
	handle       func(w http.ResponseWriter, r *http.Request, c caller) error
}

// pattern is the ServeMux pattern of the route, which is also its metrics label.
func (rt route) pattern() string { return rt.method + " " + rt.path }

// New checks the options and returns the API handler.
func New(opts Options) (*Handler, error) {
	if opts.Engine == nil {
		return nil, errors.New("api: Options.Engine is required")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api: Options.MaxBodyBytes must not be negative, got %d", opts.MaxBodyBytes)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	creds, err := newCredentials(opts.AdminToken, opts.AdminTokenHash, opts.Engine.Catalog().Users)
	if err != nil {
		return nil, err
	}
	document, err := documentFor(opts.Version)
	if err != nil {
		return nil, err
	}
	if opts.Throttle == nil {
		if opts.Throttle, err = throttle.New(throttle.DefaultOptions()); err != nil {
			return nil, err
		}
	}
	h := &Handler{
		engine:    opts.Engine,
		triggers:  opts.Triggers,
		calendars: opts.Calendars,
		accounts:  opts.Accounts,
		events:    opts.Events,
		health:    opts.Instance,
		now:       opts.Now,
		throttle:  opts.Throttle,
		proxies:   opts.TrustedProxies,
		maxBody:   opts.MaxBodyBytes,
		log:       opts.Logger.With("component", "api"),
		mux:       http.NewServeMux(),
		document:  document,
	}
	h.routes = []route{
		{http.MethodPut, Prefix + "/users/{user}/profile", accessUser, h.switchProfile(false)},
		{http.MethodPost, Prefix + "/users/{user}/profile/preview", accessUser, h.switchProfile(true)},
		{http.MethodGet, Prefix + "/users/{user}", accessUser, h.userStatus},
		{http.MethodGet, Prefix + "/users/{user}/profiles", accessUser, h.listProfiles},
		{http.MethodGet, Prefix + "/users/{user}/profiles/{id}", accessUser, h.getProfile},
		{http.MethodPut, Prefix + "/users/{user}/profiles/{id}", accessUser, h.putProfile},
		{http.MethodDelete, Prefix + "/users/{user}/profiles/{id}", accessUser, h.deleteProfile},
		{http.MethodPost, Prefix + "/users/{user}/profiles/{id}/preview", accessUser, h.previewProfile},
		{http.MethodGet, Prefix + "/users/{user}/journal", accessUser, h.journal},
		{http.MethodPost, Prefix + "/users/{user}/reconcile", accessUser, h.reconcile},
		{http.MethodPost, Prefix + "/users/{user}/triggers/{name}", accessUser, h.externalTrigger},
		{http.MethodGet, Prefix + "/users/{user}/schedule", accessUser, h.getSchedule},
		{http.MethodGet, Prefix + "/users/{user}/calendar", accessUser, h.calendarStatus},
		{http.MethodPatch, Prefix + "/users/{user}/schedule", accessUser, h.patchSchedule},
		{http.MethodPut, Prefix + "/users/{user}/schedule/{name}", accessUser, h.putSchedule},
		{http.MethodDelete, Prefix + "/users/{user}/schedule/{name}", accessUser, h.deleteSchedule},
		{http.MethodPut, Prefix + "/users/{user}/password", accessUser, h.setPassword},
		{http.MethodPost, Prefix + "/users/{user}/password-link", accessUser, h.passwordLink},
		{http.MethodPost, Prefix + "/password", accessPublic, h.useLink},
		{http.MethodGet, Prefix + "/presence", accessAny, h.everyone},
		{http.MethodGet, Prefix + "/events", accessAny, h.stream},
		{http.MethodGet, Prefix + "/users", accessAny, h.overview},
		{http.MethodGet, Prefix + "/instance", accessAny, h.instance},
		{http.MethodGet, Prefix + "/openapi.json", accessPublic, h.openAPI},
	}
	labels := []string{"/"}
	allowed := map[string][]string{} // path → methods, for 405 answers
	var paths []string
	for _, rt := range h.routes {
		h.mux.Handle(rt.pattern(), h.endpoint(rt))
		labels = append(labels, rt.pattern())
		if _, seen := allowed[rt.path]; !seen {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead) // ServeMux serves HEAD with GET
		}
	}
	for _, p := range paths {
		h.mux.Handle(p, h.instrument(p, methodNotAllowed(allowed[p])))
		labels = append(labels, p)
	}
	h.mux.Handle("/", h.instrument("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, &apiError{status: http.StatusNotFound, msg: "no such endpoint: " + r.URL.Path})
	}))
	h.metrics = newMetrics(opts.Registerer, labels)
	creds.verified = h.metrics.hashVerifications.Inc
	h.creds.Store(creds)
	return h, nil
}

// SetCredentials puts the admin token (or its hash) and the tokens of the users of the
// engine's catalog in force, after a configuration reload replaced them: a removed user's
// token no longer works. On an error nothing changes.
func (h *Handler) SetCredentials(adminToken, adminTokenHash string) error {
	creds, err := newCredentials(adminToken, adminTokenHash, h.engine.Catalog().Users)
	if err != nil {
		return err
	}
	creds.verified = h.metrics.hashVerifications.Inc
	h.creds.Store(creds)
	return nil
}

// Admin wraps next (an endpoint outside the /api/v1/ subtree, such as the daemon's
// POST /-/reload) so that only the admin token may call it, authenticated, throttled and
// counted like the API's own endpoints under label.
func (h *Handler) Admin(method, label string, next http.HandlerFunc) http.Handler {
	rt := route{method: method, path: label, access: accessAdmin, handle: func(w http.ResponseWriter, r *http.Request, _ caller) error {
		next(w, r)
		return nil
	}}
	return h.endpoint(rt)
}

// ServeHTTP serves one API request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// endpoint wraps a route with metrics, panic recovery and authorisation.
func (h *Handler) endpoint(rt route) http.Handler {
	return h.instrument(rt.pattern(), func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authorize(r, rt)
		if err == nil {
			err = rt.handle(w, r, c)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	})
}

// methodNotAllowed answers 405 with Allow for a path served with other methods.
func methodNotAllowed(methods []string) http.HandlerFunc {
	allow := strings.Join(slices.Sorted(slices.Values(methods)), ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{
			Error: fmt.Sprintf("method %s not allowed; allowed: %s", r.Method, allow),
		})
	}
}

// instrument counts and times a request under the route label, and turns a panic into a
// logged 500.
func (h *Handler) instrument(label string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v != nil && v != http.ErrAbortHandler { // net/http compares it so too
				h.log.Error("handler panicked", "route", label, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.wrote {
					writeJSON(sw, http.StatusInternalServerError, errorBody{Error: "internal error"})
				}
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			h.metrics.observe(label, code, time.Since(start))
			h.log.Debug("request", "route", label, "method", r.Method, "path", r.URL.Path, "code", code,
				"duration", time.Since(start))
			if v == http.ErrAbortHandler {
				panic(v)
			}
		}()
		next(sw, r)
	})
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
