package ari

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultEventBuffer    = 1024
	DefaultPingInterval   = 10 * time.Second
	// DefaultMaxConnections is a third of Asterisk's default HTTP sessionlimit (100), which
	// the events websocket, other instances and other ARI clients share.
	DefaultMaxConnections = 32
)

// idleConnTimeout is how long an unused REST connection is kept for the next request: less
// than Asterisk's session_keep_alive (http.conf, 15 s by default), after which Asterisk closes
// it, so that no request goes out on a connection Asterisk is closing at that moment (a POST
// on it fails with EOF and is not retried).
const idleConnTimeout = 10 * time.Second

// Config configures a Client. The zero values of the optional fields select
// the defaults documented on each field.
type Config struct {
	// URL is the base URL of the REST interface, e.g. http://127.0.0.1:8088/ari.
	URL string

	// WebsocketURL is the events websocket, e.g. ws://127.0.0.1:8088/ari/events.
	// Empty derives it from URL (http→ws, https→wss, path + "/events").
	WebsocketURL string

	// Username and Password are the credentials of an ari.conf user with
	// read_only=no.
	Username string
	Password string

	// App is the base name of the Stasis application, e.g. "presenced".
	App string

	// InstanceID tells instances of the daemon apart: the Stasis application
	// is App + "-" + InstanceID (see Client.AppName). Empty picks a random
	// short id. Set it to something stable per host (for example the host
	// name) so that a restarted daemon finds, and hangs up, the channels its
	// predecessor left in the application; with a random id they stay in the
	// old application until they hang up on their own.
	InstanceID string

	// RequestTimeout bounds every REST request and the websocket handshake.
	// Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration

	// EventBuffer is the capacity of the channel returned by Client.Events.
	// Zero means DefaultEventBuffer.
	EventBuffer int

	// PingInterval is the period of the liveness probe while connected: a
	// user event sent to our application must come back over the
	// websocket within RequestTimeout. Two failed probes in a row end the
	// connection. Zero means DefaultPingInterval.
	PingInterval time.Duration

	// MaxConnections bounds the HTTP connections REST requests use at once; further requests
	// wait for one (within their RequestTimeout). Asterisk serves at most http.conf's
	// sessionlimit sessions (100 by default) and closes any connection beyond them unanswered,
	// which fails the request on it: a burst of calls (an answer, a playback and a hangup each)
	// would otherwise open one connection per request. Zero means DefaultMaxConnections.
	MaxConnections int

	// OnReconnect, if set, is called after every successful (re)connect,
	// after orphaned channels were hung up and device subscriptions were
	// restored. It runs on the supervisor goroutine, so keep it short or
	// start a goroutine; its ctx is cancelled when that connection ends.
	OnReconnect func(ctx context.Context)

	// Logger receives the client's logs. Nil discards them.
	Logger *slog.Logger

	// Registerer receives the client's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	appName string
	baseURL string // URL without a trailing slash
	wsURL   string // websocket URL including the app query parameter
	origin  string // Origin header for the websocket handshake
}

func (cfg Config) settings() (settings, error) {
	s := settings{Config: cfg}

	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return s, fmt.Errorf("ari: Config.URL is required")
	case err != nil:
		return s, fmt.Errorf("ari: Config.URL %q: %w", cfg.URL, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return s, fmt.Errorf("ari: Config.URL %q: want http://host:port/ari or https://…", cfg.URL)
	}
	s.baseURL = strings.TrimSuffix(cfg.URL, "/")
	s.origin = u.Scheme + "://" + u.Host

	ws := cfg.WebsocketURL
	if ws == "" {
		w := *u
		w.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		w.Path = strings.TrimSuffix(u.Path, "/") + "/events"
		w.RawPath = ""
		w.RawQuery = ""
		ws = w.String()
	}
	wu, err := url.Parse(ws)
	switch {
	case err != nil:
		return s, fmt.Errorf("ari: Config.WebsocketURL %q: %w", ws, err)
	case wu.Scheme != "ws" && wu.Scheme != "wss", wu.Host == "":
		return s, fmt.Errorf("ari: Config.WebsocketURL %q: want ws://host:port/ari/events or wss://…", ws)
	}

	if cfg.Username == "" {
		return s, fmt.Errorf("ari: Config.Username is required")
	}
	if cfg.Password == "" {
		return s, fmt.Errorf("ari: Config.Password is required")
	}
	if cfg.App == "" {
		return s, fmt.Errorf("ari: Config.App is required")
	}
	if !validName(cfg.App) {
		return s, fmt.Errorf("ari: Config.App %q: only letters, digits, '.', '_' and '-' are allowed", cfg.App)
	}
	if cfg.InstanceID == "" {
		s.InstanceID = randomID()
	} else if !validName(cfg.InstanceID) {
		return s, fmt.Errorf("ari: Config.InstanceID %q: only letters, digits, '.', '_' and '-' are allowed", cfg.InstanceID)
	}
	s.appName = cfg.App + "-" + s.InstanceID

	q := wu.Query()
	q.Set("app", s.appName)
	wu.RawQuery = q.Encode()
	s.wsURL = wu.String()

	switch {
	case cfg.RequestTimeout < 0:
		return s, fmt.Errorf("ari: Config.RequestTimeout %v must not be negative", cfg.RequestTimeout)
	case cfg.RequestTimeout == 0:
		s.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case cfg.EventBuffer < 0:
		return s, fmt.Errorf("ari: Config.EventBuffer %d must not be negative", cfg.EventBuffer)
	case cfg.EventBuffer == 0:
		s.EventBuffer = DefaultEventBuffer
	}
	switch {
	case cfg.PingInterval < 0:
		return s, fmt.Errorf("ari: Config.PingInterval %v must not be negative", cfg.PingInterval)
	case cfg.PingInterval == 0:
		s.PingInterval = DefaultPingInterval
	}
	switch {
	case cfg.MaxConnections < 0:
		return s, fmt.Errorf("ari: Config.MaxConnections %d must not be negative", cfg.MaxConnections)
	case cfg.MaxConnections == 0:
		s.MaxConnections = DefaultMaxConnections
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// validName reports whether s is safe as a Stasis application name and in
// dialplan and URL positions without escaping.
func validName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return s != ""
}

// randomID returns 8 random hex digits.
func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}
