// Package web serves presenced's web app: people sign in (package account) and switch their
// profile, see their colleagues live, read their journal and change their password; admins
// see and act on everyone. The pages are Go templates and a little hand-written JavaScript,
// embedded in the binary; every form works without JavaScript, which only adds the live
// updates (Server-Sent Events at /events, fed by the state store's change announcements, so a
// switch carried out by any instance shows on every instance's pages).
//
// The pages act only through presenced's engine, its trigger scheduler and the account
// service, exactly as the REST API does (package api), and only on the signed-in user's own
// state, unless they are an admin. Every state-changing request is a POST that carries the
// session's CSRF token; sessions are cookies (HttpOnly, SameSite=Strict, Secure when the
// request came over TLS, directly or through a trusted proxy) naming a session in Redis.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// The cookies the web app sets.
const (
	sessionCookie = "presenced_session"
	signinCookie  = "presenced_signin" // double-submit token of the sign-in form
)

// Health is what the admin page shows of this instance, as the REST API's GET /api/v1/instance
// answers it (api.Instance): its id and version, whether it leads ("leader") or stands by
// ("standby"), the leader it knows of (its id and lease epoch, or a note on why none is known),
// and its readiness checks.
type Health struct {
	Instance    string
	Version     string
	Role        string
	Leader      string
	LeaderEpoch int64
	LeaderNote  string
	Ready       bool
	Checks      map[string]string
}

// Options configures a Handler.
type Options struct {
	Engine   *presence.Engine
	States   *presence.StateStore
	Accounts *account.Service
	// Triggers serves "until" and the why of a status; nil disables "until".
	Triggers *trigger.Scheduler
	// Calendars, when set, feeds the status page's line about the user's calendar
	// (calendar.go): the event now or next, or since when it is unreachable.
	Calendars Calendars
	// Location is the time zone of users without one of their own; nil means time.Local.
	Location *time.Location
	// TrustedProxies may say, in X-Forwarded-Proto, that the client came over TLS, and in
	// X-Forwarded-For who the client is (throttle.ClientAddr).
	TrustedProxies []netip.Prefix
	// Throttle counts failed sign-ins per client address, with the REST API's failed
	// authentications (the same limiter): a blocked address is refused before any password
	// is looked at. Nil: only the per-user lockout of package account.
	Throttle *throttle.Limiter
	// MaxStreams caps the event streams open at once (the pages' /events and the API's
	// GET /api/v1/events, which Stream serves): one more is answered 503 with Retry-After,
	// so that open pages, each holding a connection, cannot take every connection the HTTP
	// server allows (http.max_connections) from the API. Zero means no cap.
	MaxStreams int
	// Health, when set, feeds the admin page's summary of this instance.
	Health func(ctx context.Context) Health
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves the web app at /. It is safe for concurrent use.
type Handler struct {
	opts   Options
	engine *presence.Engine
	acc    *account.Service
	log    *slog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
	mux    *http.ServeMux
	hub    *hub
}

// New checks opts, parses the templates and returns the Handler. Run feeds its live updates.
func New(opts Options) (*Handler, error) {
	if opts.Engine == nil || opts.States == nil || opts.Accounts == nil {
		return nil, errors.New("web: Options.Engine, States and Accounts are required")
	}
	if opts.MaxStreams < 0 {
		return nil, fmt.Errorf("web: Options.MaxStreams must not be negative, got %d", opts.MaxStreams)
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, engine: opts.Engine, acc: opts.Accounts, log: opts.Logger.With("component", "web"),
		now: opts.Now, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	h.hub = newHub(opts.Engine, h.log)
	if err := h.parse(); err != nil {
		return nil, err
	}
	h.hub.row = h.rowHTML
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	h.mux.HandleFunc("GET /signin", h.signinPage)
	h.mux.HandleFunc("POST /signin", h.signin)
	h.mux.HandleFunc("GET /set-password", h.setPasswordPage)
	h.mux.HandleFunc("POST /set-password", h.setPassword)
	h.mux.Handle("POST /signout", h.user(h.signout))
	h.mux.Handle("GET /{$}", h.user(h.statusPage))
	h.mux.Handle("GET /status-card", h.user(h.statusCard))
	h.mux.Handle("POST /switch", h.user(h.switchProfile))
	h.mux.Handle("POST /fix", h.user(h.fix))
	h.mux.Handle("POST /device", h.own(h.setDevice))
	h.mux.Handle("GET /colleagues", h.user(h.colleaguesPage))
	h.mux.Handle("GET /events", h.user(h.events))
	h.mux.Handle("GET /journal", h.user(h.journalPage))
	h.mux.Handle("GET /profiles", h.own(h.profilesPage))
	h.mux.Handle("GET /profiles/{id}", h.own(h.profileEditPage))
	h.mux.Handle("POST /profiles/{id}", h.own(h.profileOp))
	h.mux.Handle("POST /profiles/{id}/delete", h.own(h.deleteProfile))
	h.mux.Handle("GET /schedule", h.own(h.schedulePage))
	h.mux.Handle("POST /schedule", h.own(h.saveSchedule))
	h.mux.Handle("POST /schedule/time-zone", h.own(h.saveTimeZone))
	h.mux.Handle("POST /schedule/{name}/toggle", h.own(h.toggleSchedule))
	h.mux.Handle("POST /schedule/{name}/delete", h.own(h.deleteSchedule))
	h.mux.Handle("GET /password", h.user(h.passwordPage))
	h.mux.Handle("POST /password", h.user(h.changePassword))
	h.mux.Handle("GET /admin", h.user(h.adminPage))
	h.mux.Handle("POST /admin/link", h.user(h.adminLink))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusNotFound, "error", nil, page{Title: "Not found",
			Message: "There is no page at " + r.URL.Path + "."})
	})
	return h, nil
}

