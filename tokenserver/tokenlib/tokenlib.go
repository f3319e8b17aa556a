// Package tokenlib makes and checks the signed tokens a Sync storage node
// accepts, byte-compatible with mozilla-services/tokenlib as the token
// servers (Python tokenserver, Rust syncstorage-rs) use it:
//
//	signing key    = HKDF-SHA256(secret, salt=none, info="services.mozilla.com/tokenlib/v1/signing", 32)
//	token          = base64url(payload JSON ‖ HMAC-SHA256(signing key, payload JSON))
//	derived secret = base64url(HKDF-SHA256(secret, salt=payload.salt, info="services.mozilla.com/tokenlib/v1/derive/" ‖ token, 32))
//
// "secret" is the text of a secret (its UTF-8 bytes, never hex-decoded),
// exactly as both implementations feed it to HKDF. Which secret signs a
// node's tokens depends on the storage-node generation (see NodeSecret).
package tokenlib

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// HKDF infos fixed by tokenlib; changing them breaks every storage node.
const (
	infoSigning    = "services.mozilla.com/tokenlib/v1/signing"
	infoDerive     = "services.mozilla.com/tokenlib/v1/derive/"
	infoNodeSecret = "services.mozilla.com/mozsvc/v1/node_secret/"
)

const sigLen = sha256.Size

// Payload is what a token carries. Field names are the JSON keys the
// storage nodes read (syncstorage-rs HawkPayload); Expires is seconds since
// the epoch (a float in the Python generation, so it is decoded as one).
type Payload struct {
	Node           string  `json:"node"`
	FxaKid         string  `json:"fxa_kid"`
	FxaUID         string  `json:"fxa_uid"`
	HashedFxaUID   string  `json:"hashed_fxa_uid"`
	HashedDeviceID string  `json:"hashed_device_id"`
	Expires        float64 `json:"expires"`
	UID            int64   `json:"uid"`
	// Salt is 3 random bytes in hex; it salts the derived secret.
	Salt string `json:"salt"`
	// TokenserverOrigin is "python" or "rust" in the reference servers;
	// the storage node only logs it.
	TokenserverOrigin string `json:"tokenserver_origin,omitempty"`
}

// MakeToken signs p with secret and returns the token and its derived
// secret. An empty p.Salt is filled with 3 random bytes.
func MakeToken(p Payload, secret string) (token, derived string, err error) {
	if p.Salt == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", "", fmt.Errorf("token salt: %w", err)
		}
		p.Salt = hex.EncodeToString(b[:])
	}
	body, err := marshalPayload(p)
	if err != nil {
		return "", "", err
	}
	mac := hmac.New(sha256.New, signingKey(secret))
	mac.Write(body)
	token = base64.URLEncoding.EncodeToString(append(body, mac.Sum(nil)...))
	derived, err = DerivedSecret(token, p.Salt, secret)
	if err != nil {
		return "", "", err
	}
	return token, derived, nil
}

// marshalPayload writes integral expiry times as integers (as the Rust
// server does) and others with a fraction (as Python's float).
func marshalPayload(p Payload) ([]byte, error) {
	if math.IsNaN(p.Expires) || math.IsInf(p.Expires, 0) {
		return nil, errors.New("token expiry is not a finite number")
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode token payload: %w", err)
	}
	return body, nil
}

// DerivedSecret is the per-token secret a client signs its Hawk requests
// with (the "key" of the token server's answer).
func DerivedSecret(token, salt, secret string) (string, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), []byte(salt), infoDerive+token, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive token secret: %w", err)
	}
	return base64.URLEncoding.EncodeToString(key), nil
}

// ErrInvalidToken is returned by ParseToken for any token it refuses.
var ErrInvalidToken = errors.New("invalid token")

