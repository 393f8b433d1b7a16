// Package account signs people in to presenced's web app: passwords (a user's password_hash
// from the configuration, replaced by one the user sets, stored hashed in Redis), the
// set-password links an admin hands out, and sessions, kept in Redis so that every instance
// serving the web app knows them.
//
// Wrong passwords are counted per user (package internal/throttle, as the feature codes count
// wrong PINs): Options.Attempts of them lock the user's sign-in for Options.Lockout, whoever
// tries. A locked user learns nothing from a right password until the lockout ends.
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
)

// Defaults of Options.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	DefaultAttempts    = 5
	DefaultLockout     = 15 * time.Minute
	DefaultLinkTTL     = 24 * time.Hour
)

// Password lengths SetPassword accepts, in characters.
const (
	MinPasswordLength = 10
	MaxPasswordLength = 200
)

// AdminName is the name the admin signs in with, the admin token as the password.
const AdminName = "admin"

// Errors of signing in and of passwords.
var (
	// ErrWrongPassword means the name or the password is wrong; which of the two is not said.
	ErrWrongPassword = errors.New("account: wrong user or password")
	// ErrNoSession means the session is unknown, ended, or expired.
	ErrNoSession = errors.New("account: no such session")
	// ErrBadLink means a set-password link is unknown, used or expired.
	ErrBadLink = errors.New("account: the set-password link is unknown, used or expired")
)

// LockedError says a user's sign-in is locked after too many wrong passwords.
type LockedError struct {
	For time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("account: too many wrong passwords; sign-in locked for %v", e.For.Round(time.Second))
}

// PasswordError says why a new password is refused; the message never quotes it.
type PasswordError struct {
	Reason string
}

func (e *PasswordError) Error() string { return "password: " + e.Reason }

