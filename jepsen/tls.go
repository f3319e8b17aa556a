package jepsen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// pkiDir is where a --tls run keeps its CA, member certificates and
// gossip key (inside the run's output directory).
func pkiDir(outDir string) string { return filepath.Join(outDir, "pki") }

// setupTLS issues a CA, one certificate per member (for its loopback IP)
// and a gossip key, and returns the clients' TLS configuration: the
// harness talks HTTPS and verifies members with the run's CA.
func setupTLS(o Options) (*tls.Config, error) {
	if o.Docker != nil {
		return nil, errors.New("--tls runs local members only (the compose deployment has its own certificates: make certs)")
	}
	dir := pkiDir(o.OutDir)
	now := time.Now()
	if _, err := tlsconf.CreateCA(dir, now); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	for i := range o.Members {
		ip := fmt.Sprintf("127.0.0.%d", o.FirstIP+i)
		if _, err := tlsconf.CreateCert(dir, tlsconf.CertRequest{Role: tlsconf.RoleMember, Name: fmt.Sprintf("n%d", i+1), Hosts: []string{ip, "localhost"}}, dir, now); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	key, err := tlsconf.NewGossipKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("tls: gossip key: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, tlsconf.CACertFile))
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// tlsArgs are a member's server flags in a --tls run ("" dir: none).
func tlsArgs(dir, id string) []string {
	if dir == "" {
		return nil
	}
	return []string{
		"--tls-ca", filepath.Join(dir, tlsconf.CACertFile),
		"--tls-cert", filepath.Join(dir, id+".pem"),
		"--tls-key", filepath.Join(dir, id+"-key.pem"),
		"--gossip-key-file", filepath.Join(dir, "gossip.key"),
	}
}

// httpsURL upgrades the harness's http:// URLs when the client talks TLS.
func httpsURL(rawURL string, cfg *tls.Config) string {
	if cfg == nil {
		return rawURL
	}
	if rest, ok := strings.CutPrefix(rawURL, "http://"); ok {
		return "https://" + rest
	}
	return rawURL
}
