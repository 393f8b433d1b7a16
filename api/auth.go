package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/presenced/presenced/presence"
)

// caller is who made a request: the admin, a user, or nobody (public endpoints).
type caller struct {
	admin bool
	user  *presence.User
}

// actor is the caller as the journal records it.
func (c caller) actor() string {
	if c.admin {
		return AdminActor
	}
	if c.user != nil {
		return string(c.user.ID)
	}
	return ""
}

// tokens identifies callers by their bearer token. Every comparison is of SHA-256 digests, so
// neither a token's content nor its length shows in the timing: the admin digest is compared in
// constant time on every request; users are found by digest (a map lookup whose timing tells
// nothing about any token), then the token itself is compared in constant time.
type tokens struct {
	admin    [sha256.Size]byte
	hasAdmin bool
	byHash   map[[sha256.Size]byte]*presence.User
}

func newTokens(admin string, users []*presence.User) (*tokens, error) {
	t := &tokens{admin: sha256.Sum256([]byte(admin)), hasAdmin: admin != "", byHash: map[[sha256.Size]byte]*presence.User{}}
	for _, u := range users {
		if u.Token == "" {
			continue // a user without a token cannot use the API
		}
		if u.Token == admin {
			return nil, fmt.Errorf("api: the admin token is also the token of user %q", u.ID)
		}
		t.byHash[sha256.Sum256([]byte(u.Token))] = u
	}
	return t, nil
}

// identify returns who holds token.
func (t *tokens) identify(token string) (caller, bool) {
	tok := []byte(token)
	digest := sha256.Sum256(tok)
	if subtle.ConstantTimeCompare(digest[:], t.admin[:]) == 1 && t.hasAdmin {
		return caller{admin: true}, true
	}
	if u := t.byHash[digest]; u != nil && subtle.ConstantTimeCompare(tok, []byte(u.Token)) == 1 {
		return caller{user: u}, true
	}
	return caller{}, false
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authorize checks the request's token against what the endpoint allows.
func (h *Handler) authorize(r *http.Request, a access) (caller, error) {
	if a == accessPublic {
		return caller{}, nil
	}
	token, ok := bearer(r)
	if !ok {
		return caller{}, &apiError{status: http.StatusUnauthorized, msg: "missing bearer token (Authorization: Bearer <token>)",
			challenge: `Bearer realm="presenced"`}
	}
	c, ok := h.tokens.identify(token)
	if !ok {
		return caller{}, &apiError{status: http.StatusUnauthorized, msg: "invalid token",
			challenge: `Bearer realm="presenced", error="invalid_token"`}
	}
	if a == accessUser && !c.admin {
		if target := r.PathValue("user"); presence.UserID(target) != c.user.ID {
			return caller{}, &apiError{status: http.StatusForbidden,
				msg: fmt.Sprintf("the token of user %q may not act on user %q", c.user.ID, target)}
		}
	}
	return c, nil
}
