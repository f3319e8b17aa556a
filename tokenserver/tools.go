package tokenserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// The helpers of `wimms tokenserver`, for trying the token server without
// a Firefox Accounts deployment. They write files only where told, and
// never overwrite a private key or a secret.

// WriteKeyPair makes an RSA signing key named kid, writes it as PEM (mode
// 0600) to keyOut, and writes to jwksOut the JWKS of it plus the older
// private keys in the files also (a rotation keeps trusting them). It
// returns how many keys the JWKS holds.
func WriteKeyPair(kid, keyOut, jwksOut string, also []string) (int, error) {
	if _, err := os.Stat(keyOut); err == nil {
		return 0, fmt.Errorf("%s exists; not overwriting a private key", keyOut)
	}
	k, err := fxa.GenerateKey(kid)
	if err != nil {
		return 0, fmt.Errorf("generating a key: %w", err)
	}
	keys := []fxa.SigningKey{k}
	for _, p := range also {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, fmt.Errorf("an older key: %w", err)
		}
		old, err := fxa.ParseSigningKey(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, old)
	}
	pemBytes, err := k.PEM()
	if err != nil {
		return 0, err
	}
	// O_EXCL: a key file that appeared since the check is not overwritten.
	f, err := os.OpenFile(keyOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("private key file: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		_ = f.Close()
		return 0, fmt.Errorf("writing %s: %w", keyOut, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", keyOut, err)
	}
	if err := os.WriteFile(jwksOut, fxa.JWKS(keys...), 0o644); err != nil {
		return 0, fmt.Errorf("writing the JWKS: %w", err)
	}
	return len(keys), nil
}

// MintTestToken signs an FxA-style access token (RS256, typ at+JWT) for
// sub with the private key in keyFile, issued now and living ttl;
// generation 0 leaves the fxa-generation claim out.
func MintTestToken(keyFile, sub, scope string, generation int64, ttl time.Duration, now time.Time) (string, error) {
	if sub == "" {
		return "", errors.New("--sub (the FxA uid) is required")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	k, err := fxa.ParseSigningKey(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", keyFile, err)
	}
	return k.Mint(fxa.Claims{Sub: sub, Scope: scope, Iat: now.Unix(), Exp: now.Add(ttl).Unix(), Generation: generation, ClientID: "wimms-test"})
}

// WriteSecretFile writes a random 32-byte hex secret to path, which must
// not exist yet (mode 0600).
func WriteSecretFile(path string) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("random secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("secret file: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(b[:]) + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
