package lab

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
)

// AMITap records what AMI clients write while it is on, connection by connection (one action
// may take several writes, and the sessions of a daemon write at once). Put its Dial in the
// clients' ami.Config; benchmarks replay what it recorded with a thin client.
type AMITap struct {
	mu    sync.Mutex
	on    bool
	conns []*tappedConn
}

type tappedConn struct {
	net.Conn
	tap *AMITap
	buf bytes.Buffer // guarded by tap.mu
}

// Dial is an ami.Config.Dial that records the connection's writes.
func (a *AMITap) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &tappedConn{Conn: c, tap: a}
	a.mu.Lock()
	a.conns = append(a.conns, tc)
	a.mu.Unlock()
	return tc, nil
}

func (c *tappedConn) Write(p []byte) (int, error) {
	c.tap.mu.Lock()
	if c.tap.on {
		c.buf.Write(p)
	}
	c.tap.mu.Unlock()
	return c.Conn.Write(p)
}

// Start forgets what was recorded and records from now on.
func (a *AMITap) Start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.on = true
	for _, c := range a.conns {
		c.buf.Reset()
	}
}

// Stop ends the recording and returns the actions written since Start, each ending in its
// blank line, without the sessions' own housekeeping (Login, Ping).
func (a *AMITap) Stop() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.on = false
	var out []string
	for _, c := range a.conns {
		for block := range strings.SplitSeq(c.buf.String(), "\r\n\r\n") {
			if block == "" || strings.HasPrefix(block, "Action: Ping\r\n") || strings.HasPrefix(block, "Action: Login\r\n") {
				continue
			}
			out = append(out, block+"\r\n\r\n")
		}
	}
	return out
}
