package admincli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// NewTLSCmd is `wimms tls`: it issues the CA, certificates, gossip key
// and token files a secured cluster needs.
func NewTLSCmd() *cobra.Command {
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

// TLSFlags are the client side of a secured cluster for the tools: the
// admin commands through ClientFlags, and `wimms bench` (cmd/wimms).
type TLSFlags struct {
	CA, Cert, Key string
}

// AddTLSFlags registers --tls-ca, --tls-cert and --tls-key into f.
func AddTLSFlags(fl *pflag.FlagSet, f *TLSFlags) {
	fl.StringVar(&f.CA, "tls-ca", "", "CA certificate (PEM) of a TLS-secured cluster: talk HTTPS and verify members with it")
	fl.StringVar(&f.Cert, "tls-cert", "", "client certificate (PEM, from wimms tls cert --role client) to present (optional; API calls need none)")
	fl.StringVar(&f.Key, "tls-key", "", "key of --tls-cert (PEM)")
}

// scheme is the URL scheme the tool uses.
func (f TLSFlags) scheme() string {
	if f.CA != "" {
		return "https://"
	}
	return "http://"
}

// Config is nil without --tls-ca (plain HTTP).
func (f TLSFlags) Config() (*tls.Config, error) {
	if f.CA == "" {
		if f.Cert != "" || f.Key != "" {
			return nil, errors.New("--tls-cert/--tls-key need --tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", f.CA)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if f.Cert != "" || f.Key != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// client is a typed API client of the member at addr: HTTPS verified with
// --tls-ca when it is set, plain HTTP otherwise.
func (f TLSFlags) client(addr string, opts ...client.Option) (*client.Client, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	return client.New(f.scheme()+addr, opts...), nil
}
