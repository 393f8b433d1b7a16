// Package amitest provides an in-process fake AMI server for tests, in the
// spirit of net/http/httptest: it listens on 127.0.0.1:0, sends the banner,
// handles Login and Ping, and answers other actions with handlers the test
// registers. It exists for what a real Asterisk cannot be made to do on
// demand: replies out of order or late, events inside a list, garbage,
// disconnects mid-reply, unanswered Pings.
package amitest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// Banner is the greeting the server sends (what Asterisk 22 sends).
const Banner = "Asterisk Call Manager/11.0.0"

// Credentials the server accepts unless changed with SetCredentials.
const (
	Username = "test"
	Secret   = "secret"
)

// Handler answers one action. It runs on the connection's reader
// goroutine, so replies to one connection are written in the order the
// handlers run unless a handler starts its own goroutine (to answer late).
type Handler func(c *Conn, req *ami.Message)

// Server is a fake AMI server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string

	tb testing.TB
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	handlers map[string]Handler
	username string
	secret   string
	booted   bool
	pingOK   bool
	conns    map[*Conn]struct{}
	logins   int
	received []*ami.Message
	closed   bool
	loginCh  chan *Conn
}

// NewServer starts a server that is fully booted, answers Pings and
// accepts Username/Secret. It is closed by tb.Cleanup.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("amitest: listen: %v", err)
	}
	s := &Server{
		Addr:     ln.Addr().String(),
		tb:       tb,
		ln:       ln,
		handlers: make(map[string]Handler),
		username: Username,
		secret:   Secret,
		booted:   true,
		pingOK:   true,
		conns:    make(map[*Conn]struct{}),
		loginCh:  make(chan *Conn, 64),
	}
	s.wg.Add(1)
	go s.accept()
	tb.Cleanup(s.Close)
	return s
}

// Close stops listening, closes every connection and waits for the
// server's goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// Handle registers h for action (case-insensitive), replacing any earlier
// handler. Actions without a handler get "Response: Error" "Message:
// Invalid/unknown command".
func (s *Server) Handle(action string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[strings.ToLower(action)] = h
}

// SetCredentials changes the accepted username and secret.
func (s *Server) SetCredentials(username, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.secret = username, secret
}

// SetBooted sets whether Asterisk is "fully booted": if so, Login is
// followed by a FullyBooted event (as Asterisk does for read=system users).
// Switching to true does not notify connected clients; use
// BroadcastFullyBooted for that.
func (s *Server) SetBooted(b bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.booted = b
}

// SetPingReplies sets whether Ping actions are answered.
func (s *Server) SetPingReplies(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pingOK = ok
}

// Logins returns how many successful logins the server has seen.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Received returns every action received so far (Login and Ping
// included), in order of arrival.
func (s *Server) Received() []*ami.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ami.Message(nil), s.received...)
}

// ReceivedAction returns the received actions named action.
func (s *Server) ReceivedAction(action string) []*ami.Message {
	var out []*ami.Message
	for _, m := range s.Received() {
		if strings.EqualFold(m.Get("Action"), action) {
			out = append(out, m)
		}
	}
	return out
}

// Conns returns the logged-in connections.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Conn
	for c := range s.conns {
		if c.loggedIn {
			out = append(out, c)
		}
	}
	return out
}

// WaitLogin waits up to timeout for the next successful login and returns
// its connection (logins are queued, so one that already happened counts).
func (s *Server) WaitLogin(timeout time.Duration) (*Conn, error) {
	select {
	case c := <-s.loginCh:
		return c, nil
	case <-time.After(timeout):
		return nil, errors.New("amitest: no login within " + timeout.String())
	}
}

// Broadcast sends an event to every logged-in connection.
func (s *Server) Broadcast(ev *ami.Message) {
	for _, c := range s.Conns() {
		_ = c.Send(ev)
	}
}

// BroadcastFullyBooted marks the server booted and sends the FullyBooted
// event to every logged-in connection, as Asterisk does when boot
// completes.
func (s *Server) BroadcastFullyBooted() {
	s.SetBooted(true)
	s.Broadcast(FullyBooted())
}

