// Package tokenserver holds the token-server configuration of a member:
// how FxA credentials are verified and how storage-node tokens are minted
// (tokenserver/fxa, tokenserver/tokenlib). httpapi serves GET /1.0/{app}/{version}
// through the Issuer; the sign-in decision itself is the replicated login
// command.
package tokenserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// Defaults of the token server.
const (
	DefaultEmailDomain   = "api.accounts.firefox.com"
	DefaultTokenDuration = time.Hour
	DefaultNodeType      = "spanner"
)

// Config of an Issuer. Secrets are values, never paths: the caller reads
// files and the environment (LoadSecrets).
type Config struct {
	Verifier *fxa.Verifier
	// MasterSecrets, oldest first; the last one signs (as the token
	// servers do: "the last one is the most recent one").
	MasterSecrets []string
	Mode          tokenlib.SecretMode
	// MetricsHashSecret keys hashed_fxa_uid and hashed_device_id.
	MetricsHashSecret []byte
	EmailDomain       string
	Duration          time.Duration
	// NodeType is reported to clients as node_type ("spanner" or "mysql"
	// in syncstorage-rs).
	NodeType string
	Now      func() time.Time
	// Webhook, when ClientID and Issuer are set, enables FxA's account
	// events (POST /1.0/webhooks/fxa/events).
	Webhook Webhook
}

// Webhook is the configuration of FxA's account-event webhook.
type Webhook struct {
	// ClientID is this relying party's OAuth client id: the audience of
	// the Security Event Tokens.
	ClientID string
	// Issuer is FxA's issuer (the tokens' iss).
	Issuer string
	// MetricsOnly counts events without acting on them.
	MetricsOnly bool
}

// Issuer verifies FxA tokens and mints storage-node tokens.
type Issuer struct {
	cfg Config
}

// New checks cfg and fills defaults.
func New(cfg Config) (*Issuer, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("token server: no FxA verifier")
	}
	if len(cfg.MasterSecrets) == 0 {
		return nil, errors.New("token server: no master secret")
	}
	if _, err := tokenlib.ParseSecretMode(string(cfg.Mode)); err != nil {
		return nil, fmt.Errorf("token server: %w", err)
	}
	if len(cfg.MetricsHashSecret) == 0 {
		return nil, errors.New("token server: no metrics hash secret")
	}
	if cfg.EmailDomain == "" {
		cfg.EmailDomain = DefaultEmailDomain
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultTokenDuration
	}
	if cfg.NodeType == "" {
		cfg.NodeType = DefaultNodeType
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if (cfg.Webhook.ClientID == "") != (cfg.Webhook.Issuer == "") {
		return nil, errors.New("token server: the FxA webhook needs both a client id and an issuer")
	}
	return &Issuer{cfg: cfg}, nil
}

// Authenticate verifies an FxA access token (fxa.ErrInvalidCredentials
// on refusal).
func (i *Issuer) Authenticate(ctx context.Context, accessToken string) (fxa.Identity, error) {
	return i.cfg.Verifier.Verify(ctx, accessToken)
}

// WebhookEnabled reports whether account events are accepted, and
// whether only counted.
func (i *Issuer) WebhookEnabled() (enabled, metricsOnly bool) {
	w := i.cfg.Webhook
	return w.ClientID != "" && w.Issuer != "", w.MetricsOnly
}

// VerifyEvent checks a Security Event Token from FxA (refusals wrap
// fxa.ErrInvalidCredentials).
func (i *Issuer) VerifyEvent(ctx context.Context, token string) (fxa.SET, error) {
	return i.cfg.Verifier.VerifySET(ctx, token, i.cfg.Webhook.ClientID, i.cfg.Webhook.Issuer)
}

// EmailDomain is appended to the FxA uid to make the user's email.
func (i *Issuer) EmailDomain() string { return i.cfg.EmailDomain }

// MaxDuration is the configured token lifetime.
func (i *Issuer) MaxDuration() time.Duration { return i.cfg.Duration }

