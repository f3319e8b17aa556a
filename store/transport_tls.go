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
)

// TransportTLS secures the Raft port with mutual TLS.
type TransportTLS struct {
	// Server must require and verify client certificates
	// (tls.RequireAndVerifyClientCert): Raft trusts every byte a peer sends.
	Server *tls.Config
	// Client returns the config for dialing the member at addr.
	Client func(addr string) *tls.Config
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

// tlsStreamLayer wraps streamLayer: raft only ever sees connections whose
// peer completed a mutual TLS handshake with a certificate from the CA.
// Anything else is closed before raft reads a byte, so an outsider gets no
// answer at all, not even to a term-0 probe.
type tlsStreamLayer struct {
	*streamLayer
	cfg TransportTLS
	log hclog.Logger

	accepted  chan net.Conn
	closing   chan struct{}
	closeOnce sync.Once
	acceptErr error
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
		accepted:    make(chan net.Conn),
		closing:     make(chan struct{}),
		loopDone:    make(chan struct{}),
	}
	go s.acceptLoop()
	return s, nil
}

// acceptLoop hands each new connection to its own handshake, so a peer
// that connects and stays silent cannot hold up other members.
func (s *tlsStreamLayer) acceptLoop() {
	defer close(s.loopDone)
	for {
		raw, err := s.streamLayer.Accept()
		if err != nil {
			s.acceptErr = err
			return
		}
		go s.handshake(raw)
	}
}

func (s *tlsStreamLayer) handshake(raw net.Conn) {
	conn := tls.Server(raw, s.cfg.Server)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Warn("raft: refused a connection that did not complete mutual TLS", "remote", raw.RemoteAddr().String(), "error", err)
		_ = raw.Close()
		return
	}
	admitted, err := s.admitInbound(conn)
	if err != nil {
		s.log.Warn("raft: refused a member certificate", "remote", raw.RemoteAddr().String(), "error", err)
		_ = raw.Close()
		return
	}
	select {
	case s.accepted <- admitted:
	case <-s.closing:
		_ = conn.Close()
	}
}

// Accept returns the next connection that completed the handshake.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.loopDone:
		return nil, fmt.Errorf("raft tls listener closed: %w", s.acceptErr)
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
