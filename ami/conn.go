package ami

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one logged-in TCP connection: a reader goroutine and the table of
// calls waiting for replies (net/rpc style: register before writing,
// unregister if the write fails, never block the reader).
type conn struct {
	c  *Client
	nc net.Conn
	rd *Reader

	ctx    context.Context // cancelled when the connection ends (OnReady's ctx)
	cancel context.CancelFunc

	wmu sync.Mutex // serialises writes

	mu       sync.Mutex
	pending  map[string]*call
	closed   bool
	closeErr error
	done     chan struct{}

	booted         atomic.Bool  // first FullyBooted seen
	protocolErrors atomic.Int64 // bad input seen on this connection
}

// call is one action waiting for its reply.
type call struct {
	action string
	list   bool // collect list items until the Complete event

	// Guarded by conn.mu until done is closed.
	resp      *Message
	items     []*Message
	complete  *Message
	inList    bool // resp had "EventList: start"
	err       error
	signalled bool // done closed
	abandoned bool // the caller gave up; replies are dropped
	draining  bool // the caller has its answer; swallow the rest of the list

	done chan struct{}
}

func newConn(c *Client, nc net.Conn, rd *Reader) *conn {
	return &conn{c: c, nc: nc, rd: rd, pending: make(map[string]*call), done: make(chan struct{})}
}

func (cn *conn) isClosed() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.closed
}

func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.closeErr
}

// close shuts the connection down once and fails every waiting call with
// an error wrapping ErrConnClosed.
func (cn *conn) close(cause error) {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return
	}
	cn.closed = true
	cn.closeErr = cause
	err := fmt.Errorf("%w: %v", ErrConnClosed, cause)
	for id, cl := range cn.pending {
		delete(cn.pending, id)
		if !cl.signalled && !cl.abandoned {
			cl.err = err
			cl.signalled = true
			close(cl.done)
		}
	}
	cn.mu.Unlock()
	_ = cn.nc.Close()
	close(cn.done)
}

// send registers cl under id and writes msg. If the connection is already
// closed nothing is written and the error wraps ErrNotConnected. A failed
// write closes the connection (a partial write leaves the stream unusable)
// and the error wraps ErrConnClosed.
func (cn *conn) send(id string, cl *call, msg *Message) error {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return ErrNotConnected
	}
	cn.pending[id] = cl
	cn.mu.Unlock()

	b := msg.appendWire(nil)
	cn.wmu.Lock()
	if gate := cn.c.cfg.Gate; gate != nil && !ungated(cl.action) {
		// Asked as close to the socket as can be: the write follows at once.
		if err := gate(); err != nil {
			cn.wmu.Unlock()
			cn.mu.Lock()
			delete(cn.pending, id)
			cn.mu.Unlock()
			return fmt.Errorf("ami: %s: %w: %w", cl.action, ErrGated, err)
		}
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.c.cfg.DialTimeout))
	_, err := cn.nc.Write(b)
	cn.wmu.Unlock()
	if err != nil {
		cn.close(fmt.Errorf("write %s: %w", cl.action, err))
		cn.mu.Lock()
		delete(cn.pending, id)
		cn.mu.Unlock()
		return fmt.Errorf("ami: %s: %w: write: %v", cl.action, ErrConnClosed, err)
	}
	return nil
}

// abandon marks a call whose caller gave up. It reports false if the reply
// arrived first (then cl.done is or will be closed).
func (cn *conn) abandon(cl *call) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cl.signalled {
		return false
	}
	// The entry stays registered so that the late reply (and, for a
	// list, its items) is recognised and dropped instead of reaching
	// subscribers; it goes when the reply completes or the connection
	// ends.
	cl.abandoned = true
	return true
}

// readLoop reads until the connection fails, dispatching each message.
func (cn *conn) readLoop() {
	for {
		m, err := cn.rd.ReadMessage()
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				cn.c.protocolError(pe, cn)
				cn.failCall(pe)
				continue
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the connection")
			} else if cn.isClosed() {
				return
			}
			cn.close(fmt.Errorf("read: %w", err))
			return
		}
		cn.dispatch(m)
	}
}

// failCall fails the call a skipped message belonged to, if any.
func (cn *conn) failCall(pe *ProtocolError) {
	if pe.ActionID == "" {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cl := cn.pending[pe.ActionID]
	if cl == nil {
		return
	}
	if cl.list && (cl.resp == nil || cl.inList) {
		// Keep swallowing the rest of the list so it does not reach
		// subscribers as events.
		cl.draining = true
	} else {
		delete(cn.pending, pe.ActionID)
	}
	if !cl.signalled && !cl.abandoned {
		cl.err = fmt.Errorf("reply skipped: %w", pe)
		cl.signalled = true
		close(cl.done)
	}
}

// dispatch routes one message: to the call waiting for its ActionID, else
// (events) to subscribers, else it is a late reply and dropped.
func (cn *conn) dispatch(m *Message) {
	if id := m.ActionID(); id != "" && cn.feed(id, m) {
		return
	}
	if m.IsEvent() {
		cn.c.handleEvent(cn, m)
		return
	}
	cn.c.met.lateReplies.Inc()
	cn.c.log.Debug("AMI reply for no waiting call dropped", "action_id", m.ActionID(), "response", m.Response(), "message", m.Get("Message"))
}

// feed gives m to the call registered under id. It reports whether the
// message was consumed.
func (cn *conn) feed(id string, m *Message) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cl := cn.pending[id]
	if cl == nil {
		return false
	}
	finished := false
	switch {
	case cl.resp == nil:
		if !m.IsResponse() {
			return false // an event that merely carries the ActionID
		}
		cl.resp = m
		cl.inList = isSuccess(m) && strings.EqualFold(m.Get("EventList"), "start")
		finished = !cl.inList
	case cl.inList && m.IsEvent():
		if strings.EqualFold(m.Get("EventList"), "Complete") {
			cl.complete = m
			finished = true
		} else if cl.list && !cl.draining && !cl.abandoned {
			cl.items = append(cl.items, m)
		}
	default:
		return false
	}
	if cl.abandoned {
		cn.c.met.lateReplies.Inc()
		cn.c.log.Debug("late AMI reply for an abandoned call dropped", "action", cl.action, "action_id", id,
			"response", m.Response(), "event", m.Event())
	}
	if finished {
		delete(cn.pending, id)
	}
	if cl.signalled || cl.abandoned {
		return true
	}
	if finished || (!cl.list && cl.resp != nil) {
		// A Do on a list action gets its response now; the items that
		// follow are swallowed until the Complete event.
		if !finished {
			cl.draining = true
		}
		cl.signalled = true
		close(cl.done)
	}
	return true
}

// ungated reports whether an action is written whatever Config.Gate says: those that keep the
// session itself alive.
func ungated(action string) bool {
	switch strings.ToLower(action) {
	case "login", "challenge", "ping", "logoff":
		return true
	}
	return false
}
