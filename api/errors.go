package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// statusClientClosed is the status recorded for a request whose client went away.
const statusClientClosed = 499

// storeRetryAfter is the Retry-After of a 503 answered because the state store is unavailable.
const storeRetryAfter = 5 * time.Second

// errorBody is every error answer: what went wrong and, when one field is to blame, which.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// Problems lists every invalid field of a 422 answer; Error and Field describe the first.
	Problems []problem `json:"problems,omitempty"`
}

// problem is one invalid field.
type problem struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// apiError is an error the API answers with a given status.
type apiError struct {
	status     int
	msg        string
	field      string
	challenge  string        // WWW-Authenticate, for 401
	retryAfter time.Duration // Retry-After, for 429
}

func (e *apiError) Error() string { return e.msg }

// fail answers err with the status it means; engine errors map as the package doc lists.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		apiErr  *apiError
		invalid *presence.ValidationError
		corrupt *presence.CorruptError
		unavail *presence.UnavailableError
	)
	switch {
	case errors.As(err, &apiErr):
		if apiErr.challenge != "" {
			w.Header().Set("WWW-Authenticate", apiErr.challenge)
		}
		if apiErr.retryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(apiErr.retryAfter))
		}
		if apiErr.status >= 500 {
			h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeJSON(w, apiErr.status, errorBody{Error: apiErr.msg, Field: apiErr.field})
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusUnprocessableEntity, validationBody(invalid))
	case errors.Is(err, presence.ErrUnknownUser), errors.Is(err, presence.ErrUnknownProfile):
		writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case errors.Is(err, presence.ErrNoLeader):
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
	case errors.Is(err, presence.ErrNotRunning), errors.Is(err, presence.ErrFenced):
		// This instance does not write to Asterisk (a standby, or one shutting down): another
		// one does, or will within a lease.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "this instance is not the leader, which carries out changes; try again or ask the leader"})
	case errors.Is(err, presence.ErrProfileActive):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	case errors.Is(err, presence.ErrSystemProfile):
		writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error()})
	case errors.As(err, &unavail):
		// The store logs the outage when it starts and ends; one line per request would drown
		// the log. The answer gives the reason without the store's address.
		h.log.Debug("state store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(storeRetryAfter/time.Second)))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: unavail.Message()})
	case errors.As(err, &corrupt):
		// The message names the Redis key and field, and the decoding error: no secrets.
		h.log.Error("unreadable redis data", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: corrupt.Error()})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away and reads no answer; 499 (nginx's "client closed request")
		// keeps it out of the 5xx a dashboard alerts on.
		h.log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path)
		writeJSON(w, statusClientClosed, errorBody{Error: "request cancelled"})
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("request timed out", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "timed out"})
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error; the presenced log has the details"})
	}
}

// validationBody lists the problems of a ValidationError with field paths relative to the
// request body ("on_enter[0]", not "profile.on_enter[0]").
func validationBody(v *presence.ValidationError) errorBody {
	var b errorBody
	msgs := make([]string, 0, len(v.Problems))
	for _, p := range v.Problems {
		field, msg, ok := strings.Cut(p, ": ")
		if !ok {
			field, msg = "", p
		}
		field = strings.TrimPrefix(field, "profile.")
		b.Problems = append(b.Problems, problem{Field: field, Error: msg})
		if field != "" {
			msgs = append(msgs, field+": "+msg)
		} else {
			msgs = append(msgs, msg)
		}
	}
	b.Error = strings.Join(msgs, "; ")
	if len(b.Problems) > 0 {
		b.Field = b.Problems[0].Field
	}
	return b
}

// invalid builds a ValidationError of one problem.
func invalid(field, msg string) error {
	return &presence.ValidationError{Problems: []string{field + ": " + msg}}
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: answer not encodable"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
