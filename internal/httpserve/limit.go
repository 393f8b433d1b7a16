package httpserve

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// refusalBody and refusalAnswer are what a connection over http.max_connections gets before
// it is closed.
const refusalBody = "too many connections to presenced; retry\n"

var refusalAnswer = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: " + strconv.Itoa(len(refusalBody)) + "\r\n" +
	"\r\n" + refusalBody

const (
	// refusersMax bounds the connections being refused at once; beyond it a connection over
	// the cap is closed without an answer.
	refusersMax = 64
	// refusalLinger bounds how long a refused connection is kept to answer it: its request is
	// read and dropped so that closing it does not reset the connection before the client has
	// read the 503.
	refusalLinger = time.Second
	// refusalLogEvery is how often, at most, refusals are logged (with their count since).
	refusalLogEvery = 10 * time.Second
)

// limitListener accepts at most cap(sem) connections at once. A connection over the cap is
// refused rather than queued: it is answered 503 with Retry-After and closed, at once, so the
// clients that hold the connections (idle ones are closed after http.idle_timeout) keep being
// served and a new client learns that presenced is busy instead of waiting in the kernel's
// backlog. Refusals are counted in presenced_http_connections_refused_total and logged at most
// every refusalLogEvery.
type limitListener struct {
	net.Listener
	tls      *tls.Config // the refusal is answered over TLS when the listener speaks it
	sem      chan struct{}
	refusers chan struct{}
	log      *slog.Logger
	open     atomic.Int64
	openG    prometheus.Gauge
	refused  prometheus.Counter

	logMu       sync.Mutex
	lastLog     time.Time
	sinceLogged int
}

func newLimitListener(ln net.Listener, max int, log *slog.Logger, reg prometheus.Registerer) *limitListener {
	f := promauto.With(reg)
	return &limitListener{
		Listener: ln,
		sem:      make(chan struct{}, max),
		refusers: make(chan struct{}, refusersMax),
		log:      log,
		openG: f.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_http_connections_open",
			Help: "HTTP connections open (at most http.max_connections).",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "presenced_http_connections_refused_total",
			Help: "HTTP connections refused (503, closed) because http.max_connections were open.",
		}),
	}
}

// Accept returns the next connection under the cap, refusing those over it meanwhile.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			l.open.Add(1)
			l.openG.Inc()
			return &limitedConn{Conn: c, release: l.release}, nil
		default:
			l.refuse(c)
		}
	}
}

// Open is the number of connections open.
func (l *limitListener) Open() int { return int(l.open.Load()) }

func (l *limitListener) release() {
	l.open.Add(-1)
	l.openG.Dec()
	<-l.sem
}

func (l *limitListener) refuse(c net.Conn) {
	l.refused.Inc()
	l.logRefusal()
	select {
	case l.refusers <- struct{}{}:
	default:
		c.Close() // refusing that many already: no answer
		return
	}
	go func() {
		defer func() { <-l.refusers }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refusalLinger))
		if l.tls != nil {
			c = tls.Server(c, l.tls) // the first write makes the handshake, within the deadline
		}
		if _, err := io.WriteString(c, refusalAnswer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

func (l *limitListener) logRefusal() {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	l.sinceLogged++
	if now := time.Now(); now.Sub(l.lastLog) >= refusalLogEvery {
		l.log.Warn("http: connections refused: http.max_connections are open", "max_connections", cap(l.sem),
			"refused", l.sinceLogged)
		l.lastLog, l.sinceLogged = now, 0
	}
}

// limitedConn gives its place back when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