// DropAll closes every connection (the client sees EOF).
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// FullyBooted returns a FullyBooted event like Asterisk's.
func FullyBooted() *ami.Message {
	return ami.NewMessage("Event", "FullyBooted", "Privilege", "system,all", "Uptime", "5", "LastReload", "5", "Status", "Fully Booted")
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &Conn{s: s, nc: nc}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

// Conn is one client connection to the fake server.
type Conn struct {
	s  *Server
	nc net.Conn

	wmu      sync.Mutex
	loggedIn bool // guarded by s.mu
}

// Send writes a message.
func (c *Conn) Send(m *ami.Message) error {
	b, err := m.MarshalText()
	if err != nil {
		return err
	}
	return c.WriteRaw(string(b))
}

// WriteRaw writes text as is (for garbage, partial messages, ...).
func (c *Conn) WriteRaw(text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.nc, text)
	return err
}

// Reply sends a response to req: "Response: <response>", req's ActionID,
// then the key/value pairs.
func (c *Conn) Reply(req *ami.Message, response string, kv ...string) error {
	return c.Send(Response(req, response, kv...))
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Response builds a response to req: "Response: <response>", req's
// ActionID (if any), then the key/value pairs.
func Response(req *ami.Message, response string, kv ...string) *ami.Message {
	m := ami.NewMessage("Response", response)
	if id, ok := req.Lookup("ActionID"); ok {
		m.Add("ActionID", id)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return m
}

// Event builds an event for req's list: "Event: <name>", req's ActionID,
// then the key/value pairs.
func Event(req *ami.Message, name string, kv ...string) *ami.Message {
	m := ami.NewMessage("Event", name)
	if req != nil {
		if id, ok := req.Lookup("ActionID"); ok {
			m.Add("ActionID", id)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return m
}

// SendList answers req with a complete list as Asterisk does: a Success
// response with "EventList: start", the items (each gets req's ActionID),
// and "Event: <complete>" with "EventList: Complete" and "ListItems: N".
func (c *Conn) SendList(req *ami.Message, complete string, items ...*ami.Message) error {
	if err := c.Reply(req, "Success", "EventList", "start", "Message", "List will follow"); err != nil {
		return err
	}
	for _, it := range items {
		it = it.Clone()
		if id, ok := req.Lookup("ActionID"); ok {
			it.Set("ActionID", id)
		}
		if err := c.Send(it); err != nil {
			return err
		}
	}
	return c.Send(Event(req, complete, "EventList", "Complete", "ListItems", fmt.Sprint(len(items))))
}

func (c *Conn) serve() {
	s := c.s
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if err := c.WriteRaw(Banner + "\r\n"); err != nil {
		return
	}
	rd := ami.NewReader(c.nc)
	for {
		req, err := rd.ReadMessage()
		if err != nil {
			var pe *ami.ProtocolError
			if errors.As(err, &pe) {
				continue
			}
			return
		}
		s.mu.Lock()
		s.received = append(s.received, req)
		loggedIn := c.loggedIn
		s.mu.Unlock()
		action := strings.ToLower(req.Get("Action"))
		switch {
		case action == "login":
			c.login(req)
		case !loggedIn:
			_ = c.Reply(req, "Error", "Message", "Authentication Required")
		case action == "ping":
			s.mu.Lock()
			ok := s.pingOK
			s.mu.Unlock()
			if ok {
				_ = c.Reply(req, "Success", "Ping", "Pong", "Timestamp", fmt.Sprintf("%d.000000", time.Now().Unix()))
			}
		case action == "logoff":
			_ = c.Reply(req, "Goodbye", "Message", "Thanks for all the fish.")
			return
		default:
			s.mu.Lock()
			h := s.handlers[action]
			s.mu.Unlock()
			if h == nil {
				_ = c.Reply(req, "Error", "Message", "Invalid/unknown command")
				continue
			}
			h(c, req)
		}
	}
}

func (c *Conn) login(req *ami.Message) {
	s := c.s
	s.mu.Lock()
	ok := req.Get("Username") == s.username && req.Get("Secret") == s.secret
	booted := s.booted
	s.mu.Unlock()
	if !ok {
		_ = c.Reply(req, "Error", "Message", "Authentication failed")
		return
	}
	s.mu.Lock()
	c.loggedIn = true
	s.logins++
	s.mu.Unlock()
	_ = c.Reply(req, "Success", "Message", "Authentication accepted")
	if booted {
		_ = c.Send(FullyBooted())
	}
	select {
	case s.loginCh <- c:
	default:
	}
}