// Options configures a Service.
type Options struct {
	// Redis holds passwords set by users, set-password links and sessions; required.
	Redis redis.Cmdable
	// Prefix starts every key (presenced's keys start with "presenced:"); empty means that.
	Prefix string
	// Catalog knows the users; required.
	Catalog *presence.Catalog
	// AdminToken or AdminTokenHash (the REST API's admin token) lets the name "admin" sign in
	// as the admin, with the token as the password; both empty: no such sign-in.
	AdminToken     string
	AdminTokenHash string
	// IdleTimeout ends a session not used for that long, MaxAge one that old whatever its use.
	IdleTimeout, MaxAge time.Duration
	// Attempts wrong passwords within Lockout lock a user's sign-in for Lockout.
	Attempts int
	Lockout  time.Duration
	// Throttle, when set, counts the wrong passwords instead of a limiter built from Attempts
	// and Lockout over Redis.
	Throttle *throttle.Limiter
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service signs people in and keeps their sessions. It is safe for concurrent use.
type Service struct {
	opts     Options
	rdb      redis.Cmdable
	prefix   string
	catalog  atomic.Pointer[presence.Catalog]
	throttle *throttle.Limiter
	adminCfg atomic.Pointer[adminCredential]
	decoy    *secret.Hash // verified for unknown names, so they take as long as known ones
	slow     chan struct{}
	log      *slog.Logger
	now      func() time.Time
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Redis == nil || opts.Catalog == nil {
		return nil, errors.New("account: Options.Redis and Catalog are required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "presenced:"
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Attempts == 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Lockout == 0 {
		opts.Lockout = DefaultLockout
	}
	switch {
	case opts.IdleTimeout < time.Second || opts.MaxAge < opts.IdleTimeout:
		return nil, fmt.Errorf("account: Options.IdleTimeout (%v) must be at least 1s and at most MaxAge (%v)", opts.IdleTimeout, opts.MaxAge)
	case opts.Attempts < 1:
		return nil, fmt.Errorf("account: Options.Attempts must be at least 1, got %d", opts.Attempts)
	case opts.AdminToken != "" && opts.AdminTokenHash != "":
		return nil, errors.New("account: give the admin token or its hash, not both")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{opts: opts, rdb: opts.Redis, prefix: opts.Prefix,
		slow: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))), log: opts.Logger, now: opts.Now}
	var err error
	if s.throttle = opts.Throttle; s.throttle == nil {
		s.throttle, err = throttle.New(throttle.Options{Redis: opts.Redis, KeyPrefix: opts.Prefix + "pwfail:",
			Failures: opts.Attempts, Window: opts.Lockout, Block: opts.Lockout, MaxKeys: 10000,
			Timeout: time.Second, Logger: opts.Logger, Now: opts.Now})
		if err != nil {
			return nil, err
		}
	}
	s.catalog.Store(opts.Catalog)
	if err := s.SetAdmin(opts.AdminToken, opts.AdminTokenHash); err != nil {
		return nil, err
	}
	decoy, err := secret.NewHash(rand.Text())
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	s.decoy, _ = secret.ParseHash(decoy)
	return s, nil
}

// adminCredential is the admin token's sign-in: its hash (nil: none) and the fingerprint of
// what is configured, which sessions made with another credential do not match.
type adminCredential struct {
	hash *secret.Hash
	fp   string
}

// SetAdmin puts the admin token (or its hash; both empty: no admin sign-in with a token) in
// force, as a configuration reload changed it. Sessions signed in with another admin token end.
func (s *Service) SetAdmin(token, hash string) error {
	if token != "" && hash != "" {
		return errors.New("account: give the admin token or its hash, not both")
	}
	a := &adminCredential{}
	adminHash := hash
	if token != "" {
		var err error
		if adminHash, err = secret.NewHash(token); err != nil {
			return fmt.Errorf("account: admin token: %w", err)
		}
	}
	if adminHash != "" {
		var err error
		if a.hash, err = secret.ParseHash(adminHash); err != nil {
			return fmt.Errorf("account: admin token hash: %w", err)
		}
		// The fingerprint of what is configured (the token, or its hash), not of the hash made
		// above, which has a new salt every time.
		a.fp = digest("admin\x00" + token + "\x00" + hash)[:16]
	}
	s.adminCfg.Store(a)
	return nil
}

// SetCatalog puts a reloaded configuration's users in force: a removed user can no longer
// sign in, and their sessions end at their next use.
func (s *Service) SetCatalog(c *presence.Catalog) { s.catalog.Store(c) }

// Identity is who signed in: a user (who may be an admin), or the admin by token (User nil).
type Identity struct {
	User  *presence.User
	Admin bool
}

// ID is the user's id, or "admin".
func (i Identity) ID() string {
	if i.User == nil {
		return AdminName
	}
	return string(i.User.ID)
}

func (s *Service) passwordKey(id presence.UserID) string { return s.prefix + "password:" + string(id) }
func (s *Service) linkKey(token string) string           { return s.prefix + "pwlink:" + digest(token) }
func (s *Service) sessionKey(id string) string           { return s.prefix + "session:" + digest(id) }

// genKey counts the passwords set for a user: a session remembers the count it was opened
// under, so setting a password ends the user's sessions (the one that set it is renewed).
func (s *Service) genKey(id presence.UserID) string { return s.prefix + "pwgen:" + string(id) }

// digest names a secret in Redis without storing it: someone who reads Redis cannot use a
// session or a link.
func digest(v string) string {
	d := sha256.Sum256([]byte(v))
	return hex.EncodeToString(d[:])
}

// lockKey is the throttle key of a name's wrong passwords.
func lockKey(id string) string { return "user:" + id }

// resolve finds the user a name (an id or an extension) names.
func (s *Service) resolve(name string) (*presence.User, bool) {
	if u, ok := s.catalog.Load().User(presence.UserID(name)); ok {
		return u, true
	}
	return s.catalog.Load().UserByExtension(name)
}

// hashOf is the hash a user's password is checked against: the one the user set (Redis),
// else the configuration's; nil when the user has none.
func (s *Service) hashOf(ctx context.Context, u *presence.User) (*secret.Hash, error) {
	v, err := s.rdb.Get(ctx, s.passwordKey(u.ID)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		v = u.PasswordHash
	case err != nil:
		return nil, fmt.Errorf("account: read the password of %s: %w", u.ID, err)
	}
	if v == "" {
		return nil, nil
	}
	h, err := secret.ParseHash(v)
	if err != nil {
		return nil, fmt.Errorf("account: the stored password of %s: %w", u.ID, err)
	}
	return h, nil
}

// verify checks password against h (the decoy when h is nil, which always fails), at most a
// few at once.
func (s *Service) verify(ctx context.Context, h *secret.Hash, password string) (bool, error) {
	select {
	case s.slow <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.slow }()
	if h == nil {
		s.decoy.Verify(password)
		return false, nil
	}
	return h.Verify(password), nil
}

// Authenticate checks a name (a user id, an extension, or "admin" with the admin token) and
// password. A wrong one is ErrWrongPassword, counted against the user; a locked user gets a
// *LockedError without the password being looked at.
func (s *Service) Authenticate(ctx context.Context, name, password string) (Identity, error) {
	if len(name) > 200 || len(password) > 4*MaxPasswordLength || !utf8.ValidString(name) {
		return Identity{}, ErrWrongPassword
	}
	var id Identity
	var hash *secret.Hash
	key := lockKey(name)
	if name == AdminName {
		id, hash = Identity{Admin: true}, s.adminCfg.Load().hash
	} else if u, ok := s.resolve(name); ok {
		key = lockKey(string(u.ID))
		id = Identity{User: u, Admin: u.Admin}
		var err error
		if hash, err = s.hashOf(ctx, u); err != nil {
			return Identity{}, err
		}
	}
	if d := s.throttle.Blocked(ctx, key); d > 0 {
		return Identity{}, &LockedError{For: d}
	}
	ok, err := s.verify(ctx, hash, password)
	if err != nil {
		return Identity{}, err
	}
	if !ok {
		n, blocked := s.throttle.Fail(ctx, key)
		s.log.Info("wrong password", "name", logName(name, id), "failures", n)
		if blocked > 0 {
			s.log.Warn("sign-in locked: too many wrong passwords", "name", logName(name, id), "lockout", blocked)
			return Identity{}, &LockedError{For: blocked}
		}
		return Identity{}, ErrWrongPassword
	}
	return id, nil
}

// logName is a name as the log may show it: a known user's id, never what a stranger typed
// (it may be a password typed into the wrong field).
func logName(name string, id Identity) string {
	if id.User != nil || id.Admin {
		return id.ID()
	}
	return "(unknown)"
}

// CheckPassword says why password may not be set; nil when it may.
func CheckPassword(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &PasswordError{Reason: "not valid UTF-8"}
	case n < MinPasswordLength:
		return &PasswordError{Reason: fmt.Sprintf("at least %d characters", MinPasswordLength)}
	case n > MaxPasswordLength:
		return &PasswordError{Reason: fmt.Sprintf("at most %d characters", MaxPasswordLength)}
	case strings.TrimSpace(password) == "":
		return &PasswordError{Reason: "not only spaces"}
	}
	return nil
}

