package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
)

// The cache of credentials verified against a hash: a slow hash is paid once per presented
// credential and instance, then for credentialCacheTTL the SHA-256 of what was presented
// identifies the caller. At most credentialCacheSize entries; when full, nothing more is
// remembered until entries expire (every further request then pays the hash).
const (
	credentialCacheTTL  = 10 * time.Minute
	credentialCacheSize = 10000
)

// The reasons a request failed authentication, the label of presenced_api_auth_failures_total.
const (
	reasonInvalidToken = "invalid_token" // a bearer token that is nobody's
	reasonUnknownUser  = "unknown_user"  // Basic auth naming no user, or one without a token
	reasonWrongToken   = "wrong_token"   // Basic auth with the wrong token for the user
	reasonMalformed    = "malformed"     // an Authorization header that is neither Bearer nor Basic
)

func authFailureReasons() []string {
	return []string{reasonInvalidToken, reasonUnknownUser, reasonWrongToken, reasonMalformed}
}

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

// credentials identifies callers, by one of two schemes:
//
//   - "Authorization: Bearer <token>" for tokens the configuration holds as they are (token,
//     token_file, admin_token, admin_token_file). Every comparison is of SHA-256 digests, so
//     neither a token's content nor its length shows in the timing: the admin digest is
//     compared in constant time on every request; users are found by digest (a map lookup
//     whose timing tells nothing about any token), then the token itself is compared in
//     constant time.
//   - "Authorization: Basic" with the user id (or extension, or "admin") and the token, for
//     every user and the admin, and the only way for tokens given as hashes (token_hash,
//     admin_token_hash): a slow hash cannot be looked up by the token, so the user name says
//     which hash to verify. A verified credential is remembered by its SHA-256 (cache), and at
//     most slow verifications run at once, so wrong guesses cannot exhaust memory or CPU.
type credentials struct {
	admin     [sha256.Size]byte
	hasAdmin  bool
	adminHash *secret.Hash
	byDigest  map[[sha256.Size]byte]*presence.User // users with a plain token
	byName    map[string]*presence.User            // users by id, then by extension
	hashes    map[presence.UserID]*secret.Hash     // users with a token hash
	cache     *verifiedCache
	slow      chan struct{} // one slot per slow verification running
	// verified counts slow hash verifications.
	verified func()
}

func newCredentials(admin, adminHash string, users []*presence.User) (*credentials, error) {
	c := &credentials{
		admin:    sha256.Sum256([]byte(admin)),
		hasAdmin: admin != "",
		byDigest: map[[sha256.Size]byte]*presence.User{},
		byName:   map[string]*presence.User{},
		hashes:   map[presence.UserID]*secret.Hash{},
		cache:    newVerifiedCache(credentialCacheTTL, credentialCacheSize, time.Now),
		slow:     make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		verified: func() {},
	}
	if admin != "" && adminHash != "" {
		return nil, fmt.Errorf("api: give the admin token or its hash, not both")
	}
	if adminHash != "" {
		h, err := secret.ParseHash(adminHash)
		if err != nil {
			return nil, fmt.Errorf("api: admin token hash: %w", err)
		}
		c.adminHash = h
	}
	for _, u := range users {
		if _, taken := c.byName[u.Extension]; !taken && u.Extension != "" {
			c.byName[u.Extension] = u
		}
	}
	for _, u := range users {
		c.byName[string(u.ID)] = u // an id wins over another user's extension
		switch {
		case u.TokenHash != "":
			h, err := secret.ParseHash(u.TokenHash)
			if err != nil {
				return nil, fmt.Errorf("api: token hash of user %q: %w", u.ID, err)
			}
			c.hashes[u.ID] = h
		case u.Token != "":
			if u.Token == admin {
				return nil, fmt.Errorf("api: the admin token is also the token of user %q", u.ID)
			}
			c.byDigest[sha256.Sum256([]byte(u.Token))] = u
		}
	}
	return c, nil
}

// bearer returns who holds token, among the tokens held as they are.
func (c *credentials) bearer(token string) (caller, bool) {
	tok := []byte(token)
	digest := sha256.Sum256(tok)
	if subtle.ConstantTimeCompare(digest[:], c.admin[:]) == 1 && c.hasAdmin {
		return caller{admin: true}, true
	}
	if u := c.byDigest[digest]; u != nil && subtle.ConstantTimeCompare(tok, []byte(u.Token)) == 1 {
		return caller{user: u}, true
	}
	return caller{}, false
}

// basic returns who name (a user id, an extension or "admin") with token is, or the reason
// they are not.
func (c *credentials) basic(ctx context.Context, name, token string) (caller, string, error) {
	var who caller
	var plain string
	var hash *secret.Hash
	if name == AdminActor {
		who, plain, hash = caller{admin: true}, "", c.adminHash
		if c.hasAdmin {
			digest := sha256.Sum256([]byte(token))
			if subtle.ConstantTimeCompare(digest[:], c.admin[:]) == 1 {
				return who, "", nil
			}
			return caller{}, reasonWrongToken, nil
		}
	} else if u := c.byName[name]; u != nil {
		who, plain, hash = caller{user: u}, u.Token, c.hashes[u.ID]
	}
	switch {
	case hash == nil && plain == "":
		return caller{}, reasonUnknownUser, nil
	case hash == nil:
		if subtle.ConstantTimeCompare([]byte(token), []byte(plain)) == 1 {
			return who, "", nil
		}
		return caller{}, reasonWrongToken, nil
	}
	key := sha256.Sum256([]byte(who.actor() + "\x00" + token))
	if c.cache.get(key) {
		return who, "", nil
	}
	select {
	case c.slow <- struct{}{}:
	case <-ctx.Done():
		return caller{}, "", ctx.Err()
	}
	ok := hash.Verify(token)
	<-c.slow
	c.verified()
	if !ok {
		return caller{}, reasonWrongToken, nil
	}
	c.cache.put(key)
	return who, "", nil
}

