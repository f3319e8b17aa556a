// Package tlsconf issues and loads the certificates that secure a wimms
// cluster: a private CA, member certificates (each both a server and a
// client certificate), the gossip encryption key, and the reloadable
// tls.Config values the Raft transport, member-to-member HTTP and the API
// listener use. See docs/security.md.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the directories `wimms tls ca` and `wimms tls cert` write.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// Validity of issued certificates. Rotation is by re-issuing and SIGHUP;
// revocation is by re-issuing the CA, so lifetimes need not be short.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	MemberValidity = 2 * 365 * 24 * time.Hour
	// backdate tolerates clocks a little behind the issuer's.
	backdate = 5 * time.Minute
)

// GossipKeyBytes is the memberlist key size: 32 bytes selects AES-256.
const GossipKeyBytes = 32

// Issued names the files one issue operation wrote.
type Issued struct {
	CertFile, KeyFile string
}

// CreateCA writes a new self-signed ECDSA P-256 CA into dir (ca.pem, and
// ca-key.pem with mode 0600). It refuses to overwrite an existing CA: a new
// CA revokes every certificate of the old one.
func CreateCA(dir string, now time.Time) (Issued, error) {
	out := Issued{CertFile: filepath.Join(dir, CACertFile), KeyFile: filepath.Join(dir, CAKeyFile)}
	if err := refuseExisting(out.CertFile, out.KeyFile); err != nil {
		return Issued{}, err
	}
	key, serial, err := newKeyAndSerial("CA key")
	if err != nil {
		return Issued{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wimms cluster CA " + serial.Text(16)[:8], Organization: []string{"wimms"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Issued{}, fmt.Errorf("signing CA certificate: %w", err)
	}
	if err := writePair(dir, out, der, key); err != nil {
		return Issued{}, err
	}
	return out, nil
}

// CertRequest describes a certificate to issue.
type CertRequest struct {
	// Role is RoleMember (a Raft peer: Name is its member id) or RoleClient
	// (a tool: HTTPS API only). There is no default: see IssueRole.
	Role  Role
	Name  string   // file name stem, common name and id, e.g. "wimms-1"
	Hosts []string // IP addresses and DNS names the member is reached at
}

// CreateCert issues a certificate signed by the CA in caDir and writes
// NAME.pem and NAME-key.pem (0600) into outDir. A member certificate is
// valid for both server and client authentication, since every member is
// both, and names the member id in its URI SAN; a client certificate is
// client authentication only and can never pass for a member.
func CreateCert(caDir string, req CertRequest, outDir string, now time.Time) (Issued, error) {
	if req.Name == "" || strings.ContainsAny(req.Name, "/\\ \t\n") || strings.HasPrefix(req.Name, ".") {
		return Issued{}, fmt.Errorf("certificate name %q: want a plain file name (no spaces, slashes or leading dot)", req.Name)
	}
	if len(req.Name) > 64 {
		return Issued{}, fmt.Errorf("certificate name %q: at most 64 characters (a member id's limit)", req.Name)
	}
	idURI, err := req.Role.uri(req.Name)
	if err != nil {
		return Issued{}, err
	}
	var ips []net.IP
	var dns []string
	for _, h := range req.Hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			continue
		case net.ParseIP(h) != nil:
			ips = append(ips, net.ParseIP(h))
		case validDNSName(h):
			dns = append(dns, h)
		default:
			return Issued{}, fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
	}
	if len(ips)+len(dns) == 0 && req.Role == RoleMember {
		return Issued{}, errors.New("at least one host (IP or DNS name) is required: peers verify the certificate against the address they dial")
	}
	caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return Issued{}, err
	}
	out := Issued{CertFile: filepath.Join(outDir, req.Name+".pem"), KeyFile: filepath.Join(outDir, req.Name+"-key.pem")}
	key, serial, err := newKeyAndSerial("key")
	if err != nil {
		return Issued{}, err
	}
	notAfter := now.Add(MemberValidity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if req.Role == RoleClient {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{"wimms"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  ips,
		DNSNames:     dns,
		URIs:         []*url.URL{idURI},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return Issued{}, fmt.Errorf("signing certificate for %s: %w", req.Name, err)
	}
	if err := writePair(outDir, out, der, key); err != nil {
		return Issued{}, err
	}
	return out, nil
}

// NewGossipKey returns a fresh base64 AES-256 key for --gossip-key.
func NewGossipKey() (string, error) {
	var b [GossipKeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// DecodeGossipKey parses a base64 gossip key (16, 24 or 32 bytes, as
// memberlist accepts).
func DecodeGossipKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("gossip key is %d bytes; want 16, 24 or 32 (`wimms tls gossip-key` makes one)", len(b))
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate %s: %w", filepath.Join(dir, CACertFile), err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "EC PRIVATE KEY" {
		return nil, nil, fmt.Errorf("CA key %s: no EC PRIVATE KEY block", filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !certs[0].IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	return certs[0], key, nil
}

func writePair(dir string, out Issued, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	// The key first and never readable by others, so no window exposes it.
	if err := writeFile(out.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(out.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil { // umask-proof
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists: remove it first if you mean to replace the CA (that revokes every certificate it signed)", p)
		}
	}
	return nil
}

// newKeyAndSerial makes what every certificate needs: a P-256 key (what
// names it in errors) and a random positive 127-bit serial number.
func newKeyAndSerial(what string) (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating %s: %w", what, err)
	}
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial number: %w", err)
	}
	return key, n.Add(n, big.NewInt(1)), nil
}

func validDNSName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || (r == '*' && i == 0 && len(label) == 1)
			if !ok {
				return false
			}
		}
	}
	return true
}

func parseCerts(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}