// SetPassword stores a new password for the user, hashed (argon2id); it replaces the
// configuration's password_hash. Every session of the user ends (Start a new one for the
// person who set it).
func (s *Service) SetPassword(ctx context.Context, id presence.UserID, password string) error {
	if _, ok := s.catalog.Load().User(id); !ok {
		return fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	h, err := secret.NewHash(password)
	if err != nil {
		return fmt.Errorf("account: hash the password of %s: %w", id, err)
	}
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.passwordKey(id), h, 0)
		p.Incr(ctx, s.genKey(id))
		return nil
	}); err != nil {
		return fmt.Errorf("account: store the password of %s: %w", id, err)
	}
	s.log.Info("password set; the user's sessions end", "user", id)
	return nil
}

// ChangePassword sets a new password after checking the current one (wrong ones count
// towards the lockout).
func (s *Service) ChangePassword(ctx context.Context, id presence.UserID, current, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	who, err := s.Authenticate(ctx, string(id), current)
	if err != nil {
		return err
	}
	if who.User == nil || who.User.ID != id {
		return ErrWrongPassword
	}
	return s.SetPassword(ctx, id, password)
}

// Link is a set-password link: the token to put in it, and when it expires.
type Link struct {
	User    presence.UserID `json:"user"`
	Token   string          `json:"token"`
	Expires time.Time       `json:"expires"`
}

// NewLink makes a one-time set-password token for the user, valid for ttl (zero means
// DefaultLinkTTL). Redis holds only its digest.
func (s *Service) NewLink(ctx context.Context, id presence.UserID, ttl time.Duration) (Link, error) {
	if _, ok := s.catalog.Load().User(id); !ok {
		return Link{}, fmt.Errorf("%w %q", presence.ErrUnknownUser, id)
	}
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	tok := randomToken()
	if err := s.rdb.Set(ctx, s.linkKey(tok), string(id), ttl).Err(); err != nil {
		return Link{}, fmt.Errorf("account: store the set-password link of %s: %w", id, err)
	}
	s.log.Info("set-password link made", "user", id, "expires", s.now().Add(ttl))
	return Link{User: id, Token: tok, Expires: s.now().Add(ttl)}, nil
}

