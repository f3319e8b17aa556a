package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/internal/netguard"
	"github.com/wimms-dev/wimms/internal/tlsconf"
	"github.com/wimms-dev/wimms/store"
)

// securityFlags are the server's credentials flags.
type securityFlags struct {
	tls                          tlsconf.Files
	gossipKey, gossipKeyFile     string
	apiTokenFile, adminTokenFile string
	metricsTokenFile             string
	allowReadable                bool
}

func addSecurityFlags(fl *pflag.FlagSet, f *securityFlags) {
	fl.StringVar(&f.tls.CA, "tls-ca", "", "CA certificate (PEM): with --tls-cert and --tls-key, Raft is mutual TLS, member-to-member calls and the API are HTTPS")
	fl.StringVar(&f.tls.Cert, "tls-cert", "", "this member's certificate (PEM), signed by --tls-ca; re-read on SIGHUP")
	fl.StringVar(&f.tls.Key, "tls-key", "", "the private key of --tls-cert (PEM); re-read on SIGHUP")
	fl.StringVar(&f.gossipKey, "gossip-key", "", "base64 gossip encryption key (make one with: wimms tls gossip-key --out FILE); prefer --gossip-key-file")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file holding the base64 gossip encryption key")
	fl.StringVar(&f.apiTokenFile, "api-token-file", "", "file holding the API token (keeps it out of ps)")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token (keeps it out of ps)")
	fl.BoolVar(&f.allowReadable, "allow-readable-secret-files", false, "accept token and gossip key files that group or others may read (with a warning); for containers that can only read such a mount")
	fl.StringVar(&f.metricsTokenFile, "metrics-token-file", "", "file holding a bearer token GET /metrics then requires (the admin token works too); without it /metrics is open")
}

// security is what the credentials flags resolved to.
type security struct {
	holder    *tlsconf.Holder // nil: no TLS
	gossipKey []byte          // nil: gossip in clear
	warnings  []string        // credential files accepted despite their mode
}

func (s security) secured() bool { return s.holder != nil || len(s.gossipKey) > 0 }

// resolveSecurity reads every credential file and refuses half or broken
// configurations before anything listens.
func resolveSecurity(f *serverFlags) (security, error) {
	var sec security
	var err error
	for _, tf := range []struct {
		flag, file string
		dst        *string
	}{
		{"api-token", f.sec.apiTokenFile, &f.apiToken},
		{"admin-token", f.sec.adminTokenFile, &f.adminToken},
		{"metrics-token", f.sec.metricsTokenFile, &f.metricsToken},
	} {
		if *tf.dst, err = sec.serverToken(tf.flag, *tf.dst, tf.file, f.sec.allowReadable); err != nil {
			return sec, err
		}
	}
	if f.sec.tls.Enabled() {
		if sec.holder, err = tlsconf.Load(f.sec.tls); err != nil {
			return sec, err
		}
		if got := sec.holder.MemberID(); got != f.id {
			return sec, fmt.Errorf("--tls-cert %s is the member certificate of %q, not of --id %q: peers check the id (`wimms tls cert --role member --name %s`)", f.sec.tls.Cert, got, f.id, f.id)
		}
	}
	key := f.sec.gossipKey
	switch {
	case key != "" && f.sec.gossipKeyFile != "":
		return sec, errors.New("--gossip-key and --gossip-key-file are both set: use one")
	case f.sec.gossipKeyFile != "":
		var warning string
		if key, warning, err = readSecretFile("gossip-key-file", f.sec.gossipKeyFile, f.sec.allowReadable); err != nil {
			return sec, err
		}
		sec.warnings = appendNonEmpty(sec.warnings, warning)
	}
	if key != "" {
		if sec.gossipKey, err = tlsconf.DecodeGossipKey(key); err != nil {
			return sec, fmt.Errorf("--gossip-key: %w", err)
		}
	}
	return sec, nil
}

