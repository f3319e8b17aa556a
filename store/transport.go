package store

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer with one twist: outgoing
// connections leave from the IP the member listens on. On loopback every
// member would otherwise send from 127.0.0.1, and the chaos harness, which
// cuts links with iptables rules on source and destination address, could
// not tell members apart.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	localIP   net.IP // nil when the bind address is unspecified (0.0.0.0, ::)
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// Accept is the listener's own: raft's NetworkTransport retries a failed
// Accept (EMFILE under a descriptor flood) after 5 ms doubling to 1 s until
// it shuts down, so the plain layer needs no loop of its own; the TLS
// layer, which accepts itself, uses netguard.AcceptLoop for the same.

// newStreamLayer listens on bind and advertises advertise ("" = the address
// actually bound, which resolves ":0" to the port the kernel chose).
func newStreamLayer(bind, advertise string) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listening for raft on %s: %w", bind, err)
	}
	bound, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		_ = ln.Close()
		return nil, fmt.Errorf("raft listener on %s is not TCP: %T", bind, ln.Addr())
	}
	var adv net.Addr = bound
	if advertise != "" {
		tcp, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("resolving raft advertise address %s: %w", advertise, err)
		}
		if tcp.IP == nil || tcp.IP.IsUnspecified() {
			_ = ln.Close()
			return nil, fmt.Errorf("raft advertise address %s must name a reachable IP", advertise)
		}
		adv = tcp
	} else if bound.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raft bind address %s is unspecified: set an advertise address", bind)
	}
	s := &streamLayer{Listener: ln, advertise: adv}
	if !bound.IP.IsUnspecified() {
		s.localIP = bound.IP
	}
	return s, nil
}

// Addr is what raft puts in its configuration as this member's address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to another member from this member's bind IP.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.localIP != nil && canSendFrom(s.localIP, string(address)) {
		d.LocalAddr = &net.TCPAddr{IP: s.localIP}
	}
	conn, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("dialing raft peer %s: %w", address, err)
	}
	return conn, nil
}

// canSendFrom reports whether a connection to target may leave from local:
// a loopback source cannot reach a non-loopback destination, so a member
// bound to loopback that is told to reach a routable IP lets the kernel pick
// the source instead of failing every dial.
func canSendFrom(local net.IP, target string) bool {
	if !local.IsLoopback() {
		return true
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return true
	}
	ip := net.ParseIP(host)
	return ip == nil || ip.IsLoopback()
}
