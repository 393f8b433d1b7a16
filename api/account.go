package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/presence"
)

// The web app's passwords (package account) through the API: a user changes theirs, the admin
// makes set-password links, and a link's holder sets a password with it.

// passwordBody is the body of PUT /users/{user}/password.
type passwordBody struct {
	// Current is required of a user's token; the admin sets a password without it.
	Current  string `json:"current,omitempty"`
	Password string `json:"password"`
}

// linkBody is the body of POST /users/{user}/password-link.
type linkBody struct {
	// TTL is how long the link works, a duration such as "24h"; empty means 24 hours.
	TTL string `json:"ttl,omitempty"`
}

// linkView is a set-password link: its token, the path of the web app's page that spends it,
// and when it expires.
type linkView struct {
	User    presence.UserID `json:"user"`
	Token   string          `json:"token"`
	Path    string          `json:"path"`
	Expires time.Time       `json:"expires"`
}

// useLinkBody is the body of POST /password.
type useLinkBody struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// maxLinkTTL bounds how long a set-password link works.
const maxLinkTTL = 30 * 24 * time.Hour

// noAccounts is the answer of the password endpoints of an API built without accounts.
var noAccounts = &apiError{status: http.StatusServiceUnavailable, msg: "passwords need the web app's accounts, which this API was built without"}

// accountError maps the account service's errors to answers.
func accountError(err error) error {
	var perr *account.PasswordError
	var locked *account.LockedError
	switch {
	case errors.As(err, &perr):
		return invalid("password", perr.Reason)
	case errors.As(err, &locked):
		return &apiError{status: http.StatusTooManyRequests, retryAfter: locked.For, msg: locked.Error()}
	case errors.Is(err, account.ErrWrongPassword):
		return invalid("current", "wrong password")
	case errors.Is(err, account.ErrBadLink):
		return &apiError{status: http.StatusNotFound, field: "token", msg: "token: " + err.Error()}
	}
	return err
}

func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request, c caller) error {
	if h.accounts == nil {
		return noAccounts
	}
	var body passwordBody
	if err := h.decode(w, r, &body); err != nil {
		return err
	}
	id := pathUser(r)
	if _, ok := h.engine.Catalog().User(id); !ok {
		return presence.ErrUnknownUser
	}
	var err error
	if c.admin {
		err = h.accounts.SetPassword(r.Context(), id, body.Password)
	} else {
		if body.Current == "" {
			return invalid("current", "required")
		}
		err = h.accounts.ChangePassword(r.Context(), id, body.Current, body.Password)
	}
	if err != nil {
		return accountError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) passwordLink(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.admin {
		return &apiError{status: http.StatusForbidden, msg: "only the admin makes set-password links"}
	}
	if h.accounts == nil {
		return noAccounts
	}
	var body linkBody
	if r.ContentLength != 0 {
		if err := h.decode(w, r, &body); err != nil {
			return err
		}
	}
	var ttl time.Duration
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil || d < time.Minute || d > maxLinkTTL {
			return invalid("ttl", "a duration from 1m to 720h, such as 24h")
		}
		ttl = d
	}
	link, err := h.accounts.NewLink(r.Context(), pathUser(r), ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, linkView{User: link.User, Token: link.Token, Expires: link.Expires,
		Path: "/set-password?token=" + link.Token})
	return nil
}

func (h *Handler) useLink(w http.ResponseWriter, r *http.Request, _ caller) error {
	if h.accounts == nil {
		return noAccounts
	}
	var body useLinkBody
	if err := h.decode(w, r, &body); err != nil {
		return err
	}
	if body.Token == "" {
		return invalid("token", "required")
	}
	if _, err := h.accounts.UseLink(r.Context(), body.Token, body.Password); err != nil {
		return accountError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stream serves GET /events: the live updates, as the caller may see them.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, c caller) error {
	if h.events == nil {
		return &apiError{status: http.StatusServiceUnavailable, msg: "live updates need the web app, which this API was built without"}
	}
	var viewer presence.UserID
	if c.user != nil {
		viewer = c.user.ID
	}
	h.events(w, r, viewer, c.admin)
	return nil
}

// overviewView is the answer of GET /users.
type overviewView struct {
	Users []presence.UserSummary `json:"users"`
}

// overview serves GET /users (admin only): every user's presence and PBX summary, filtered by
// ?filter= (out_of_sync, reported, on_call) and ?profile=.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.admin {
		return &apiError{status: http.StatusForbidden, msg: "only the admin sees every user's summary"}
	}
	q := r.URL.Query()
	filter, profile := q.Get("filter"), q.Get("profile")
	switch filter {
	case "", "out_of_sync", "reported", "on_call":
	default:
		return &apiError{status: http.StatusBadRequest, field: "filter", msg: "filter: one of out_of_sync, reported, on_call"}
	}
	all, err := h.engine.Overview(r.Context())
	if err != nil {
		return err
	}
	v := overviewView{Users: []presence.UserSummary{}}
	for _, s := range all {
		if s.Matches(filter) && (profile == "" || s.Profile == profile) {
			v.Users = append(v.Users, s)
		}
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
