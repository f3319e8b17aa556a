package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Files are the three files a secured member is configured with.
type Files struct {
	CA, Cert, Key string
}

// Enabled reports whether any TLS file is configured.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Check refuses a half configuration: a member with a certificate but no
// CA could not verify its peers, one with a CA but no certificate could not
// prove itself, so both are mistakes rather than a weaker mode.
func (f Files) Check() error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	for _, file := range []struct{ path, flag string }{{f.CA, "--tls-ca"}, {f.Cert, "--tls-cert"}, {f.Key, "--tls-key"}} {
		if file.path == "" {
			missing = append(missing, file.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("TLS is half configured: %s missing (set all of --tls-ca, --tls-cert and --tls-key, or none)", strings.Join(missing, " and "))
	}
	return nil
}

// material is one consistent load of the files.
type material struct {
	cert   *tls.Certificate
	pool   *x509.CertPool
	leaf   *x509.Certificate
	loaded time.Time
}

// load reads and checks the files: the key matches the certificate, the
// certificate is valid now and chains to the CA for both server and client
// use.
func load(f Files, now time.Time) (*material, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca %s: %w", f.CA, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", f.Cert, f.Key, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", f.Cert, err)
	}
	pair.Leaf = leaf
	if leaf.IsCA {
		return nil, fmt.Errorf("--tls-cert %s is a CA certificate; give the member certificate (`wimms tls cert`)", f.Cert)
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("--tls-cert %s is not valid before %s", f.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("--tls-cert %s expired at %s", f.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, ok := MemberID(leaf); !ok {
		return nil, fmt.Errorf("--tls-cert %s is not a member certificate (no spiffe://wimms/member/ID name): issue one with `wimms tls cert --role member --name ID`", f.Cert)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s: %w", f.Cert, f.CA, err)
		}
	}
	return &material{cert: &pair, pool: pool, leaf: leaf, loaded: now}, nil
}

// Holder keeps the current certificate and CA pool and hands them to every
// handshake, so Reload (on SIGHUP) rotates them without a restart: new
// connections use the new ones, and every tracked open connection whose
// peer no longer verifies against the new CA is closed (registry.go).
type Holder struct {
	files Files
	now   func() time.Time
	mu    sync.RWMutex
	cur   *material
	conns registry
}

// Load reads and checks the files once; an error is a reason not to start.
func Load(f Files) (*Holder, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if !f.Enabled() {
		return nil, errors.New("tlsconf: no TLS files configured")
	}
	h := &Holder{files: f, now: time.Now}
	m, err := load(f, h.now())
	if err != nil {
		return nil, err
	}
	h.cur = m
	return h, nil
}

// Reload re-reads the files and closes the tracked connections whose peer
// no longer verifies. On error the previous certificate stays in use and
// nothing is closed.
func (h *Holder) Reload() error {
	_, err := h.ReloadAndRevalidate()
	return err
}

// ReloadAndRevalidate is Reload that also says how many connections it
// closed. The member id may not change: a member certificate for another
// id is refused like a broken file, since peers know this process by it.
func (h *Holder) ReloadAndRevalidate() (closed int, err error) {
	m, err := load(h.files, h.now())
	if err != nil {
		return 0, err
	}
	oldID, _ := MemberID(h.current().leaf)
	if newID, _ := MemberID(m.leaf); newID != oldID {
		return 0, fmt.Errorf("--tls-cert %s names member %q, but this member was started as %q: keeping the previous certificate", h.files.Cert, newID, oldID)
	}
	h.mu.Lock()
	h.cur = m
	h.mu.Unlock()
	return h.revalidate(m), nil
}

// MemberID is the member id this member's own certificate names.
func (h *Holder) MemberID() string {
	id, _ := MemberID(h.current().leaf)
	return id
}

// Summary describes the certificate in use, for logs.
func (h *Holder) Summary() (subject string, serial string, notAfter time.Time) {
	m := h.current()
	return m.leaf.Subject.CommonName, m.leaf.SerialNumber.Text(16), m.leaf.NotAfter
}

func (h *Holder) current() *material {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cur
}

// ServerConfig is the listener side. requireClientCert: the Raft port
// (only members may connect) requires and verifies a client certificate;
// the HTTP port verifies one if given (members present theirs, API clients
// need none) so handlers can tell a member from a client.
func (h *Holder) ServerConfig(requireClientCert bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClientCert {
		auth = tls.RequireAndVerifyClientCert
	}
	var verify func(tls.ConnectionState) error
	if requireClientCert {
		verify = requireMemberPeer
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := h.current()
			return &tls.Config{
				MinVersion:       tls.VersionTLS12,
				Certificates:     []tls.Certificate{*m.cert},
				ClientCAs:        m.pool,
				ClientAuth:       auth,
				NextProtos:       []string{"h2", "http/1.1"},
				VerifyConnection: verify,
			}, nil
		},
	}
}

// requireMemberPeer fails a handshake whose (verified) peer certificate is
// not a member certificate: a client certificate from the same CA must not
// reach Raft, and a member must not mistake one for a peer.
func requireMemberPeer(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return errors.New("no verified peer certificate")
	}
	if _, ok := MemberID(cs.VerifiedChains[0][0]); !ok {
		return fmt.Errorf("peer certificate %q is not a member certificate", cs.VerifiedChains[0][0].Subject.CommonName)
	}
	return nil
}

