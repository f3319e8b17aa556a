package main

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// tokenFlags configure the token server (GET /1.0/{app}/{version}) of a
// member and the secrets `wimms purge` signs with; tokenserver.Setup reads
// and checks them.
type tokenFlags struct{ tokenserver.Setup }

func (t *tokenFlags) registerSecrets(fl *pflag.FlagSet) {
	fl.StringVar(&t.MasterSecretFile, "master-secret-file", "", "file of master secrets shared with the storage nodes, one per line, oldest first; the last signs (or $"+tokenserver.EnvMasterSecret+", comma-separated)")
	fl.StringVar(&t.NodeSecretMode, "node-secret-mode", string(tokenlib.SecretModeMaster),
		"which secret signs a node's tokens: master (syncstorage-rs nodes: the master secret itself) or derived (Python server-syncstorage nodes: HKDF per node)")
}

func (t *tokenFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.JWKSFile, "fxa-jwks-file", "", "enables GET /1.0/{app}/{version}: FxA's public keys (a JWKS document, re-read when it changes)")
	fl.StringVar(&t.OAuthURL, "fxa-oauth-server-url", "", "FxA OAuth server; tokens that are not JWTs are checked with POST {url}/v1/verify (also enables the endpoint)")
	fl.DurationVar(&t.OAuthTimeout, "fxa-oauth-timeout", 5*time.Second, "timeout of a POST /v1/verify or GET /v1/jwks")
	fl.StringVar(&t.Webhook.ClientID, "fxa-webhook-client-id", "", "enables POST /1.0/webhooks/fxa/events: the audience (this relying party's OAuth client id) of FxA's Security Event Tokens (needs --fxa-webhook-issuer)")
	fl.StringVar(&t.Webhook.Issuer, "fxa-webhook-issuer", "", "the issuer (iss) of FxA's Security Event Tokens, e.g. https://accounts.firefox.com")
	fl.BoolVar(&t.Webhook.MetricsOnly, "fxa-webhook-metrics-only", false, "count FxA account events without acting on them")
	fl.IntVar(&t.MaxVerify, "fxa-verify-concurrency", fxa.DefaultMaxConcurrentVerify, "most POST /v1/verify calls in flight; more get 503 with Retry-After")
	fl.StringVar(&t.EmailDomain, "fxa-email-domain", tokenserver.DefaultEmailDomain, "users are {fxa uid}@this domain")
	fl.DurationVar(&t.Duration, "token-duration", tokenserver.DefaultTokenDuration, "lifetime of a storage-node token")
	fl.StringVar(&t.NodeType, "token-node-type", tokenserver.DefaultNodeType, "node_type reported to clients")
	fl.StringVar(&t.MetricsHashSecretFile, "metrics-hash-secret-file", "", "file holding the secret of hashed_fxa_uid / hashed_device_id (or $"+tokenserver.EnvMetricsHashSecret+")")
	t.registerSecrets(fl)
}

// minter reads the secrets the purge job signs with.
func (t *tokenFlags) minter() (*tokenserver.Minter, error) { return t.Minter() }

// issuer builds the member's token server, or nil when it is not enabled.
func (t *tokenFlags) issuer(logger hclog.Logger) (httpapi.TokenIssuer, error) {
	iss, err := t.Issuer(logger)
	if iss == nil {
		// Not a typed nil in the interface: nil means "no token server".
		return nil, err
	}
	return iss, err
}

// newTokenServerCmd groups helpers for trying the token server without a
// Firefox Accounts deployment: a signing key with its JWKS, test access
// tokens, random secrets.
func newTokenServerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokenserver", Short: "token-server helpers: test FxA keys and tokens, secrets"}

	var kid, keyOut, jwksOut string
	var extra []string
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "make an RSA signing key (PEM) and the JWKS of it plus any --also keys, for --fxa-jwks-file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := tokenserver.WriteKeyPair(kid, keyOut, jwksOut, extra)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (kid %s) and %s (%d keys)\n", keyOut, kid, jwksOut, n)
			return nil
		},
	}
	keygen.Flags().StringVar(&kid, "kid", "test-key-1", "key id")
	keygen.Flags().StringVar(&keyOut, "key-out", "fxa-key.pem", "private key file to write")
	keygen.Flags().StringVar(&jwksOut, "jwks-out", "fxa-jwks.json", "JWKS file to write")
	keygen.Flags().StringSliceVar(&extra, "also", nil, "older private keys to keep in the JWKS (rotation)")

	var keyFile, sub, scope string
	var generation int64
	var ttl time.Duration
	jwt := &cobra.Command{
		Use:   "jwt",
		Short: "mint an FxA-style access token (RS256, typ at+JWT) with a key from keygen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := tokenserver.MintTestToken(keyFile, sub, scope, generation, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	jwt.Flags().StringVar(&keyFile, "key", "fxa-key.pem", "private key from keygen")
	jwt.Flags().StringVar(&sub, "sub", "", "FxA uid (32 hex digits in production)")
	jwt.Flags().Int64Var(&generation, "generation", 0, "fxa-generation claim (0: omitted)")
	jwt.Flags().StringVar(&scope, "scope", fxa.SyncScope, "space-separated scopes")
	jwt.Flags().DurationVar(&ttl, "ttl", time.Hour, "lifetime")

	var secretOut string
	secret := &cobra.Command{
		Use:   "secret",
		Short: "write a random 32-byte hex secret to a new file (mode 0600)",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return tokenserver.WriteSecretFile(secretOut) },
	}
	secret.Flags().StringVar(&secretOut, "out", "", "file to create")
	_ = secret.MarkFlagRequired("out")

	cmd.AddCommand(keygen, jwt, secret)
	return cmd
}
