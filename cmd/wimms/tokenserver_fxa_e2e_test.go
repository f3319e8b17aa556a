package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// mockFxA is Firefox Accounts as a member sees it: GET /v1/jwks and
// POST /v1/verify (for the tokens in opaque, by token text → uid).
type mockFxA struct {
	key    testFxAKey
	mu     sync.Mutex
	opaque map[string]string
	jwks   int
	verify int
}

func (f *mockFxA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/jwks":
		f.jwks++
		k := f.key
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
			"n": base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes())}}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/verify":
		f.verify++
		var body struct{ Token string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		uid, ok := f.opaque[body.Token]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"user": uid, "scope": []string{oldSyncScope}, "generation": 100})
	default:
		http.NotFound(w, r)
	}
}

func (f *mockFxA) calls() (jwks, verify int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jwks, f.verify
}

// signJWT signs claims under any header with the standard library only.
func signJWT(t *testing.T, k testFxAKey, header map[string]string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	d := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestTokenServerOAuthServerOnly: a member given only FxA's URL (no JWKS
// file) verifies FxA's JWTs with the keys it fetches from /v1/jwks, sends
// a bearer token that is not a JWT (JSON text with dots, as Mozilla's
// test FxA hands out) to /v1/verify, and takes FxA's account events: a
// password change delivered twice changes the user once, a delete retires
// the user.
func TestTokenServerOAuthServerOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs a real member")
	}
	const jsonToken = `{"fxa_uid": "json-user", "generation": 100, "note": "a.b.c"}`
	fxa := &mockFxA{key: newTestFxAKey(t, "fxa-1"), opaque: map[string]string{jsonToken: "json-user"}}
	fxaSrv := httptest.NewServer(fxa)
	defer fxaSrv.Close()
	masterFile := testutil.TempFile(t, "master", []byte("5d1ae3f94b54d6a9c6a7d0ef0bb1a4fd\n"))
	hashFile := testutil.TempFile(t, "hash", []byte("metrics-hash-secret\n"))
	const client, issuer = "sync-client-id", "https://accounts.example.com"

	ms := launchMembers(t, 1, membersSpec{idPrefix: "fxa", zones: []string{"zone"},
		flags: []string{"--fxa-oauth-server-url", fxaSrv.URL, "--master-secret-file", masterFile, "--metrics-hash-secret-file", hashFile,
			"--fxa-webhook-client-id", client, "--fxa-webhook-issuer", issuer}})
	m := ms[0]
	waitConverged(t, ms, 1)
	expect(t, call(t, "PUT", m.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/1.5/{uid}"}), 201, "service")
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://node.example", "capacity": 100, "available": 100}), 201, "node")

	jwt := fxa.key.jwt(t, syncClaims("jwt-user", 100))
	a := expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer "+jwt, "X-KeyID", "100-qqo"), 200, "sign-in with an FxA JWT")
	if jh, vh := fxa.calls(); jh != 1 || vh != 0 {
		t.Fatalf("after a JWT sign-in FxA saw %d jwks and %d verify calls, want 1 and 0", jh, vh)
	}
	expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer "+jwt, "X-KeyID", "100-qqo"), 200, "again")
	if jh, _ := fxa.calls(); jh != 1 {
		t.Fatalf("keys fetched %d times for a known kid, want 1 (cached)", jh)
	}
	expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer "+jsonToken, "X-KeyID", "100-qqo"), 200, "sign-in with a token that is not a JWT")
	if _, vh := fxa.calls(); vh != 1 {
		t.Fatalf("verify calls %d, want 1", vh)
	}
	r := expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer not-known", "X-KeyID", "100-qqo"), 401, "unknown token")
	if r.str("status") != "invalid-credentials" || r.header.Get("X-Timestamp") == "" {
		t.Fatalf("unknown token: %s %v", r.raw, r.header)
	}

	userGen := func() int64 {
		t.Helper()
		return expect(t, call(t, "GET", userURL(m, "sync-1.5", "jwt-user@api.accounts.firefox.com", "?consistency=linearizable"), nil), 200, "user").num("generation")
	}
	event := func(jti string, events map[string]any) answer {
		set := signJWT(t, fxa.key, map[string]string{"alg": "RS256", "typ": "secevent+jwt", "kid": fxa.key.kid},
			map[string]any{"iss": issuer, "aud": client, "sub": "jwt-user", "jti": jti, "iat": time.Now().Unix(), "events": events})
		return call(t, "POST", m.url("/1.0/webhooks/fxa/events"), nil, "Authorization", "Bearer "+set)
	}
	pw := map[string]any{"https://schemas.accounts.firefox.com/event/password-change": map[string]any{"changeTime": 5000}}
	first := expect(t, event("pw-1", pw), 200, "password change")
	if first.raw == "" || userGen() != 4999 {
		t.Fatalf("after the password change: %s, generation %d", first.raw, userGen())
	}
	// The user signs in with the newer generation; the redelivered event
	// must not act again.
	expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer "+fxa.key.jwt(t, syncClaims("jwt-user", 6000)), "X-KeyID", "100-qqo"), 200, "sign-in after the change")
	again := expect(t, event("pw-1", pw), 200, "redelivered password change")
	var out struct{ Events map[string]string }
	if json.Unmarshal([]byte(again.raw), &out) != nil || out.Events["https://schemas.accounts.firefox.com/event/password-change"] != "repeated" || userGen() != 6000 {
		t.Fatalf("redelivery: %s, generation %d", again.raw, userGen())
	}
	expect(t, event("del-1", map[string]any{"https://schemas.accounts.firefox.com/event/delete-user": map[string]any{}}), 200, "delete")
	expect(t, call(t, "GET", m.url("/1.0/sync/1.5"), nil, "Authorization", "Bearer "+fxa.key.jwt(t, syncClaims("jwt-user", 7000)), "X-KeyID", "100-qqo"), 401, "sign-in of a deleted account")
	_ = a
}
