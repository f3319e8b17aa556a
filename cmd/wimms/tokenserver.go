package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// Environment variables that may hold secrets instead of files. They are
// values, so they have no flag (a flag's value shows in ps).
const (
	envMasterSecret      = "WIMMS_MASTER_SECRET"
	envMetricsHashSecret = "WIMMS_METRICS_HASH_SECRET"
)

// tokenFlags configure the token server (GET /1.0/{app}/{version}) of a
// member and the secrets `wimms purge` signs with.
type tokenFlags struct {
	jwksFile, oauthURL         string
	oauthTimeout               time.Duration
	maxVerify                  int
	webhook                    tokenserver.Webhook
	emailDomain, nodeType      string
	duration                   time.Duration
	masterSecretFile, hashFile string
	nodeSecretMode             string
}

func (t *tokenFlags) registerSecrets(fl *pflag.FlagSet) {
	fl.StringVar(&t.masterSecretFile, "master-secret-file", "", "file of master secrets shared with the storage nodes, one per line, oldest first; the last signs (or $"+envMasterSecret+", comma-separated)")
	fl.StringVar(&t.nodeSecretMode, "node-secret-mode", string(tokenlib.SecretModeMaster),
		"which secret signs a node's tokens: master (syncstorage-rs nodes: the master secret itself) or derived (Python server-syncstorage nodes: HKDF per node)")
}

func (t *tokenFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.jwksFile, "fxa-jwks-file", "", "enables GET /1.0/{app}/{version}: FxA's public keys (a JWKS document, re-read when it changes)")
	fl.StringVar(&t.oauthURL, "fxa-oauth-server-url", "", "FxA OAuth server; tokens that are not JWTs are checked with POST {url}/v1/verify (also enables the endpoint)")
	fl.DurationVar(&t.oauthTimeout, "fxa-oauth-timeout", 5*time.Second, "timeout of a POST /v1/verify or GET /v1/jwks")
	fl.StringVar(&t.webhook.ClientID, "fxa-webhook-client-id", "", "enables POST /1.0/webhooks/fxa/events: the audience (this relying party's OAuth client id) of FxA's Security Event Tokens (needs --fxa-webhook-issuer)")
	fl.StringVar(&t.webhook.Issuer, "fxa-webhook-issuer", "", "the issuer (iss) of FxA's Security Event Tokens, e.g. https://accounts.firefox.com")
	fl.BoolVar(&t.webhook.MetricsOnly, "fxa-webhook-metrics-only", false, "count FxA account events without acting on them")
	fl.IntVar(&t.maxVerify, "fxa-verify-concurrency", fxa.DefaultMaxConcurrentVerify, "most POST /v1/verify calls in flight; more get 503 with Retry-After")
	fl.StringVar(&t.emailDomain, "fxa-email-domain", tokenserver.DefaultEmailDomain, "users are {fxa uid}@this domain")
	fl.DurationVar(&t.duration, "token-duration", tokenserver.DefaultTokenDuration, "lifetime of a storage-node token")
	fl.StringVar(&t.nodeType, "token-node-type", tokenserver.DefaultNodeType, "node_type reported to clients")
	fl.StringVar(&t.hashFile, "metrics-hash-secret-file", "", "file holding the secret of hashed_fxa_uid / hashed_device_id (or $"+envMetricsHashSecret+")")
	t.registerSecrets(fl)
}

func (t *tokenFlags) enabled() bool { return t.jwksFile != "" || t.oauthURL != "" }

// minter reads the secrets the purge job signs with.
func (t *tokenFlags) minter() (*tokenserver.Minter, error) {
	mode, err := tokenlib.ParseSecretMode(t.nodeSecretMode)
	if err != nil {
		return nil, fmt.Errorf("--node-secret-mode: %w", err)
	}
	masters, err := tokenserver.LoadSecrets(t.masterSecretFile, envMasterSecret)
	if err != nil {
		return nil, fmt.Errorf("--master-secret-file: %w", err)
	}
	if len(masters) == 0 {
		return nil, fmt.Errorf("a master secret is required: --master-secret-file or $%s", envMasterSecret)
	}
	return &tokenserver.Minter{MasterSecrets: masters, Mode: mode}, nil
}

