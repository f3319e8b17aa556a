// Package fxa verifies Firefox Accounts OAuth access tokens the way the
// Sync token servers do: locally as RS256 JWTs against FxA's published
// keys (a JWKS document), or, for opaque tokens, through FxA's
// POST /v1/verify.
package fxa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// SyncScope is the OAuth scope that grants access to Sync.
const SyncScope = "https://identity.mozilla.com/apps/oldsync"

// ErrInvalidCredentials is wrapped by every refusal; the wrapped message
// says why (for logs), never the token.
var ErrInvalidCredentials = errors.New("invalid credentials")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCredentials, fmt.Sprintf(format, args...))
}

// Identity is who a verified token speaks for.
type Identity struct {
	// FxaUID is the account id (the token's sub / the verify answer's user).
	FxaUID string
	// Generation is fxa-generation (0 when absent).
	Generation int64
}

// Key is one RSA public key of a JWKS document.
type Key struct {
	ID  string
	Pub *rsa.PublicKey
}

// jwksDoc is a JWKS document as ParseJWKS reads and JWKS writes it.
type jwksDoc struct {
	Keys []jwk `json:"keys"`
}

// jwk is one key of a JWKS document.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// ParseJWKS reads a JWKS document ({"keys":[…]}). Keys that are not RSA
// signing keys are skipped; a document without any is an error.
func ParseJWKS(data []byte) ([]Key, error) {
	var doc jwksDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []Key
	for i, k := range doc.Keys {
		if k.Kty != "RSA" || (k.Alg != "" && k.Alg != "RS256") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("jwks: key %d (kid %q): n or e is not base64url", i, k.Kid)
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("jwks: key %d (kid %q): RSA modulus of %d bits, want at least 2048", i, k.Kid, pub.N.BitLen())
		}
		keys = append(keys, Key{ID: k.Kid, Pub: pub})
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no RSA signing key")
	}
	return keys, nil
}

// KeySource gives the current keys.
type KeySource interface {
	Keys() ([]Key, error)
}

// StaticKeys is a fixed key set.
type StaticKeys []Key

func (s StaticKeys) Keys() ([]Key, error) { return s, nil }

// JWKSFile reads keys from a file and re-reads it whenever its size or
// modification time changes, so keys rotate without a restart. A file
// that becomes unreadable or invalid keeps the last good keys and the
// error is reported once per change.
type JWKSFile struct {
	path string

	mu    sync.Mutex
	stamp string
	keys  []Key
}