// Run feeds the live updates from the state store's change announcements until ctx ends.
func (h *Handler) Run(ctx context.Context) {
	h.hub.run(ctx, h.opts.States.Changes(ctx, h.log))
}

// ServeHTTP serves one request of the web app.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	// A set-password link's token must not leak to other sites; same-origin (not no-referrer)
	// keeps the Origin header of our own forms, which browsers send as "null" under no-referrer.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			h.log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		} else if v != nil {
			panic(v)
		}
	}()
	h.mux.ServeHTTP(w, r)
}

// viewer is the signed-in person of a request.
type viewer struct {
	session *account.Session
	user    *presence.User // nil for the admin signed in with the admin token
	admin   bool
}

// actor is the viewer as the journal records it.
func (v *viewer) actor() string {
	if v.user == nil {
		return account.AdminName
	}
	return string(v.user.ID)
}

type userHandler func(w http.ResponseWriter, r *http.Request, v *viewer)

// user serves signed-in people only: others are sent to the sign-in page (a page) or get 401
// (the event stream). A POST must carry the session's CSRF token and come from this origin.
func (h *Handler) user(next userHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h.viewerOf(r)
		if err != nil {
			if !errors.Is(err, account.ErrNoSession) {
				h.fail(w, r, err)
				return
			}
			if r.Method != http.MethodGet || r.URL.Path == "/events" || r.URL.Path == "/status-card" {
				http.Error(w, "not signed in", http.StatusUnauthorized)
				return
			}
			to := "/signin"
			if r.URL.Path != "/" {
				to += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				h.render(w, r, http.StatusBadRequest, "error", v, page{Title: "Bad request", Message: "The form could not be read."})
				return
			}
			if !sameOrigin(r) || !tokenMatches(r.PostForm.Get("csrf"), v.session.CSRF) {
				h.log.Warn("state-changing request refused: no or a wrong CSRF token, or another origin",
					"path", r.URL.Path, "user", v.actor())
				h.render(w, r, http.StatusForbidden, "error", v, page{Title: "Refused",
					Message: "This form is out of date or did not come from this page. Go back, reload and try again."})
				return
			}
		}
		next(w, r, v)
	})
}

// own serves signed-in users on their own things (not the admin by token, who has none).
func (h *Handler) own(next userHandler) http.Handler {
	return h.user(func(w http.ResponseWriter, r *http.Request, v *viewer) {
		if v.user == nil {
			http.Redirect(w, r, "/admin", http.StatusSeeOther)
			return
		}
		next(w, r, v)
	})
}

// viewerOf reads the session cookie; account.ErrNoSession when there is none or it ended.
func (h *Handler) viewerOf(r *http.Request) (*viewer, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, account.ErrNoSession
	}
	s, err := h.acc.Session(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	v := &viewer{session: s, admin: s.Admin}
	if s.User != "" {
		u, ok := h.engine.Catalog().User(s.User)
		if !ok {
			return nil, account.ErrNoSession
		}
		v.user = u
	}
	return v, nil
}

// tokenMatches compares a presented token with the expected one in constant time.
func tokenMatches(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin refuses a request whose Origin names another site (or is "null": a sandboxed
// frame, a page of another origin under no-referrer). Browsers send Origin with every POST;
// a request without one (not a browser) is judged by its CSRF token alone.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// secure reports whether the client reached presenced over TLS, directly or through a trusted
// reverse proxy that says so.
func (h *Handler) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if len(h.opts.TrustedProxies) == 0 {
		return false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(peer.Addr().Unmap()) {
			return strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
		}
	}
	return false
}

// setCookie sets a cookie of the web app: HttpOnly, SameSite=Strict, Secure over TLS.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: h.secure(r), SameSite: http.SameSiteStrictMode})
}

// fail answers an error the person cannot fix: the state store down is 503, the rest 500
// (logged, not shown).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var un *presence.UnavailableError
	if errors.As(err, &un) {
		w.Header().Set("Retry-After", "5")
		h.render(w, r, http.StatusServiceUnavailable, "error", nil, page{Title: "Unavailable",
			Message: "presenced cannot reach its state store just now. Try again in a moment."})
		return
	}
	h.log.Error("request failed", "path", r.URL.Path, "err", err)
	h.render(w, r, http.StatusInternalServerError, "error", nil, page{Title: "Error",
		Message: "Something went wrong on the server; it has been logged."})
}

// staticHandler serves the embedded CSS and JavaScript, cached for an hour.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// User is the signed-in user, for the templates; nil for the admin by token.
func (v *viewer) User() *presence.User { return v.user }

// Admin reports whether the viewer may see and act on everyone, for the templates.
func (v *viewer) Admin() bool { return v.admin }
