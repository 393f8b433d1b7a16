// Package httpserve is presenced's HTTP listener with its limits: timeouts, header and body
// sizes, a cap on open connections (over it a connection is answered 503 and closed), and
// the requests in progress, which a shutdown waits for. What it serves is the caller's.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits are the bounds of a Server.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxConnections caps the connections open at once (see limitListener).
	MaxConnections int
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes int64
	// TLS, when set, makes the listener speak HTTPS (HTTP/1.1) with it; see CertFiles.
	TLS *tls.Config
}

// Server is the HTTP listener with its limits (Limits): timeouts, header and body
// sizes, a cap on connections, and the requests in progress, which the shutdown waits for.
type Server struct {
	srv      *http.Server
	ln       *limitListener
	requests inFlight
}

// New serves handler on ln within the limits of cfg; every request body is bounded by
// cfg.MaxBodyBytes.
//
// How the timeouts of net/http apply here:
//   - ReadHeaderTimeout runs from the connection's start (on a kept-alive connection, from
//     the next request's first bytes) to the end of the headers: a connection that sends
//     nothing, or its headers slowly, is closed at it.
//   - ReadTimeout runs from the same point to the end of the body: a slow body is cut at it.
//     It does not bound the handler: net/http lifts the read deadline once the request is
//     read, so an API switch that legitimately takes several seconds (the engine's PBX read
//     alone may take 10 s) is not cancelled by it (cmd/presenced TestHandlerOutlivesReadTimeout).
//   - WriteTimeout runs from the end of the headers to the end of the answer: it bounds the
//     handler and a client that does not read its answer. A handler that streams (the
//     Server-Sent Events a later issue adds on this listener) extends its own write deadline
//     with http.ResponseController.SetWriteDeadline before each write, and must end when the
//     server shuts down (http.Server.RegisterOnShutdown), or it holds the HTTP stage of the
//     shutdown to its budget.
//   - IdleTimeout bounds the wait for a kept-alive connection's next request.
func New(cfg Limits, ln net.Listener, handler http.Handler, log *slog.Logger, reg prometheus.Registerer) *Server {
	h := &Server{ln: newLimitListener(ln, cfg.MaxConnections, log, reg)}
	h.ln.tls = cfg.TLS
	h.srv = &http.Server{
		Handler:           h.guard(handler, cfg.MaxBodyBytes),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLS != nil {
		h.srv.TLSConfig = cfg.TLS
		// HTTP/1.1 only: one request stream per connection, as http.max_connections and the
		// web app's event streams (one connection per open page) count them.
		h.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return h
}

// Serve accepts connections until Stop; it returns http.ErrServerClosed then.
func (h *Server) Serve() error {
	if h.srv.TLSConfig != nil {
		return h.srv.ServeTLS(h.ln, "", "") // the certificate comes from TLSConfig
	}
	return h.srv.Serve(h.ln)
}

// Stop closes the listener and lets the requests in progress finish until ctx ends; then it
// closes every connection still open, so no slow client can hold the shutdown. forced is the
// number of connections it had to close. Handlers whose connection was closed may still be
// running when it returns: Wait waits for them.
func (h *Server) Stop(ctx context.Context) (forced int, err error) {
	if err := h.srv.Shutdown(ctx); err == nil {
		return 0, nil
	}
	forced = h.ln.Open()
	if err := h.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return forced, err
	}
	return forced, nil
}

// guard bounds every request body by maxBody and counts the handlers running, which the
// shutdown waits for.
func (h *Server) guard(next http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.start()
		defer h.requests.done()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// inFlight counts the handlers running.
type inFlight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (f *inFlight) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.idle = make(chan struct{})
	}
	f.n++
}

func (f *inFlight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 {
		close(f.idle)
	}
}

// wait returns when no handler runs, or with ctx's error and the number still running.
func (f *inFlight) wait(ctx context.Context) (int, error) {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return 0, nil
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return 0, nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.n, ctx.Err()
	}
}

// Wait returns when no handler runs, or with ctx's error and the number still running.
func (h *Server) Wait(ctx context.Context) (int, error) { return h.requests.wait(ctx) }

// RegisterOnShutdown registers f to be called when Stop begins (http.Server.RegisterOnShutdown):
// handlers that stream end there, so that they do not hold the shutdown to its budget.
func (h *Server) RegisterOnShutdown(f func()) { h.srv.RegisterOnShutdown(f) }