// UseLink sets the password of the link's user and spends the link. A password refused keeps
// the link usable.
func (s *Service) UseLink(ctx context.Context, token, password string) (presence.UserID, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	if len(token) > 100 {
		return "", ErrBadLink
	}
	v, err := s.rdb.GetDel(ctx, s.linkKey(token)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", ErrBadLink
	case err != nil:
		return "", fmt.Errorf("account: read a set-password link: %w", err)
	}
	id := presence.UserID(v)
	if err := s.SetPassword(ctx, id, password); err != nil {
		return "", err
	}
	// A new password ends the lockout of whoever guessed at the old one.
	_ = s.rdb.Del(ctx, s.prefix+"pwfail:"+lockKey(string(id))).Err()
	return id, nil
}

// randomToken is 32 random bytes in URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Session is one signed-in browser. ID is the cookie's value; Redis holds only its digest.
type Session struct {
	ID      string          `json:"-"`
	User    presence.UserID `json:"user,omitempty"` // empty for the admin by token
	Admin   bool            `json:"admin"`
	CSRF    string          `json:"csrf"` // the token every state-changing request carries
	Created time.Time       `json:"created"`
	Seen    time.Time       `json:"seen"`
	// Gen is the user's password count when the session was opened (genKey); Cred the admin
	// credential's fingerprint for the admin by token. Either changed: the session ends.
	Gen  string `json:"gen,omitempty"`
	Cred string `json:"cred,omitempty"`
}

// Start opens a session for who.
func (s *Service) Start(ctx context.Context, who Identity) (*Session, error) {
	now := s.now()
	ss := &Session{ID: randomToken(), Admin: who.Admin, CSRF: randomToken(), Created: now, Seen: now}
	if who.User != nil {
		ss.User = who.User.ID
		gen, err := s.rdb.Get(ctx, s.genKey(ss.User)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("account: read the password count of %s: %w", ss.User, err)
		}
		ss.Gen = gen
	} else {
		ss.Cred = s.adminCfg.Load().fp
	}
	if err := s.save(ctx, ss); err != nil {
		return nil, err
	}
	return ss, nil
}

// save writes a session, expiring at the earlier of its idle and its absolute end.
func (s *Service) save(ctx context.Context, ss *Session) error {
	ttl := min(s.opts.IdleTimeout, ss.Created.Add(s.opts.MaxAge).Sub(s.now()))
	if ttl <= 0 {
		return ErrNoSession
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.sessionKey(ss.ID), b, ttl).Err(); err != nil {
		return fmt.Errorf("account: store a session: %w", err)
	}
	return nil
}

// touchEvery is how often a session in use is written again to move its idle end.
const touchEvery = 30 * time.Second

// Session returns the session with that id and notes its use; ErrNoSession when there is
// none, or it has expired. A user the configuration no longer has ends their sessions.
func (s *Service) Session(ctx context.Context, id string) (*Session, error) {
	if id == "" || len(id) > 100 {
		return nil, ErrNoSession
	}
	b, err := s.rdb.Get(ctx, s.sessionKey(id)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNoSession
	case err != nil:
		return nil, fmt.Errorf("account: read a session: %w", err)
	}
	var ss Session
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, ErrNoSession
	}
	switch {
	case ss.User == "" && (!ss.Admin || ss.Cred != s.adminCfg.Load().fp || s.adminCfg.Load().hash == nil):
		s.End(ctx, id) // the admin token changed since, or admin sign-in is off
		return nil, ErrNoSession
	case ss.User != "":
		gen, err := s.rdb.Get(ctx, s.genKey(ss.User)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("account: read the password count of %s: %w", ss.User, err)
		}
		if gen != ss.Gen {
			s.End(ctx, id) // a password was set since
			return nil, ErrNoSession
		}
	}
	ss.ID = id
	now := s.now()
	if now.Sub(ss.Seen) >= s.opts.IdleTimeout || now.Sub(ss.Created) >= s.opts.MaxAge {
		s.End(ctx, id)
		return nil, ErrNoSession
	}
	if ss.User != "" {
		u, ok := s.catalog.Load().User(ss.User)
		if !ok {
			s.End(ctx, id)
			return nil, ErrNoSession
		}
		ss.Admin = u.Admin
	}
	if now.Sub(ss.Seen) >= touchEvery {
		ss.Seen = now
		if err := s.save(ctx, &ss); err != nil && !errors.Is(err, ErrNoSession) {
			return nil, err
		}
	}
	return &ss, nil
}

// End ends a session (signing out).
func (s *Service) End(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.sessionKey(id)).Err(); err != nil {
		return fmt.Errorf("account: end a session: %w", err)
	}
	return nil
}