// serverToken is a server's token from its flag or its file, the file
// held to readSecretFile's rules (owner-only, one token).
func (s *security) serverToken(flag, value, file string, allowReadable bool) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("--%s and --%s-file are both set: use one", flag, flag)
	}
	tok, warning, err := readSecretFile(flag+"-file", file, allowReadable)
	s.warnings = appendNonEmpty(s.warnings, warning)
	return tok, err
}

func appendNonEmpty(list []string, s string) []string {
	if s == "" {
		return list
	}
	return append(list, s)
}

// raftTLS is the store's view of the member certificate.
func (s security) raftTLS(m *netguard.Metrics) *store.TransportTLS {
	if s.holder == nil {
		return nil
	}
	h := s.holder
	return &store.TransportTLS{
		Server:  h.ServerConfig(true),
		Client:  h.ClientConfig,
		Track:   func(c *tls.Conn) { h.Track(c, true) },
		Metrics: m,
	}
}

// memberDialer is what cluster uses for member-to-member HTTPS. Its
// connections are tracked so a reload closes those to members whose
// certificate the new CA no longer signs.
func (s security) memberDialer() func(ctx context.Context, d *net.Dialer, network, addr string) (*tls.Conn, error) {
	if s.holder == nil {
		return nil
	}
	h := s.holder
	return func(ctx context.Context, d *net.Dialer, network, addr string) (*tls.Conn, error) {
		c, err := h.DialContext(ctx, d, network, addr)
		if err == nil {
			h.Track(c, true)
		}
		return c, err
	}
}

// trackHTTPSConns makes srv register every HTTPS connection that presented
// a certificate, once its handshake is done (StateActive comes after it),
// so a reload closes those the new CA no longer signs.
func (s security) trackHTTPSConns(srv *http.Server) {
	if s.holder == nil {
		return
	}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		if tc, ok := c.(*tls.Conn); ok && state == http.StateActive {
			s.holder.Track(tc, false)
		}
		if prev != nil {
			prev(c, state)
		}
	}
}

// logPosture says once, at start, how the member is protected.
func (s security) logPosture(logger hclog.Logger, adminTokenSet bool) {
	for _, w := range s.warnings {
		logger.Warn(w)
	}
	if s.holder != nil {
		subject, serial, notAfter := s.holder.Summary()
		logger.Info("mutual TLS on: raft and member-to-member calls require a CA-signed certificate; the API is HTTPS",
			"certificate", subject, "serial", serial, "not_after", notAfter.UTC().Format(time.RFC3339))
	}
	if len(s.gossipKey) > 0 {
		logger.Info("gossip encrypted and verified with the gossip key")
	}
	if !s.secured() {
		logger.Warn("!!! CLUSTER IS OPEN: no --tls-* and no --gossip-key: anyone who reaches the Raft or gossip port can join, " +
			"rewrite the data and read it in clear. Development only; see docs/security.md !!!")
	} else if s.holder == nil {
		logger.Warn("no TLS: Raft and HTTP travel in clear and the Raft port accepts any peer; only gossip is protected (see docs/security.md)")
		if !adminTokenSet {
			logger.Warn("no TLS and no admin token: anyone who reaches the HTTP port can join the cluster through POST /v1/cluster/members")
		}
	}
}

// reloadOnSIGHUP re-reads the certificate files on every SIGHUP until ctx
// is done: new handshakes use the new certificate and CA, and open
// connections whose peer the new CA does not sign are closed.
func (s security) reloadOnSIGHUP(ctx context.Context, logger hclog.Logger) {
	if s.holder == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				closed, err := s.holder.ReloadAndRevalidate()
				if err != nil {
					logger.Error("SIGHUP: certificate reload failed; keeping the previous certificate", "error", err)
					continue
				}
				subject, serial, notAfter := s.holder.Summary()
				logger.Info("SIGHUP: certificates reloaded", "certificate", subject, "serial", serial, "not_after", notAfter.UTC().Format(time.RFC3339),
					"closed_connections", closed)
			}
		}
	}()
}
