package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/internal/netguard"
)

// TransportTLS secures the Raft port with mutual TLS.
type TransportTLS struct {
	// Server must require and verify client certificates
	// (tls.RequireAndVerifyClientCert): Raft trusts every byte a peer sends.
	Server *tls.Config
	// Client returns the config for dialing the member at addr.
	Client func(addr string) *tls.Config
	// Metrics counts refused and failed handshakes; nil counts nothing.
	Metrics *netguard.Metrics
	// Track, when set, registers each admitted connection so a certificate
	// reload can close it once its peer no longer verifies
	// (tlsconf.Holder.Track).
	Track func(*tls.Conn)
	// IdleTimeout closes an inbound connection silent for this long
	// (0: defaultIdleTimeout).
	IdleTimeout time.Duration
}

// handshakeTimeout bounds a peer's TLS handshake on the Raft port.
const handshakeTimeout = 5 * time.Second

// Caps on unfinished inbound handshakes on the Raft port. A cluster has a
// handful of members that each hold a few connections, so these are far
// above legitimate need; beyond them a connection is closed at once, so a
// flood of silent TCP connections costs neither goroutines nor
// descriptors for longer than the accept itself. The per-address cap keeps
// one flooding host from taking every place from the real members.
const (
	MaxPendingHandshakes           = 128
	MaxPendingHandshakesPerAddress = 16
)

// raftListener names the Raft port in metrics and logs.
const raftListener = "raft"

// tlsStreamLayer wraps streamLayer: raft only ever sees connections whose
// peer completed a mutual TLS handshake with a certificate from the CA.
// Anything else is closed before raft reads a byte, so an outsider gets no
// answer at all, not even to a term-0 probe.
type tlsStreamLayer struct {
	*streamLayer
	cfg TransportTLS
	log hclog.Logger

	pending   *netguard.Gate
	refusals  *netguard.RateLog // one line per interval, however many are refused
	failures  *netguard.RateLog // likewise for failed handshakes
	acceptLog *netguard.RateLog

	accepted  chan net.Conn
	closing   chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}

	// servers is the latest Raft configuration, nil until raft runs;
	// self is this member's id (transport_identity.go).
	servers atomic.Pointer[func() []raft.Server]
	self    string
	// vouched: ids a configured member named as members, until when
	// (transport_identity.go).
	vouchedMu sync.Mutex
	vouched   map[string]time.Time
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

func newTLSStreamLayer(inner *streamLayer, cfg TransportTLS, logger hclog.Logger) (*tlsStreamLayer, error) {
	if cfg.Server == nil || cfg.Client == nil {
		return nil, errors.New("raft TLS needs both a server and a client configuration")
	}
	s := &tlsStreamLayer{
		streamLayer: inner,
		cfg:         cfg,
		log:         logger,
		pending:     netguard.NewGate(MaxPendingHandshakes, MaxPendingHandshakesPerAddress),
		refusals:    netguard.NewRateLog(logger, 0),
		failures:    netguard.NewRateLog(logger, 0),
		acceptLog:   netguard.NewRateLog(logger, 0),
		accepted:    make(chan net.Conn),
		closing:     make(chan struct{}),
		loopDone:    make(chan struct{}),
	}
	go s.acceptLoop()
	return s, nil
}

// acceptLoop hands each new connection to its own handshake, so a peer
// that connects and stays silent cannot hold up other members. It retries
// failed Accepts (EMFILE under a flood) until Close: a Raft port that
// stopped accepting would cut the member off until a restart.
func (s *tlsStreamLayer) acceptLoop() {
	defer close(s.loopDone)
	netguard.AcceptLoop(s.streamLayer, s.closing, func(err error, retryIn time.Duration) {
		s.acceptLog.Warn("raft: accepting a connection failed; retrying", "error", err, "retry_in", retryIn)
	}, s.admit)
}

// admit starts the handshake of raw if a place is free, else closes it.
func (s *tlsStreamLayer) admit(raw net.Conn) {
	host := netguard.HostOf(raw.RemoteAddr())
	if why := s.pending.Enter(host); why != netguard.Admitted {
		s.cfg.Metrics.Refused(raftListener, "handshake", why)
		s.refusals.Warn("raft: too many unfinished TLS handshakes; closed a new connection at once",
			"remote", raw.RemoteAddr().String(), "cap", why)
		_ = raw.Close()
		return
	}
	go func() {
		defer s.pending.Leave(host)
		conn, err := s.handshake(raw)
		if err != nil {
			s.cfg.Metrics.HandshakeFailed(raftListener)
			s.failures.Warn("raft: refused a connection that did not complete mutual TLS",
				"remote", raw.RemoteAddr().String(), "error", err)
			_ = raw.Close()
			return
		}
		admitted, err := s.admitInbound(conn)
		if err != nil {
			s.cfg.Metrics.Refused(raftListener, "identity", "not-a-configured-member")
			s.refusals.Warn("raft: refused a member certificate", "remote", raw.RemoteAddr().String(), "error", err)
			_ = raw.Close()
			return
		}
		select {
		case s.accepted <- admitted:
		case <-s.closing:
			_ = conn.Close()
		}
	}()
}

// handshake completes mutual TLS on raw within handshakeTimeout. Checks of
// who the peer is belong after it, on the verified connection state.
func (s *tlsStreamLayer) handshake(raw net.Conn) (*tls.Conn, error) {
	conn := tls.Server(raw, s.cfg.Server)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return conn, nil
}

// Accept returns the next connection that completed the handshake.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.loopDone:
		// The loop only ends on Close or a closed listener.
		return nil, net.ErrClosed
	case <-s.closing:
		return nil, net.ErrClosed
	}
}

func (s *tlsStreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		err = s.streamLayer.Close()
	})
	return err
}

// Dial connects from this member's bind IP and completes the handshake, so
// a peer with a certificate from another CA fails here, not mid-RPC.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	raw, err := s.streamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, s.cfg.Client(string(address)))
	if timeout <= 0 {
		timeout = handshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raft tls handshake with %s: %w", address, err)
	}
	if err := s.checkOutbound(conn, address); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raft peer %s: %w", address, err)
	}
	return conn, nil
}
