package throttle

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// ClientAddr is the address of the client that sent r: the TCP peer, unless the peer is one of
// the trusted proxies. Then X-Forwarded-For is read from the right (each proxy appends the
// address it received the request from): the first address that is not a trusted proxy is
// the client. A client can put anything at the left of the header, so only what trusted
// proxies appended counts; an entry that is not an address ends the walk at the proxy that
// wrote it. Without trusted proxies X-Forwarded-For is ignored. The zero Addr means the peer's
// address is unknown (not IP:port).
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for _, hop := range slices.Backward(hops) {
		a, ok := parseHop(strings.TrimSpace(hop))
		if !ok {
			return addr
		}
		addr = a
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a port ("[::1]:443").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Key is the key failures of addr are counted under: an IPv4 address itself, the /64 network
// of an IPv6 address (one subscriber is usually given a whole /64, so counting its addresses
// one by one would give it 2^64 budgets), "unknown" for the zero Addr.
func Key(addr netip.Addr) string {
	switch {
	case !addr.IsValid():
		return "unknown"
	case addr.Is4():
		return addr.String()
	}
	p, _ := addr.WithZone("").Prefix(64)
	return p.String()
}

// ParsePrefix reads a trusted proxy: a CIDR such as 10.0.0.0/8 or one address (10.0.0.1,
// which means 10.0.0.1/32).
func ParsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR such as 10.0.0.0/8", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
