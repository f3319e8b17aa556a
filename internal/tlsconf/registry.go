package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"time"
	"weak"
)

// registry remembers the open connections whose peer presented a
// certificate, so that a reload can close those the new CA no longer
// vouches for: TLS checks a peer once, at the handshake, and without this
// a connection opened before a CA rotation would stay trusted for as long
// as its holder keeps it open.
//
// Entries hold the connection weakly: a connection that was closed and
// dropped by its user disappears from the registry at the next prune, so
// callers never need to untrack (the HTTP client's pooled connections give
// no close hook).
type registry struct {
	mu        sync.Mutex
	conns     map[weak.Pointer[tls.Conn]]trackedConn
	pruneSize int
}

type trackedConn struct {
	chain      []*x509.Certificate // as the peer presented it, leaf first
	needMember bool
}

// Track registers conn, whose handshake must be complete; it is closed by
// a later reload when its peer chain no longer verifies against the new
// CA (or, needMember, no longer names a member). A connection whose peer
// presented no certificate (an API client) is remembered but never
// closed: there is nothing to re-verify, and tokens decide what it may do.
// Tracking the same connection again is cheap (the HTTPS server does it on
// every request).
func (h *Holder) Track(conn *tls.Conn, needMember bool) {
	if conn == nil {
		return
	}
	r := &h.conns
	key := weak.Make(conn)
	r.mu.Lock()
	_, known := r.conns[key]
	r.mu.Unlock()
	if known {
		return
	}
	cs := conn.ConnectionState()
	if !cs.HandshakeComplete {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = map[weak.Pointer[tls.Conn]]trackedConn{}
	}
	r.conns[key] = trackedConn{chain: cs.PeerCertificates, needMember: needMember}
	if len(r.conns) > max(2*r.pruneSize, 64) {
		r.pruneLocked()
		r.pruneSize = len(r.conns)
	}
}

// Tracked is how many live connections the registry holds.
func (h *Holder) Tracked() int {
	r := &h.conns
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked()
	return len(r.conns)
}

func (r *registry) pruneLocked() {
	for k := range r.conns {
		if k.Value() == nil {
			delete(r.conns, k)
		}
	}
}

// revalidate closes every tracked connection whose peer no longer
// verifies against m, and returns how many it closed. Closing runs in its
// own goroutine: a TLS close sends an alert and may wait on a peer that
// does not read.
func (h *Holder) revalidate(m *material) int {
	r := &h.conns
	r.mu.Lock()
	defer r.mu.Unlock()
	now := h.now()
	closed := 0
	for k, t := range r.conns {
		conn := k.Value()
		if conn == nil {
			delete(r.conns, k)
			continue
		}
		if len(t.chain) == 0 || stillTrusted(t, m.pool, now) {
			continue
		}
		delete(r.conns, k)
		closed++
		go func() { _ = conn.Close() }()
	}
	return closed
}

func stillTrusted(t trackedConn, roots *x509.CertPool, now time.Time) bool {
	inter := x509.NewCertPool()
	for _, c := range t.chain[1:] {
		inter.AddCert(c)
	}
	leaf := t.chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return false
	}
	if t.needMember {
		if _, ok := MemberID(leaf); !ok {
			return false
		}
	}
	return true
}