// verifiedCache remembers credentials verified against a hash, by the SHA-256 of the identity
// and the token presented; an entry lasts ttl, and there are at most size.
type verifiedCache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu      sync.Mutex
	expires map[[sha256.Size]byte]time.Time
}

func newVerifiedCache(ttl time.Duration, size int, now func() time.Time) *verifiedCache {
	return &verifiedCache{ttl: ttl, size: size, now: now, expires: map[[sha256.Size]byte]time.Time{}}
}

func (v *verifiedCache) get(key [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	exp, ok := v.expires[key]
	if ok && !v.now().Before(exp) {
		delete(v.expires, key)
		return false
	}
	return ok
}

func (v *verifiedCache) put(key [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if len(v.expires) >= v.size {
		for k, exp := range v.expires {
			if !now.Before(exp) {
				delete(v.expires, k)
			}
		}
		if len(v.expires) >= v.size {
			return
		}
	}
	v.expires[key] = now.Add(v.ttl)
}

// authorize checks the request's credentials against what the endpoint allows. A client
// address with too many failed authentications is refused (429) before anything is verified;
// each failure is logged without the token, counted in presenced_api_auth_failures_total and
// by the throttle.
func (h *Handler) authorize(r *http.Request, rt route) (caller, error) {
	if rt.access == accessPublic {
		return caller{}, nil
	}
	ctx := r.Context()
	client := throttle.ClientAddr(r, h.proxies)
	key := throttle.Key(client)
	if wait := h.throttle.Blocked(ctx, key); wait > 0 {
		h.metrics.throttled.Inc()
		h.log.Debug("throttled", "client", client, "route", rt.pattern())
		return caller{}, &apiError{status: http.StatusTooManyRequests, retryAfter: wait,
			msg: fmt.Sprintf("too many failed authentications from this address; try again in %v", roundUp(wait))}
	}
	header := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, rest, _ := strings.Cut(header, " ")
	var (
		c      caller
		reason string
		name   string
		fail   *apiError
	)
	switch {
	case strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) != "":
		var ok bool
		if c, ok = h.creds.Load().bearer(strings.TrimSpace(rest)); !ok {
			reason = reasonInvalidToken
			fail = &apiError{status: http.StatusUnauthorized, msg: "invalid token",
				challenge: `Bearer realm="presenced", error="invalid_token"`}
		}
	case header == "" || strings.EqualFold(header, "Bearer"):
		return caller{}, &apiError{status: http.StatusUnauthorized,
			msg:       "missing bearer token (Authorization: Bearer <token>, or Basic auth with user id and token)",
			challenge: `Bearer realm="presenced"`}
	case strings.EqualFold(scheme, "Basic"):
		user, token, ok := r.BasicAuth()
		if !ok {
			reason = reasonMalformed
			break
		}
		var err error
		if c, reason, err = h.creds.Load().basic(ctx, user, token); err != nil {
			return caller{}, err
		}
		if reason != "" {
			name = user
			fail = &apiError{status: http.StatusUnauthorized, msg: "invalid user or token",
				challenge: `Basic realm="presenced", charset="UTF-8"`}
		}
	default:
		reason = reasonMalformed
	}
	if reason != "" {
		if fail == nil {
			fail = &apiError{status: http.StatusUnauthorized,
				msg:       "malformed Authorization header: want Bearer <token>, or Basic with user id and token",
				challenge: `Bearer realm="presenced", error="invalid_request"`}
		}
		h.metrics.authFailures.WithLabelValues(reason).Inc()
		failures, blocked := h.throttle.Fail(ctx, key)
		attrs := []any{"client", client, "route", rt.pattern(), "reason", reason, "failures", failures}
		if u := h.creds.Load().byName[name]; u != nil {
			attrs = append(attrs, "user", u.ID) // a name the request gave that is a user's, never the token
		}
		h.log.Warn("authentication failed", attrs...)
		if blocked > 0 {
			h.log.Warn("client blocked: too many failed authentications", "client", client, "failures", failures,
				"retry_after", roundUp(blocked))
		}
		return caller{}, fail
	}
	if rt.access == accessAdmin && !c.admin {
		return caller{}, &apiError{status: http.StatusForbidden, msg: "only the admin token may do this"}
	}
	if rt.access == accessUser && !c.admin {
		if target := r.PathValue("user"); presence.UserID(target) != c.user.ID {
			return caller{}, &apiError{status: http.StatusForbidden,
				msg: fmt.Sprintf("the token of user %q may not act on user %q", c.user.ID, target)}
		}
	}
	return c, nil
}

// roundUp is d in whole seconds, rounded up: what Retry-After says.
func roundUp(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// retryAfter is the Retry-After value of d: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(roundUp(d).Seconds())))
}
