package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/internal/netguard"
	"github.com/wimms-dev/wimms/internal/tlsconf"
	"github.com/wimms-dev/wimms/store"
)

func newTLSCmd() *cobra.Command {
	return groupCmd("tls", "issue the CA, member certificates and gossip key that secure a cluster",
		`Issue what a secured cluster needs, no openssl required:

  wimms tls ca   --out DIR                                   # DIR/ca.pem, DIR/ca-key.pem
  wimms tls cert --ca DIR --role member --name ID --hosts H[,H...] --out DIR
                                                             # DIR/ID.pem, DIR/ID-key.pem
  wimms tls cert --ca DIR --role client --name NAME --out DIR  # a tool's certificate
  wimms tls gossip-key --out FILE                            # FILE (mode 0600) holds a new base64 key
  wimms tls token --out FILE                                 # a bearer token file (0600)

A member certificate (--role member) names the member id (--name, the
member's --id) and is both a server and a client certificate; --hosts lists
every IP and DNS name peers and clients dial the member at. Only member
certificates speak Raft and call member-to-member routes. A client
certificate (--role client) is for tools: client authentication only, the
API only. --role has no default. Keys are written with mode 0600. See
docs/security.md.`,
		newTLSCACmd(), newTLSCertCmd(), newTLSGossipKeyCmd(), newTLSTokenCmd())
}

func newTLSCACmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "create a new cluster CA (refuses to overwrite one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			issued, err := tlsconf.CreateCA(out, time.Now())
			if err != nil {
				return fmt.Errorf("tls ca: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (keep the key secret; it signs member certificates)\n", issued.CertFile, issued.KeyFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", ".", "directory to write ca.pem and ca-key.pem into")
	return cmd
}

func newTLSCertCmd() *cobra.Command {
	var caDir, name, out, role string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "issue a member or client certificate signed by the CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := tlsconf.ParseRole(role)
			if err != nil {
				return fmt.Errorf("tls cert: %w", err)
			}
			if r == tlsconf.RoleMember && len(hosts) == 0 {
				return errors.New("tls cert: --hosts is required for a member certificate: peers verify it against the address they dial")
			}
			if out == "" {
				out = caDir
			}
			issued, err := tlsconf.CreateCert(caDir, tlsconf.CertRequest{Role: r, Name: name, Hosts: hosts}, out, time.Now())
			if err != nil {
				return fmt.Errorf("tls cert: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s\n", issued.CertFile, issued.KeyFile)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caDir, "ca", ".", "directory holding ca.pem and ca-key.pem")
	fl.StringVar(&role, "role", "", `"member" (a cluster member; --name is its member id) or "client" (a tool: API only); required`)
	fl.StringVar(&name, "name", "", "member id (--role member) or tool name (--role client); files NAME.pem and NAME-key.pem")
	fl.StringSliceVar(&hosts, "hosts", nil, "comma-separated IP addresses and DNS names of the member (required for --role member)")
	fl.StringVar(&out, "out", "", "output directory (default: the --ca directory)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newTLSGossipKeyCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "gossip-key",
		Short: "create a new base64 gossip encryption key (AES-256): --out FILE writes it mode 0600, else it is printed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := tlsconf.NewGossipKey()
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), k)
				return nil
			}
			if err := writeNewSecret(out, k+"\n"); err != nil {
				return fmt.Errorf("tls gossip-key: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (mode 0600; pass it with --gossip-key-file)\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the key to, mode 0600 (refuses to overwrite one); default: print it")
	return cmd
}

// writeNewSecret creates path with mode 0600 and writes s; an existing
// file is never replaced, so a key in use cannot be lost to a typo.
func writeNewSecret(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(s); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

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

func tokenFromFile(flag, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("--%s and --%s-file are both set: use one", flag, flag)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", flag, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--%s-file %s is empty", flag, file)
	}
	return tok, nil
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

// toolTLSFlags are the client side of a secured cluster for the tools.
type toolTLSFlags struct {
	ca, cert, key string
}

func addToolTLSFlags(fl *pflag.FlagSet, f *toolTLSFlags) {
	fl.StringVar(&f.ca, "tls-ca", "", "CA certificate (PEM) of a TLS-secured cluster: talk HTTPS and verify members with it")
	fl.StringVar(&f.cert, "tls-cert", "", "client certificate (PEM, from wimms tls cert --role client) to present (optional; API calls need none)")
	fl.StringVar(&f.key, "tls-key", "", "key of --tls-cert (PEM)")
}

// scheme is the URL scheme the tool uses.
func (f toolTLSFlags) scheme() string {
	if f.ca != "" {
		return "https://"
	}
	return "http://"
}

// config is nil without --tls-ca (plain HTTP).
func (f toolTLSFlags) config() (*tls.Config, error) {
	if f.ca == "" {
		if f.cert != "" || f.key != "" {
			return nil, errors.New("--tls-cert/--tls-key need --tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", f.ca)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if f.cert != "" || f.key != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// client is a typed API client of the member at addr: HTTPS verified with
// --tls-ca when it is set, plain HTTP otherwise.
func (f toolTLSFlags) client(addr string, opts ...client.Option) (*client.Client, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	return client.New(f.scheme()+addr, opts...), nil
}
