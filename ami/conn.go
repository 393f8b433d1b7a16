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

	wmu   sync.Mutex // held by the sender writing to the socket
	wbuf  []byte     // the batch being written; guarded by wmu
	spare []*outgoing
	qmu   sync.Mutex  // guards queue
	queue []*outgoing // actions waiting for the next write

	mu       sync.Mutex
	pending  map[string]*call
	closed   bool
	closeErr error
	done     chan struct{}

	booted         atomic.Bool  // first FullyBooted seen
	protocolErrors atomic.Int64 // bad input seen on this connection

	// start is when the connection was made; lastRead is when the reader last
	// got a message from it, as time since start (monotonic). The keepalive asks
	// it whether Asterisk answered anything while a Ping waited.
	start    time.Time
	lastRead atomic.Int64
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
	return &conn{c: c, nc: nc, rd: rd, pending: make(map[string]*call), done: make(chan struct{}), start: time.Now()}
}

// sinceStart is the time since the connection was made, the clock of lastRead.
func (cn *conn) sinceStart() int64 { return int64(time.Since(cn.start)) }

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
// and the error wraps ErrConnClosed; a write Config.Gate refuses wraps
// ErrGated and is not written.
//
// Writes are combined: an action queued while another goroutine is writing
// goes out with the others queued meanwhile, in one write, by whichever
// sender takes the socket next (the group commit of a database log). A lone
// action is written at once, as before; under a burst of actions (a mass
// switch sends thousands) presenced makes a system call per batch instead of
// per action, and Asterisk reads several actions per read.
func (cn *conn) send(id string, cl *call, msg *Message) error {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return ErrNotConnected
	}
	cn.pending[id] = cl
	cn.mu.Unlock()

	e := &outgoing{wire: msg.appendWire(nil), id: id, cl: cl, gated: cn.c.cfg.Gate != nil && !ungated(cl.action)}
	cn.qmu.Lock()
	cn.queue = append(cn.queue, e)
	cn.qmu.Unlock()
	cn.wmu.Lock()
	if !e.done {
		cn.flushLocked()
	}
	err := e.err
	cn.wmu.Unlock()
	return err
}

// outgoing is an action queued for the socket. done and err are set by the
// sender that wrote it (or refused it), under conn.wmu.
type outgoing struct {
	wire  []byte
	id    string
	cl    *call
	gated bool // Config.Gate decides whether it is written
	done  bool
	err   error
}

// flushLocked writes every queued action in one write; the caller holds
// wmu. Config.Gate is asked once for the batch, just before the write: the
// gated actions it refuses are dropped from the batch and fail with ErrGated.
func (cn *conn) flushLocked() {
	cn.qmu.Lock()
	batch := cn.queue
	cn.queue = cn.spare[:0]
	cn.qmu.Unlock()
	buf := cn.wbuf[:0]
	var gateErr error
	asked := false
	for _, e := range batch {
		if e.gated {
			if !asked {
				// Asked as close to the socket as can be: the write follows at once.
				gateErr, asked = cn.c.cfg.Gate(), true
			}
			if gateErr != nil {
				e.err = fmt.Errorf("ami: %s: %w: %w", e.cl.action, ErrGated, gateErr)
				cn.unregister(e.id)
				continue
			}
		}
		buf = append(buf, e.wire...)
	}
	var werr error
	if len(buf) > 0 {
		_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.c.cfg.DialTimeout))
		_, werr = cn.nc.Write(buf)
	}
	if werr != nil {
		cn.close(fmt.Errorf("write %s: %w", batch[0].cl.action, werr))
	}
	for _, e := range batch {
		if werr != nil && e.err == nil {
			cn.unregister(e.id)
			e.err = fmt.Errorf("ami: %s: %w: write: %v", e.cl.action, ErrConnClosed, werr)
		}
		e.done = true
	}
	clear(batch)
	cn.spare = batch[:0]
	if cap(buf) <= maxWriteBuffer {
		cn.wbuf = buf[:0]
	} else {
		cn.wbuf = nil
	}
}

// maxWriteBuffer is the largest write buffer a connection keeps between
// writes; a larger one (after a burst) is left to the garbage collector.
const maxWriteBuffer = 256 << 10

// unregister drops the call registered under id.
func (cn *conn) unregister(id string) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
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
		var pe *ProtocolError
		if err == nil || errors.As(err, &pe) {
			cn.lastRead.Store(cn.sinceStart()) // Asterisk said something
		}
		switch {
		case err == nil:
			cn.dispatch(m)
		case pe != nil:
			cn.c.protocolError(pe, cn)
			cn.failCall(pe)
		default:
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the connection")
			} else if cn.isClosed() {
				return
			}
			cn.close(fmt.Errorf("read: %w", err))
			return
		}
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