// ClientConfig is the dialing side towards another member at addr
// (host:port or host): the member certificate is presented, and the peer
// must present one from the CA naming host.
func (h *Holder) ClientConfig(addr string) *tls.Config {
	m := h.current()
	host := addr
	if hh, _, err := net.SplitHostPort(addr); err == nil {
		host = hh
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    m.pool,
		ServerName: host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return h.current().cert, nil
		},
		VerifyConnection: requireMemberPeer,
	}
}

// DialContext dials addr with d and completes a mutual TLS handshake; the
// connection is closed when the handshake fails.
func (h *Holder) DialContext(ctx context.Context, d *net.Dialer, network, addr string) (*tls.Conn, error) {
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, h.ClientConfig(addr))
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return conn, nil
}

// IsMember reports whether r came over TLS with a verified member
// certificate. A client certificate from the same CA is not enough.
func IsMember(r *http.Request) bool {
	_, ok := RequestMemberID(r)
	return ok
}

// InternalPrefix is where the member-to-member routes live.
const InternalPrefix = "/internal/"

// GuardMemberRoutes is the HTTPS listener's identity check, in front of
// the API (which checks tokens):
//   - InternalPrefix routes (read index, relayed batches) need a member
//     certificate naming a current member (configured(id), when set):
//     403 otherwise, whatever token comes with it.
//   - POST joinPath without an admin token configured needs a member
//     certificate naming the joining id (the id in the body), or, when a
//     member relays the join (forwardedHeader set), naming that member.
//     The relaying member made the first check at its edge; the
//     forwarding header must name the certificate's holder, a current
//     member, so that no member can pass a join off as relayed by another.
//
// With an admin token configured the API layer demands it on joins
// instead, so an operator can admit a member with the token.
func GuardMemberRoutes(next http.Handler, joinPath, forwardedHeader string, adminTokenSet bool, configured func(id string) bool) http.Handler {
	current := func(id string) bool { return configured == nil || configured(id) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, InternalPrefix) {
			id, ok := RequestMemberID(r)
			if !ok {
				forbid(w, "member-to-member routes require a member certificate signed by the cluster CA")
				return
			}
			if !current(id) {
				forbid(w, fmt.Sprintf("member %q is not in the raft configuration", id))
				return
			}
		}
		if adminTokenSet || r.Method != http.MethodPost || r.URL.Path != joinPath {
			next.ServeHTTP(w, r)
			return
		}
		id, ok := RequestMemberID(r)
		if !ok {
			forbid(w, "joining requires a member certificate signed by the cluster CA (or the admin token)")
			return
		}
		if fwd := r.Header.Get(forwardedHeader); fwd != "" {
			if fwd != id {
				forbid(w, fmt.Sprintf("a join relayed by %q came with the certificate of member %q", fwd, id))
				return
			}
			if !current(id) {
				forbid(w, fmt.Sprintf("member %q, which relayed the join, is not in the raft configuration", id))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxJoinBody+1))
		if err != nil || len(body) > maxJoinBody {
			// Too long or unreadable: the API would refuse it anyway, and
			// the certificate check needs the whole body.
			forbid(w, "join request body unreadable or too long to check against the certificate")
			return
		}
		var join struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &join) == nil && join.ID != "" && join.ID != id {
			forbid(w, fmt.Sprintf("the member certificate names %q; it cannot join as %q", id, join.ID))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// maxJoinBody bounds the join body read for the certificate check; a join
// request is a few hundred bytes.
const maxJoinBody = 64 << 10

func forbid(w http.ResponseWriter, desc string) {
	b, _ := json.Marshal(map[string]any{"status": "forbidden", "errors": []map[string]string{{"location": "header", "name": "certificate", "description": desc}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(append(b, '\n'))
}
