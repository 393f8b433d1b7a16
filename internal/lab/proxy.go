package lab

import (
	"fmt"
	"net"
	"sync"
)

// Proxy is a TCP forwarder on 127.0.0.1 in front of a lab service. Tests use it to make a
// service unreachable (SetUp(false) refuses new connections and cuts the open ones), hung
// (SetHung(true) keeps connections open but forwards nothing) and reachable again, without
// touching the service itself.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	up     bool
	hung   bool
	moving *sync.Cond // signalled when hung, up or the proxy's life change
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards every accepted connection to target.
// The proxy starts up (forwarding).
func NewProxy(target string) (*Proxy, error) {
	return newProxy("127.0.0.1:0", target)
}

// newProxy is a Proxy listening on listen (host:port).
func newProxy(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("lab: proxy listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, up: true, conns: map[net.Conn]struct{}{}}
	p.moving = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetUp switches forwarding on or off. Off cuts every open connection and closes new ones at once.
func (p *Proxy) SetUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			c.Close()
		}
	}
	p.moving.Broadcast()
}

// SetHung makes the service look hung (true): connections are accepted and stay open, but
// nothing passes in either direction until SetHung(false), when what was held back is
// delivered (to peers that may have given up by then).
func (p *Proxy) SetHung(hung bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = hung
	p.moving.Broadcast()
}

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.SetUp(false)
	p.wg.Wait()
	return err
}

// flowing waits while the proxy is hung and reports whether data may pass.
func (p *Proxy) flowing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.hung && p.up && !p.closed {
		p.moving.Wait()
	}
	return p.up && !p.closed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.flowing() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break // a cut connection ends here; nothing to report
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