// Grant is a successful sign-in to mint a token for.
type Grant struct {
	Node   string
	UID    int64
	FxaUID string
	FxaKid string
	// Duration requested (≤ MaxDuration); 0 means MaxDuration.
	Duration time.Duration
}

// Token is the answer of the token server.
type Token struct {
	ID           string
	Key          string
	Duration     time.Duration
	HashedFxaUID string
	// LogUID is the whole metrics hash of the FxA uid, for the request log.
	LogUID   string
	NodeType string
	Payload  tokenlib.Payload
}

// Issue mints the token for g.
func (i *Issuer) Issue(g Grant) (Token, error) {
	d := g.Duration
	if d <= 0 || d > i.cfg.Duration {
		d = i.cfg.Duration
	}
	secret, err := tokenlib.NodeSecret(i.cfg.Mode, i.cfg.MasterSecrets[len(i.cfg.MasterSecrets)-1], g.Node)
	if err != nil {
		return Token{}, err
	}
	hashed := tokenlib.MetricsHash(g.FxaUID, i.cfg.MetricsHashSecret)
	p := tokenlib.Payload{
		Node:              g.Node,
		FxaKid:            g.FxaKid,
		FxaUID:            g.FxaUID,
		HashedFxaUID:      hashed,
		HashedDeviceID:    tokenlib.HashedDeviceID(hashed, i.cfg.MetricsHashSecret),
		Expires:           float64(i.cfg.Now().Add(d).Unix()),
		UID:               g.UID,
		TokenserverOrigin: "rust",
	}
	id, key, err := tokenlib.MakeToken(p, secret)
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Key: key, Duration: d, HashedFxaUID: hashed, LogUID: tokenlib.MetricsHashFull(g.FxaUID, i.cfg.MetricsHashSecret),
		NodeType: i.cfg.NodeType, Payload: p}, nil
}

// Minter makes tokens for a node without a sign-in (the purge job's
// DELETE): same secrets, same format.
func (i *Issuer) Minter() *Minter {
	return &Minter{MasterSecrets: i.cfg.MasterSecrets, Mode: i.cfg.Mode, MetricsHashSecret: i.cfg.MetricsHashSecret, Now: i.cfg.Now}
}

// Minter mints short-lived tokens for a record.
type Minter struct {
	MasterSecrets     []string
	Mode              tokenlib.SecretMode
	MetricsHashSecret []byte
	Now               func() time.Time
}

// Mint returns a token and its derived secret for uid on node.
func (m *Minter) Mint(node string, uid int64, fxaUID, fxaKid string, d time.Duration) (id, key string, err error) {
	secret, err := tokenlib.NodeSecret(m.Mode, m.MasterSecrets[len(m.MasterSecrets)-1], node)
	if err != nil {
		return "", "", err
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	p := tokenlib.Payload{Node: node, UID: uid, FxaUID: fxaUID, FxaKid: fxaKid, Expires: float64(now().Add(d).Unix()), TokenserverOrigin: "rust"}
	if len(m.MetricsHashSecret) > 0 && fxaUID != "" {
		p.HashedFxaUID = tokenlib.MetricsHash(fxaUID, m.MetricsHashSecret)
		p.HashedDeviceID = tokenlib.HashedDeviceID(p.HashedFxaUID, m.MetricsHashSecret)
	}
	return tokenlib.MakeToken(p, secret)
}

// LoadSecrets reads secrets from a file (one per line; blank lines and
// lines starting with # are skipped) or, when path is empty, from the
// environment variable env (comma-separated). Neither the values nor their
// lengths are ever logged.
func LoadSecrets(path, env string) ([]string, error) {
	var raw string
	switch {
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read secret file: %w", err)
		}
		raw = string(b)
	case os.Getenv(env) != "":
		raw = strings.ReplaceAll(os.Getenv(env), ",", "\n")
	default:
		return nil, nil
	}
	var out []string
	for line := range strings.Lines(raw) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		if path != "" {
			return nil, fmt.Errorf("secret file %s holds no secret", path)
		}
		return nil, fmt.Errorf("%s holds no secret", env)
	}
	return out, nil
}
