package fxa

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// This file makes what FxA would: signing keys, their JWKS and access
// tokens. It exists for tests and for `wimms tokenserver`, which lets an
// operator try a deployment without a Firefox Accounts server.

// SigningKey is a private RSA key with its key id.
type SigningKey struct {
	ID   string
	Priv *rsa.PrivateKey
}

// GenerateKey makes a 2048-bit RSA key.
func GenerateKey(kid string) (SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate RSA key: %w", err)
	}
	return SigningKey{ID: kid, Priv: priv}, nil
}

// JWKS is the public JWKS document of keys.
func JWKS(keys ...SigningKey) []byte {
	doc := jwksDoc{Keys: []jwk{}}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, jwk{Kty: "RSA", Kid: k.ID, Alg: "RS256", Use: "sig",
			N: base64.RawURLEncoding.EncodeToString(k.Priv.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.Priv.E)).Bytes())})
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// PEM encodes the private key (PKCS#8) with its kid as a header.
func (k SigningKey) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Kid": k.ID}, Bytes: der}), nil
}

// ParseSigningKey reads what PEM wrote.
func ParseSigningKey(data []byte) (SigningKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return SigningKey{}, errors.New("private key: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return SigningKey{}, fmt.Errorf("private key: %w", err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return SigningKey{}, errors.New("private key: not RSA")
	}
	return SigningKey{ID: block.Headers["Kid"], Priv: priv}, nil
}

// Claims of a minted access token.
type Claims struct {
	Sub        string `json:"sub"`
	Scope      string `json:"scope"`
	Exp        int64  `json:"exp"`
	Iat        int64  `json:"iat,omitempty"`
	Nbf        int64  `json:"nbf,omitempty"`
	Generation int64  `json:"fxa-generation,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
}

// Mint signs claims as an RS256 access token (typ at+JWT) with k.
func (k SigningKey) Mint(c Claims) (string, error) {
	return k.MintWithHeader(map[string]string{"alg": "RS256", "typ": "at+JWT", "kid": k.ID}, c)
}

// MintWithHeader signs claims (any JSON value: tests also sign security
// event tokens) under an arbitrary header (tests use it to build tokens a
// verifier must refuse).
func (k SigningKey) MintWithHeader(header map[string]string, c any) (string, error) {
	hb, _ := json.Marshal(header)
	cb, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.Priv, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
