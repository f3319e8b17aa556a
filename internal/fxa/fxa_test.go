package fxa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	keysOnce sync.Once
	keyA     SigningKey
	keyB     SigningKey
	keyC     SigningKey
)

func testKeys(t *testing.T) (SigningKey, SigningKey, SigningKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, p := range []struct {
			k   *SigningKey
			kid string
		}{{&keyA, "a"}, {&keyB, "b"}, {&keyC, "c"}} {
			if *p.k, err = GenerateKey(p.kid); err != nil {
				panic(err)
			}
		}
	})
	return keyA, keyB, keyC
}

var now = time.Unix(1_800_000_000, 0)

func verifier(t *testing.T, keys ...SigningKey) *Verifier {
	t.Helper()
	parsed, err := ParseJWKS(JWKS(keys...))
	if err != nil {
		t.Fatal(err)
	}
	return &Verifier{Keys: StaticKeys(parsed), Now: func() time.Time { return now }}
}

func good() Claims {
	return Claims{Sub: "0123456789abcdef", Scope: "profile " + SyncScope, Exp: now.Unix() + 60, Generation: 1234}
}

func TestVerifyJWT(t *testing.T) {
	a, b, c := testKeys(t)
	v := verifier(t, a, b)
	for _, k := range []SigningKey{a, b} {
		tok, err := k.Mint(good())
		if err != nil {
			t.Fatal(err)
		}
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("key %s: %v", k.ID, err)
		}
		if id != (Identity{FxaUID: "0123456789abcdef", Generation: 1234}) {
			t.Fatalf("identity %+v", id)
		}
	}
	// A kid naming another key still verifies by trying every key.
	wrongKid, _ := b.MintWithHeader(map[string]string{"alg": "RS256", "typ": "at+JWT", "kid": "a"}, good())
	if _, err := v.Verify(context.Background(), wrongKid); err != nil {
		t.Fatalf("wrong kid: %v", err)
	}

	refused := map[string]func() string{
		"foreign key": func() string { s, _ := c.Mint(good()); return s },
		"wrong scope": func() string { cl := good(); cl.Scope = "profile"; s, _ := a.Mint(cl); return s },
		"expired":     func() string { cl := good(); cl.Exp = now.Unix(); s, _ := a.Mint(cl); return s },
		"no exp":      func() string { cl := good(); cl.Exp = 0; s, _ := a.Mint(cl); return s },
		"no sub":      func() string { cl := good(); cl.Sub = ""; s, _ := a.Mint(cl); return s },
		"alg none": func() string {
			s, _ := a.MintWithHeader(map[string]string{"alg": "none", "typ": "at+JWT"}, good())
			return s
		},
		"id token typ": func() string {
			s, _ := a.MintWithHeader(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "a"}, good())
			return s
		},
		"tampered claims": func() string {
			s, _ := a.Mint(good())
			other, _ := a.Mint(Claims{Sub: "someone-else", Scope: SyncScope, Exp: now.Unix() + 60})
			return s[:indexDot(s)] + other[indexDot(other):lastDot(other)] + s[lastDot(s):]
		},
		"opaque without oauth server": func() string { return "deadbeef" },
	}
	for name, mk := range refused {
		_, err := v.Verify(context.Background(), mk())
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: got %v, want invalid credentials", name, err)
		}
	}
}

func indexDot(s string) int {
	for i := range s {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func TestJWKSFileRotation(t *testing.T) {
	a, b, _ := testKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, JWKS(a), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := NewJWKSFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: f, Now: func() time.Time { return now }}
	tokB, _ := b.Mint(good())
	if _, err := v.Verify(context.Background(), tokB); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("key b before rotation: %v", err)
	}
	if err := os.WriteFile(path, JWKS(a, b), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tokB); err != nil {
		t.Fatalf("key b after rotation: %v", err)
	}
	// A broken file keeps the last good keys.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tokB); err != nil {
		t.Fatalf("after a broken rewrite: %v", err)
	}
}

func TestVerifyRemoteFallback(t *testing.T) {
	var gotToken string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/verify" {
			http.NotFound(w, r)
			return
		}
		var body struct{ Token string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		gotToken = body.Token
		switch body.Token {
		case "good":
			_, _ = w.Write([]byte(`{"user":"u1","scope":["profile","` + SyncScope + `"],"generation":77}`))
		case "noscope":
			_, _ = w.Write([]byte(`{"user":"u1","scope":["profile"]}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	v := &Verifier{Keys: StaticKeys{}, OAuthServerURL: srv.URL, HTTPClient: srv.Client()}
	id, err := v.Verify(context.Background(), "good")
	if err != nil || id != (Identity{FxaUID: "u1", Generation: 77}) || gotToken != "good" {
		t.Fatalf("good: %+v %v (server saw %q)", id, err, gotToken)
	}
	for _, tok := range []string{"noscope", "bad"} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: %v", tok, err)
		}
	}
	srv.Close()
	if _, err := v.Verify(context.Background(), "good"); err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("unreachable server: %v, want a non-credential error", err)
	}
}

func TestParseJWKSRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not json": "{",
		"no keys":  `{"keys":[]}`,
		"bad n":    `{"keys":[{"kty":"RSA","kid":"x","n":"!!","e":"AQAB"}]}`,
		"small":    `{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`,
	} {
		if _, err := ParseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSigningKeyPEMRoundTrip(t *testing.T) {
	a, _, _ := testKeys(t)
	p, err := a.PEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSigningKey(p)
	if err != nil || back.ID != "a" || !back.Priv.Equal(a.Priv) {
		t.Fatalf("round trip: %v", err)
	}
}