// ParseToken checks token's signature against each of secrets in turn and
// returns its payload and the secret that signed it. It does not check the
// expiry: callers compare Expires with their own clock.
func ParseToken(token string, secrets ...string) (Payload, string, error) {
	raw, err := decodeBase64URL(token)
	if err != nil || len(raw) <= sigLen {
		return Payload{}, "", fmt.Errorf("%w: not base64url or too short", ErrInvalidToken)
	}
	body, sig := raw[:len(raw)-sigLen], raw[len(raw)-sigLen:]
	for _, s := range secrets {
		mac := hmac.New(sha256.New, signingKey(s))
		mac.Write(body)
		if !hmac.Equal(mac.Sum(nil), sig) {
			continue
		}
		var p Payload
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&p); err != nil {
			return Payload{}, "", fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
		}
		return p, s, nil
	}
	return Payload{}, "", fmt.Errorf("%w: signature matches no secret", ErrInvalidToken)
}

func decodeBase64URL(s string) ([]byte, error) {
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func signingKey(secret string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, infoSigning, sha256.Size)
	if err != nil {
		// Only a key length above 255*32 fails; 32 never does.
		panic(fmt.Sprintf("tokenlib: signing key: %v", err))
	}
	return key
}

// SecretMode chooses which secret signs a storage node's tokens.
type SecretMode string

const (
	// SecretModeMaster signs with the master secret itself. The Rust
	// storage node (syncstorage-rs) verifies tokens with its configured
	// master_secret directly, and the Rust token server signs with it.
	SecretModeMaster SecretMode = "master"
	// SecretModeDerived signs with a per-node secret derived from the
	// master secret (mozsvc DerivedSecrets): what the Python token server
	// and the Python storage node (server-syncstorage) use.
	SecretModeDerived SecretMode = "derived"
)

// ParseSecretMode parses the --node-secret-mode value.
func ParseSecretMode(s string) (SecretMode, error) {
	switch SecretMode(s) {
	case SecretModeMaster, SecretModeDerived:
		return SecretMode(s), nil
	}
	return "", fmt.Errorf("node secret mode %q: want %q or %q", s, SecretModeMaster, SecretModeDerived)
}

// NodeSecret is the secret that signs tokens for node under mode.
// Derived: hex(HKDF-SHA256(master, salt=none,
// info="services.mozilla.com/mozsvc/v1/node_secret/" ‖ node,
// len(master)/2 bytes)), so the derived secret has the length of its
// (hex) master secret.
func NodeSecret(mode SecretMode, master, node string) (string, error) {
	switch mode {
	case SecretModeMaster:
		return master, nil
	case SecretModeDerived:
		size := len(master) / 2
		if size == 0 {
			return "", errors.New("derive node secret: master secret is shorter than 2 characters")
		}
		key, err := hkdf.Key(sha256.New, []byte(master), nil, infoNodeSecret+node, size)
		if err != nil {
			return "", fmt.Errorf("derive node secret: %w", err)
		}
		return hex.EncodeToString(key), nil
	}
	return "", fmt.Errorf("unknown node secret mode %q", mode)
}

// MetricsHash is the token servers' hashed_fxa_uid: the first 32 hex
// digits of HMAC-SHA256(key, fxaUID).
func MetricsHash(fxaUID string, key []byte) string {
	return MetricsHashFull(fxaUID, key)[:32]
}

// MetricsHashFull is the whole HMAC-SHA256(key, fxaUID) in hex: the "uid"
// of the token servers' request log lines (MetricsHash is its first 32
// digits, their "metrics_uid").
func MetricsHashFull(fxaUID string, key []byte) string {
	return hmacHex(key, fxaUID)
}

// HashedDeviceID is the token servers' hashed_device_id for OAuth sign-ins,
// which carry no device: the first 32 hex digits of
// HMAC-SHA256(key, hashedFxaUID ‖ "none").
func HashedDeviceID(hashedFxaUID string, key []byte) string {
	return hmacHex(key, hashedFxaUID+"none")[:32]
}

func hmacHex(key []byte, msg string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}