// issuer builds the member's token server, or nil when it is not enabled.
// Nothing here logs a secret; only which sources were used.
func (t *tokenFlags) issuer(logger hclog.Logger) (httpapi.TokenIssuer, error) {
	if !t.enabled() {
		if t.webhook.ClientID != "" || t.webhook.Issuer != "" || t.webhook.MetricsOnly {
			return nil, fmt.Errorf("--fxa-webhook-* needs FxA's keys: --fxa-jwks-file or --fxa-oauth-server-url")
		}
		return nil, nil
	}
	m, err := t.minter()
	if err != nil {
		return nil, err
	}
	hash, err := tokenserver.LoadSecrets(t.hashFile, envMetricsHashSecret)
	if err != nil {
		return nil, fmt.Errorf("--metrics-hash-secret-file: %w", err)
	}
	if len(hash) == 0 {
		return nil, fmt.Errorf("a metrics hash secret is required: --metrics-hash-secret-file or $%s", envMetricsHashSecret)
	}
	if t.maxVerify < 1 {
		return nil, fmt.Errorf("--fxa-verify-concurrency %d: must be at least 1", t.maxVerify)
	}
	v := &fxa.Verifier{OAuthServerURL: t.oauthURL, HTTPClient: &http.Client{Timeout: t.oauthTimeout}, MaxConcurrentVerify: t.maxVerify}
	if t.jwksFile != "" {
		keys, err := fxa.NewJWKSFile(t.jwksFile)
		if err != nil {
			return nil, fmt.Errorf("--fxa-jwks-file: %w", err)
		}
		v.Keys = keys
	} else if t.oauthURL != "" {
		// As Mozilla's server does without configured keys: FxA's own
		// published keys, and the verify endpoint while they are unavailable.
		v.Keys = fxa.NewRemoteJWKS(t.oauthURL, &http.Client{Timeout: t.oauthTimeout}, func(err error) {
			logger.Warn("fetching FxA's keys failed; keeping the last keys, tokens go to the verify endpoint meanwhile", "error", err)
		})
	} else {
		v.Keys = fxa.StaticKeys{}
	}
	iss, err := tokenserver.New(tokenserver.Config{Verifier: v, MasterSecrets: m.MasterSecrets, Mode: m.Mode,
		MetricsHashSecret: []byte(hash[len(hash)-1]), EmailDomain: t.emailDomain, Duration: t.duration, NodeType: t.nodeType,
		Webhook: t.webhook})
	if err != nil {
		return nil, err
	}
	logger.Info("token server enabled", "path", "/1.0/{app}/{version}", "jwks_file", t.jwksFile, "oauth_server", t.oauthURL,
		"node_secret_mode", m.Mode, "master_secrets", len(m.MasterSecrets), "email_domain", t.emailDomain, "token_duration", t.duration,
		"fxa_webhook", t.webhook.ClientID != "", "fxa_webhook_metrics_only", t.webhook.MetricsOnly)
	return iss, nil
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
			if _, err := os.Stat(keyOut); err == nil {
				return fmt.Errorf("%s exists; not overwriting a private key", keyOut)
			}
			k, err := fxa.GenerateKey(kid)
			if err != nil {
				return err
			}
			keys := []fxa.SigningKey{k}
			for _, p := range extra {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				old, err := fxa.ParseSigningKey(b)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				keys = append(keys, old)
			}
			pemBytes, err := k.PEM()
			if err != nil {
				return err
			}
			if err := os.WriteFile(keyOut, pemBytes, 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(jwksOut, fxa.JWKS(keys...), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (kid %s) and %s (%d keys)\n", keyOut, kid, jwksOut, len(keys))
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
			b, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			k, err := fxa.ParseSigningKey(b)
			if err != nil {
				return err
			}
			if sub == "" {
				return errors.New("--sub (the FxA uid) is required")
			}
			now := time.Now()
			tok, err := k.Mint(fxa.Claims{Sub: sub, Scope: scope, Iat: now.Unix(), Exp: now.Add(ttl).Unix(), Generation: generation, ClientID: "wimms-test"})
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			f, err := os.OpenFile(secretOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.WriteString(hex.EncodeToString(b[:]) + "\n"); err != nil {
				_ = f.Close()
				return err
			}
			return f.Close()
		},
	}
	secret.Flags().StringVar(&secretOut, "out", "", "file to create")
	_ = secret.MarkFlagRequired("out")

	cmd.AddCommand(keygen, jwt, secret)
	return cmd
}
