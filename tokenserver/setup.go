package tokenserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// Environment variables that may hold secrets instead of files. They are
// values, so they have no flag (a flag's value shows in ps).
const (
	EnvMasterSecret      = "WIMMS_MASTER_SECRET"
	EnvMetricsHashSecret = "WIMMS_METRICS_HASH_SECRET"
)

// Setup is where a member's token server and the purge job find their
// configuration: paths, URLs and settings, never a secret value (secrets
// come from the files named here or the environment). cmd/wimms fills it
// from flags; the error messages name those flags, so an operator reads
// which one to fix.
type Setup struct {
	JWKSFile     string // --fxa-jwks-file
	OAuthURL     string // --fxa-oauth-server-url
	OAuthTimeout time.Duration
	MaxVerify    int // most POST /v1/verify calls in flight
	Webhook      Webhook
	EmailDomain  string
	Duration     time.Duration
	NodeType     string
	// MasterSecretFile and MetricsHashSecretFile, when empty, fall back to
	// EnvMasterSecret and EnvMetricsHashSecret.
	MasterSecretFile      string
	MetricsHashSecretFile string
	NodeSecretMode        string // tokenlib.SecretMode's text
}

// Enabled reports whether the member serves GET /1.0/{app}/{version}: FxA's
// keys or its OAuth server were named.
func (s *Setup) Enabled() bool { return s.JWKSFile != "" || s.OAuthURL != "" }

// Minter reads the secrets the purge job signs with.
func (s *Setup) Minter() (*Minter, error) {
	mode, err := tokenlib.ParseSecretMode(s.NodeSecretMode)
	if err != nil {
		return nil, fmt.Errorf("--node-secret-mode: %w", err)
	}
	masters, err := LoadSecrets(s.MasterSecretFile, EnvMasterSecret)
	if err != nil {
		return nil, fmt.Errorf("--master-secret-file: %w", err)
	}
	if len(masters) == 0 {
		return nil, fmt.Errorf("a master secret is required: --master-secret-file or $%s", EnvMasterSecret)
	}
	return &Minter{MasterSecrets: masters, Mode: mode}, nil
}

// Issuer builds the member's token server, or nil (and no error) when it
// is not enabled. Nothing here logs a secret; only which sources were used.
func (s *Setup) Issuer(logger hclog.Logger) (*Issuer, error) {
	if !s.Enabled() {
		if s.Webhook.ClientID != "" || s.Webhook.Issuer != "" || s.Webhook.MetricsOnly {
			return nil, errors.New("--fxa-webhook-* needs FxA's keys: --fxa-jwks-file or --fxa-oauth-server-url")
		}
		return nil, nil
	}
	m, err := s.Minter()
	if err != nil {
		return nil, err
	}
	hash, err := LoadSecrets(s.MetricsHashSecretFile, EnvMetricsHashSecret)
	if err != nil {
		return nil, fmt.Errorf("--metrics-hash-secret-file: %w", err)
	}
	if len(hash) == 0 {
		return nil, fmt.Errorf("a metrics hash secret is required: --metrics-hash-secret-file or $%s", EnvMetricsHashSecret)
	}
	v, err := s.verifier(logger)
	if err != nil {
		return nil, err
	}
	iss, err := New(Config{Verifier: v, MasterSecrets: m.MasterSecrets, Mode: m.Mode,
		MetricsHashSecret: []byte(hash[len(hash)-1]), EmailDomain: s.EmailDomain, Duration: s.Duration, NodeType: s.NodeType,
		Webhook: s.Webhook})
	if err != nil {
		return nil, err
	}
	logger.Info("token server enabled", "path", "/1.0/{app}/{version}", "jwks_file", s.JWKSFile, "oauth_server", s.OAuthURL,
		"node_secret_mode", m.Mode, "master_secrets", len(m.MasterSecrets), "email_domain", s.EmailDomain, "token_duration", s.Duration,
		"fxa_webhook", s.Webhook.ClientID != "", "fxa_webhook_metrics_only", s.Webhook.MetricsOnly)
	return iss, nil
}

// verifier checks FxA's tokens against the JWKS file, or else FxA's own
// published keys, with the verify endpoint for opaque tokens.
func (s *Setup) verifier(logger hclog.Logger) (*fxa.Verifier, error) {
	if s.MaxVerify < 1 {
		return nil, fmt.Errorf("--fxa-verify-concurrency %d: must be at least 1", s.MaxVerify)
	}
	v := &fxa.Verifier{OAuthServerURL: s.OAuthURL, HTTPClient: &http.Client{Timeout: s.OAuthTimeout}, MaxConcurrentVerify: s.MaxVerify}
	switch {
	case s.JWKSFile != "":
		keys, err := fxa.NewJWKSFile(s.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("--fxa-jwks-file: %w", err)
		}
		v.Keys = keys
	case s.OAuthURL != "":
		// As Mozilla's server does without configured keys: FxA's own
		// published keys, and the verify endpoint while they are unavailable.
		v.Keys = fxa.NewRemoteJWKS(s.OAuthURL, &http.Client{Timeout: s.OAuthTimeout}, func(err error) {
			logger.Warn("fetching FxA's keys failed; keeping the last keys, tokens go to the verify endpoint meanwhile", "error", err)
		})
	default:
		v.Keys = fxa.StaticKeys{}
	}
	return v, nil
}
