package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/web"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpServer is the HTTP listener with its limits (HTTPConfig): timeouts, header and body
// sizes, a cap on connections, and the requests in progress, which the shutdown waits for.
type httpServer struct {
	srv      *http.Server
	ln       *limitListener
	requests inFlight
}

// newHTTPServer serves handler on ln within the limits of cfg; every request body is bounded
// by maxBody (api.max_body_bytes), the REST API's included.
//
// How the timeouts of net/http apply here:
//   - ReadHeaderTimeout runs from the connection's start (on a kept-alive connection, from
//     the next request's first bytes) to the end of the headers: a connection that sends
//     nothing, or its headers slowly, is closed at it.
//   - ReadTimeout runs from the same point to the end of the body: a slow body is cut at it.
//     It does not bound the handler: net/http lifts the read deadline once the request is
//     read, so an API switch that legitimately takes several seconds (the engine's PBX read
//     alone may take 10 s) is not cancelled by it (TestHandlerOutlivesReadTimeout).
//   - WriteTimeout runs from the end of the headers to the end of the answer: it bounds the
//     handler and a client that does not read its answer. A handler that streams (the
//     Server-Sent Events a later issue adds on this listener) extends its own write deadline
//     with http.ResponseController.SetWriteDeadline before each write, and must end when the
//     server shuts down (http.Server.RegisterOnShutdown), or it holds the HTTP stage of the
//     shutdown to its budget.
//   - IdleTimeout bounds the wait for a kept-alive connection's next request.
func newHTTPServer(cfg HTTPConfig, maxBody int64, ln net.Listener, handler http.Handler, log *slog.Logger, reg prometheus.Registerer) *httpServer {
	h := &httpServer{ln: newLimitListener(ln, cfg.MaxConnections, log, reg)}
	h.srv = &http.Server{
		Handler:           h.guard(handler, maxBody),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return h
}

// serve accepts connections until stop; it returns http.ErrServerClosed then.
func (h *httpServer) serve() error { return h.srv.Serve(h.ln) }

// stop closes the listener and lets the requests in progress finish until ctx ends; then it
// closes every connection still open, so no slow client can hold the shutdown. forced is the
// number of connections it had to close. Handlers whose connection was closed may still be
// running when it returns: requests.wait waits for them.
func (h *httpServer) stop(ctx context.Context) (forced int, err error) {
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
func (h *httpServer) guard(next http.Handler, maxBody int64) http.Handler {
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

// readiness is the body of /readyz: whether presenced can do its work, and per part why not.
type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
	// Role says whether this instance writes to Asterisk: "leader", or "standby" (a standby
	// is ready: it serves the API), with the leader it knows of.
	Role   string `json:"role"`
	Leader string `json:"leader,omitempty"`
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("/api/v1/", d.api)
	mux.Handle("/", d.web) // the web app: every path the others do not serve
	return mux
}

// health is this instance's summary for the web app's admin page.
func (d *daemon) health(ctx context.Context) web.Health {
	rd := d.readiness(ctx)
	return web.Health{Instance: d.cfg.InstanceID, Role: rd.Role, Leader: rd.Leader, Ready: rd.Ready, Checks: rd.Checks}
}

// readyz answers 200 when AMI is logged in to a fully booted Asterisk, ARI is connected and the
// store answers; otherwise 503, the body saying which part is not ready and why.
func (d *daemon) readyz(w http.ResponseWriter, r *http.Request) {
	rd := d.readiness(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rd)
}

func (d *daemon) readiness(ctx context.Context) readiness {
	rd := readiness{Ready: true, Checks: map[string]string{}}
	fail := func(part, why string) {
		rd.Ready = false
		rd.Checks[part] = why
	}

	switch s := d.ami.Status(); {
	case !s.Connected:
		fail("ami", "not connected to "+d.cfg.Asterisk.AMI.Address+withReason(s.LastError))
	case !s.LoggedIn:
		fail("ami", "connected but not logged in"+withReason(s.LastError))
	case !s.FullyBooted:
		fail("ami", "logged in, waiting for Asterisk to be fully booted")
	default:
		if r := d.amiRead.Status(); !r.FullyBooted {
			fail("ami", "read connection not ready"+withReason(r.LastError))
		} else {
			rd.Checks["ami"] = "ok"
		}
	}

	if s := d.ari.Status(); s.Connected {
		rd.Checks["ari"] = "ok"
	} else {
		fail("ari", "not connected to "+d.cfg.Asterisk.ARI.URL+withReason(s.LastError))
	}

	pingCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := d.store.Ping(pingCtx); err != nil {
		fail("store", err.Error())
	} else if err := d.states.CheckSchema(pingCtx); err != nil {
		fail("store", err.Error())
	} else {
		rd.Checks["store"] = "ok"
	}
	if epoch, ok := d.elector.Leading(); ok {
		rd.Role, rd.Leader = "leader", fmt.Sprintf("%s (epoch %d)", d.cfg.InstanceID, epoch)
	} else {
		rd.Role = "standby"
		switch who, epoch, err := d.elector.Leader(pingCtx); {
		case errors.Is(err, leader.ErrNoLeader):
			rd.Leader = "none: an election is under way"
		case err != nil:
			rd.Leader = "unknown: " + err.Error()
		case who == d.cfg.InstanceID:
			rd.Leader = fmt.Sprintf("%s (this instance, waiting for an earlier lease to run out before it writes)", who)
		default:
			rd.Leader = fmt.Sprintf("%s (epoch %d)", who, epoch)
		}
	}
	return rd
}

func withReason(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}
