package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s: %w", f.Cert, f.CA, err)
		}
	}
	return &material{cert: &pair, pool: pool, leaf: leaf, loaded: now}, nil
}

// Holder keeps the current certificate and CA pool and hands them to every
// handshake, so Reload (on SIGHUP) rotates them without a restart:
// connections already open keep their certificate; new ones use the new one.
type Holder struct {
	files Files
	now   func() time.Time
	mu    sync.RWMutex
	cur   *material
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

// Reload re-reads the files. On error the previous certificate stays in use.
func (h *Holder) Reload() error {
	m, err := load(h.files, h.now())
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.cur = m
	h.mu.Unlock()
	return nil
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
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := h.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				ClientCAs:    m.pool,
				ClientAuth:   auth,
				NextProtos:   []string{"h2", "http/1.1"},
			}, nil
		},
	}
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

// IsMember reports whether r came over TLS with a client certificate that
// verified against the CA: only members hold one.
func IsMember(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// RequireMemberToJoin guards POST joinPath: without an admin token the
// only proof that a joining process belongs is its member certificate, so
// a join without one is refused with 403 before it can be forwarded (the
// forwarding member's own certificate must not vouch for it).
// With an admin token configured the API layer demands the token instead.
func RequireMemberToJoin(next http.Handler, joinPath string, adminTokenSet bool) http.Handler {
	if adminTokenSet {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == joinPath && !IsMember(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"status":"forbidden","errors":[{"location":"header","name":"certificate","description":"joining requires a member certificate signed by the cluster CA (or the admin token)"}]}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