// NewJWKSFile loads path; it fails when the file has no usable key.
func NewJWKSFile(path string) (*JWKSFile, error) {
	f := &JWKSFile{path: path}
	if _, err := f.Keys(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *JWKSFile) Keys() ([]Key, error) {
	st, err := os.Stat(f.path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if f.keys != nil {
			return f.keys, nil
		}
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	stamp := fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
	if stamp == f.stamp {
		return f.keys, nil
	}
	data, err := os.ReadFile(f.path)
	if err == nil {
		var keys []Key
		if keys, err = ParseJWKS(data); err == nil {
			f.keys, f.stamp = keys, stamp
			return keys, nil
		}
	}
	f.stamp = stamp
	if f.keys != nil {
		return f.keys, nil
	}
	return nil, fmt.Errorf("jwks file %s: %w", f.path, err)
}

// Bounds of the verify fallback. Anyone can make a member call it, so a
// caller must not be able to make it carry large bodies or pile up
// outstanding calls to FxA.
const (
	// MaxRemoteTokenBytes: FxA's opaque tokens are 64 hex digits and its
	// JWTs about 1 KiB; a longer token is refused without asking FxA.
	MaxRemoteTokenBytes = 4 << 10
	// DefaultMaxConcurrentVerify bounds verify calls in flight per member.
	DefaultMaxConcurrentVerify = 32
	// ClockLeeway is how far in the future a JWT's nbf and iat may lie
	// (clocks of FxA and the member differ a little).
	ClockLeeway = 60 * time.Second
)

// ErrBusy: the verify fallback already has its maximum of calls in flight.
// It is not a refusal of the credentials; the caller should retry.
var ErrBusy = errors.New("too many FxA verify calls in flight")

// Verifier checks access tokens.
type Verifier struct {
	Keys KeySource
	// OAuthServerURL, when set, verifies tokens that do not decode as an
	// RS256 JWT, and tokens that arrive while no key is available, with
	// POST {url}/v1/verify (as Mozilla's token server does).
	OAuthServerURL string
	// HTTPClient for the verify fallback; its Timeout bounds the call.
	HTTPClient *http.Client
	// MaxConcurrentVerify bounds verify calls in flight (0: default).
	MaxConcurrentVerify int
	Now                 func() time.Time

	semOnce sync.Once
	sem     chan struct{}
}

// KidKeySource is a KeySource that can look for a key it does not hold
// yet (RemoteJWKS refreshes on an unknown kid).
type KidKeySource interface {
	KeysFor(ctx context.Context, kid string) ([]Key, error)
}

// Verify checks an access token and returns its identity. Every refusal
// wraps ErrInvalidCredentials; other errors (FxA is down, ErrBusy) do not.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	jt, ok := decodeJWT(token)
	if !ok {
		// Like Mozilla's server: what does not decode as an RS256 JWT may
		// still be a token FxA knows (an opaque one, or a future format).
		if v.OAuthServerURL == "" {
			return Identity{}, refuse("not an RS256 JWT and no OAuth server is configured")
		}
		return v.verifyRemote(ctx, token)
	}
	keys, err := v.keysFor(ctx, jt.header.Kid)
	if err != nil || len(keys) == 0 {
		if v.OAuthServerURL != "" {
			return v.verifyRemote(ctx, token)
		}
		if err != nil {
			return Identity{}, fmt.Errorf("fxa keys: %w", err)
		}
		return Identity{}, refuse("no trusted key")
	}
	return v.verifyJWT(jt, keys)
}

func (v *Verifier) keysFor(ctx context.Context, kid string) ([]Key, error) {
	if v.Keys == nil {
		return nil, nil
	}
	if ks, ok := v.Keys.(KidKeySource); ok {
		return ks.KeysFor(ctx, kid)
	}
	return v.Keys.Keys()
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

type jwtClaims struct {
	Sub        string          `json:"sub"`
	Scope      json.RawMessage `json:"scope"`
	Exp        *json.Number    `json:"exp"`
	Nbf        *json.Number    `json:"nbf"`
	Iat        *json.Number    `json:"iat"`
	Generation *json.Number    `json:"fxa-generation"`
}

// decodedJWT is a token that has the structure of an RS256 JWT; nothing
// about it is verified yet.
type decodedJWT struct {
	header       jwtHeader
	signingInput string
	sig          []byte
	claims       []byte
}

// decodeJWT reports whether token is structurally an RS256 JWT: three
// base64url parts, a JSON header naming RS256 and JSON claims.
func decodeJWT(token string) (decodedJWT, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return decodedJWT{}, false
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return decodedJWT{}, false
	}
	var h jwtHeader
	if json.Unmarshal(hb, &h) != nil || h.Alg != "RS256" {
		return decodedJWT{}, false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(cb, &probe) != nil {
		return decodedJWT{}, false
	}
	return decodedJWT{header: h, signingInput: parts[0] + "." + parts[1], sig: sig, claims: cb}, true
}

func (v *Verifier) verifyJWT(jt decodedJWT, keys []Key) (Identity, error) {
	h := jt.header
	// FxA marks access tokens typ "at+JWT" (RFC 9068); syncstorage-rs
	// refuses any other, so a signed ID token cannot pass for one.
	typ := strings.ToLower(h.Typ)
	if !strings.Contains(typ, "/") {
		typ = "application/" + typ
	}
	if typ != "application/at+jwt" {
		return Identity{}, refuse("JWT typ %q, want at+JWT", h.Typ)
	}
	if !jt.signedBy(keys) {
		return Identity{}, refuse("JWT signature matches no trusted key")
	}
	dec := json.NewDecoder(bytes.NewReader(jt.claims))
	dec.UseNumber()
	var c jwtClaims
	if err := dec.Decode(&c); err != nil {
		return Identity{}, refuse("JWT claims: %v", err)
	}
	if c.Exp == nil {
		return Identity{}, refuse("JWT has no exp")
	}
	if err := checkTimes(v.now(), c.Exp, c.Nbf, c.Iat); err != nil {
		return Identity{}, err
	}
	scopes, err := parseScope(c.Scope)
	if err != nil {
		return Identity{}, refuse("JWT scope: %v", err)
	}
	return identity(c.Sub, scopes, c.Generation)
}

// signedBy reports whether one of keys made the signature: the key named
// by kid first, then every other key in turn (FxA may omit or reuse kids
// across a rotation).
func (jt decodedJWT) signedBy(keys []Key) bool {
	h := jt.header
	digest := sha256.Sum256([]byte(jt.signingInput))
	ordered := slices.Clone(keys)
	slices.SortStableFunc(ordered, func(a, b Key) int {
		am, bm := h.Kid != "" && a.ID == h.Kid, h.Kid != "" && b.ID == h.Kid
		switch {
		case am && !bm:
			return -1
		case bm && !am:
			return 1
		}
		return 0
	})
	for _, k := range ordered {
		if rsa.VerifyPKCS1v15(k.Pub, crypto.SHA256, digest[:], jt.sig) == nil {
			return true
		}
	}
	return false
}

// checkTimes refuses a token past exp (when given), or whose nbf or iat
// lies beyond a small clock difference in the future.
func checkTimes(now time.Time, exp, nbf, iat *json.Number) error {
	if exp != nil {
		e, err := exp.Float64()
		if err != nil {
			return refuse("JWT exp is not a number")
		}
		if float64(now.Unix()) >= e {
			return refuse("JWT expired")
		}
	}
	horizon := float64(now.Add(ClockLeeway).Unix())
	for _, c := range []struct {
		name string
		n    *json.Number
	}{{"nbf", nbf}, {"iat", iat}} {
		if c.n == nil {
			continue
		}
		t, err := c.n.Float64()
		if err != nil {
			return refuse("JWT %s is not a number", c.name)
		}
		if t > horizon {
			return refuse("JWT %s lies more than %s in the future", c.name, ClockLeeway)
		}
	}
	return nil
}

func identity(sub string, scopes []string, gen *json.Number) (Identity, error) {
	if !slices.Contains(scopes, SyncScope) {
		return Identity{}, refuse("token lacks the sync scope")
	}
	if sub == "" {
		return Identity{}, refuse("token has no subject")
	}
	id := Identity{FxaUID: sub}
	if gen != nil {
		g, err := gen.Int64()
		if err != nil || g < 0 {
			return Identity{}, refuse("fxa-generation is not a non-negative integer")
		}
		id.Generation = g
	}
	return id, nil
}

// parseScope accepts the space-separated string of RFC 9068 and the list
// the verify endpoint answers with.
func parseScope(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.Fields(s), nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("neither a string nor a list of strings")
	}
	return list, nil
}

func (v *Verifier) verifyRemote(ctx context.Context, token string) (Identity, error) {
	if len(token) > MaxRemoteTokenBytes {
		return Identity{}, refuse("token of %d bytes, at most %d are sent to FxA", len(token), MaxRemoteTokenBytes)
	}
	if token == "" {
		return Identity{}, refuse("empty token")
	}
	v.semOnce.Do(func() {
		n := v.MaxConcurrentVerify
		if n <= 0 {
			n = DefaultMaxConcurrentVerify
		}
		v.sem = make(chan struct{}, n)
	})
	select {
	case v.sem <- struct{}{}:
		defer func() { <-v.sem }()
	default:
		return Identity{}, ErrBusy
	}
	body, _ := json.Marshal(map[string]string{"token": token})
	url := strings.TrimRight(v.OAuthServerURL, "/") + "/v1/verify"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("fxa verify request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := v.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Identity{}, fmt.Errorf("fxa verify: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Identity{}, fmt.Errorf("fxa verify: read answer: %w", err)
	}
	switch {
	case resp.StatusCode >= 500:
		return Identity{}, fmt.Errorf("fxa verify: status %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return Identity{}, refuse("the OAuth server refused the token (status %d)", resp.StatusCode)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var ans struct {
		User       string          `json:"user"`
		Scope      json.RawMessage `json:"scope"`
		Generation *json.Number    `json:"generation"`
	}
	if err := dec.Decode(&ans); err != nil {
		return Identity{}, fmt.Errorf("fxa verify: answer is not JSON: %w", err)
	}
	scopes, err := parseScope(ans.Scope)
	if err != nil {
		return Identity{}, refuse("verify answer scope: %v", err)
	}
	return identity(ans.User, scopes, ans.Generation)
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}
