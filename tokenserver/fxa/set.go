package fxa

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// The account events FxA sends its relying parties as Security Event
// Tokens (RFC 8417), by event type URI.
const (
	EventDeleteUser     = "https://schemas.accounts.firefox.com/event/delete-user"
	EventPasswordChange = "https://schemas.accounts.firefox.com/event/password-change"
)

// SET is a verified Security Event Token.
type SET struct {
	// Sub is the account the events are about (the FxA uid).
	Sub string
	// ID identifies the token: its jti, or when it has none a digest of
	// the whole token, so a redelivery is recognised either way.
	ID string
	// Events maps each event type URI to its payload.
	Events map[string]json.RawMessage
}

type setClaims struct {
	Iss    string                     `json:"iss"`
	Sub    string                     `json:"sub"`
	Aud    json.RawMessage            `json:"aud"`
	Jti    string                     `json:"jti"`
	Exp    *json.Number               `json:"exp"`
	Nbf    *json.Number               `json:"nbf"`
	Iat    *json.Number               `json:"iat"`
	Events map[string]json.RawMessage `json:"events"`
}

// VerifySET checks an RS256 Security Event Token against the verifier's
// keys (FxA signs them with the keys of its access tokens), for audience
// (the relying party's client id) and issuer. exp is optional, as in
// Mozilla's server. Refusals wrap ErrInvalidCredentials.
func (v *Verifier) VerifySET(ctx context.Context, token, audience, issuer string) (SET, error) {
	jt, ok := decodeJWT(token)
	if !ok {
		return SET{}, refuse("not an RS256 JWT")
	}
	keys, err := v.keysFor(ctx, jt.header.Kid)
	if err != nil {
		return SET{}, fmt.Errorf("fxa keys: %w", err)
	}
	if !jt.signedBy(keys) {
		return SET{}, refuse("SET signature matches no trusted key")
	}
	dec := json.NewDecoder(bytes.NewReader(jt.claims))
	dec.UseNumber()
	var c setClaims
	if err := dec.Decode(&c); err != nil {
		return SET{}, refuse("SET claims: %v", err)
	}
	if c.Iss != issuer {
		return SET{}, refuse("SET issuer %q, want %q", c.Iss, issuer)
	}
	if !audienceHas(c.Aud, audience) {
		return SET{}, refuse("SET audience is not %q", audience)
	}
	if err := checkTimes(v.now(), c.Exp, c.Nbf, c.Iat); err != nil {
		return SET{}, err
	}
	if c.Sub == "" {
		return SET{}, refuse("SET has no subject")
	}
	id := c.Jti
	if id == "" {
		sum := sha256.Sum256([]byte(token))
		id = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return SET{Sub: c.Sub, ID: id, Events: c.Events}, nil
}

// audienceHas: aud is one string or a list of them (RFC 7519 §4.1.3).
func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var list []string
	return json.Unmarshal(raw, &list) == nil && slices.Contains(list, want)
}
