package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// This file binds Raft connections to member identities. The TLS
// handshake proves "signed by the cluster CA, as a member" (tlsconf
// refuses client certificates on the Raft port); this adds "and a member
// of this cluster's Raft configuration":
//
//   - inbound: the member id in the peer's certificate must be a server of
//     the latest configuration (not this member's own id). A member with an
//     empty configuration (a new member waiting to be added) accepts any
//     member certificate, since the leader that is adding it is not in its
//     configuration yet; it has no state to protect.
//   - inbound, also: an id another member vouched for in the last
//     vouchFor (Store.AdmitRaftPeers). A member that was away while the
//     configuration changed may be led by a member its own, stale,
//     configuration does not hold; it learns the current members from a
//     member over mutual-TLS HTTP (cluster does that when it has no
//     leader) and accepts them for a while.
//   - outbound: the certificate of the member dialled must name the id the
//     configuration holds for that address.
//
// What is not bound: the RPC header's ID and Addr inside the stream. A
// member holding its own valid certificate can still claim another id in a
// request; see docs/security.md for why that adds nothing to what its own
// vote already allows.

// errNoConfiguration: raft has not started yet, so no identity can be
// checked and the connection is refused (the peer retries).
var errNoConfiguration = errors.New("raft configuration not available yet")

// setConfiguration installs the source of the latest Raft configuration
// (raft.Raft exists only after the transport).
func (s *tlsStreamLayer) setConfiguration(servers func() []raft.Server, self string) {
	s.self = self
	s.servers.Store(&servers)
}

func (s *tlsStreamLayer) configuration() ([]raft.Server, error) {
	f := s.servers.Load()
	if f == nil {
		return nil, errNoConfiguration
	}
	return (*f)(), nil
}

// peerMemberID is the member id of the verified certificate conn's peer
// presented.
func peerMemberID(conn *tls.Conn) (string, error) {
	cs := conn.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified peer certificate")
	}
	id, ok := tlsconf.MemberID(cs.VerifiedChains[0][0])
	if !ok {
		return "", fmt.Errorf("peer certificate %q is not a member certificate", cs.VerifiedChains[0][0].Subject.CommonName)
	}
	return id, nil
}

// admitInbound checks an inbound connection whose handshake completed and
// returns what raft may read from: the connection with an idle deadline.
func (s *tlsStreamLayer) admitInbound(conn *tls.Conn) (net.Conn, error) {
	id, err := peerMemberID(conn)
	if err != nil {
		return nil, err
	}
	if id == s.self {
		return nil, fmt.Errorf("peer certificate names this member's own id %q", id)
	}
	servers, err := s.configuration()
	if err != nil {
		return nil, err
	}
	if len(servers) > 0 && !hasServerID(servers, id) && !s.isVouched(id) {
		return nil, fmt.Errorf("member %q is not in the raft configuration", id)
	}
	if s.cfg.Track != nil {
		s.cfg.Track(conn)
	}
	return &idleConn{Conn: conn, idle: s.idleTimeout()}, nil
}

// checkOutbound checks the member dialled at address is the one the
// configuration holds there.
func (s *tlsStreamLayer) checkOutbound(conn *tls.Conn, address raft.ServerAddress) error {
	id, err := peerMemberID(conn)
	if err != nil {
		return err
	}
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	want, ok := serverAt(servers, address)
	if !ok {
		return fmt.Errorf("no member of the raft configuration is at %s", address)
	}
	if id != want {
		return fmt.Errorf("the certificate at %s names member %q; the raft configuration holds %q there", address, id, want)
	}
	if s.cfg.Track != nil {
		s.cfg.Track(conn)
	}
	return nil
}

// vouchFor is how long an id vouched for by another member is admitted:
// long enough to receive the configuration that holds it.
const vouchFor = 5 * time.Minute

// maxVouched bounds the vouched set; members are few.
const maxVouched = 256

func (s *tlsStreamLayer) vouch(ids []string, now time.Time) {
	s.vouchedMu.Lock()
	defer s.vouchedMu.Unlock()
	if s.vouched == nil || len(s.vouched)+len(ids) > maxVouched {
		s.vouched = map[string]time.Time{}
	}
	for _, id := range ids {
		if id != "" && id != s.self {
			s.vouched[id] = now.Add(vouchFor)
		}
	}
}

func (s *tlsStreamLayer) isVouched(id string) bool {
	s.vouchedMu.Lock()
	defer s.vouchedMu.Unlock()
	until, ok := s.vouched[id]
	return ok && time.Now().Before(until)
}

func hasServerID(servers []raft.Server, id string) bool {
	for _, srv := range servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

func serverAt(servers []raft.Server, address raft.ServerAddress) (string, bool) {
	for _, srv := range servers {
		if srv.Address == address {
			return string(srv.ID), true
		}
	}
	return "", false
}

// defaultIdleTimeout is how long an inbound Raft connection may stay
// silent. A leader sends heartbeats every HeartbeatTimeout/10 on its busy
// connections; the ones it keeps pooled but unused are closed after this
// and redialled on demand, so a connection nobody uses cannot be held open
// indefinitely (across a CA rotation, say).
const defaultIdleTimeout = 30 * time.Second

func (s *tlsStreamLayer) idleTimeout() time.Duration {
	if s.cfg.IdleTimeout > 0 {
		return s.cfg.IdleTimeout
	}
	return defaultIdleTimeout
}

// idleConn refreshes a read deadline before every read. A read that times
// out reads as end of stream, so raft closes the connection quietly as if
// the peer had hung up (it logs anything else as a decode error).
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, io.EOF
	}
	return n, err
}
