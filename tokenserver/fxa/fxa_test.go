package fxa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

func TestVerifyNotBeforeAndIssuedAt(t *testing.T) {
	a, _, _ := testKeys(t)
	v := verifier(t, a)
	for name, c := range map[string]struct {
		mut func(*Claims)
		ok  bool
	}{
		"nbf within leeway": {func(c *Claims) { c.Nbf = now.Add(ClockLeeway).Unix() }, true},
		"nbf beyond leeway": {func(c *Claims) { c.Nbf = now.Add(ClockLeeway).Unix() + 1 }, false},
		"iat within leeway": {func(c *Claims) { c.Iat = now.Add(ClockLeeway).Unix() }, true},
		"iat beyond leeway": {func(c *Claims) { c.Iat = now.Add(2 * ClockLeeway).Unix() }, false},
		"iat in the past":   {func(c *Claims) { c.Iat = now.Add(-time.Hour).Unix() }, true},
		"nbf in the past":   {func(c *Claims) { c.Nbf = now.Add(-time.Hour).Unix() }, true},
	} {
		cl := good()
		c.mut(&cl)
		tok, err := a.Mint(cl)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), tok)
		if c.ok && err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		if !c.ok && !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: got %v, want invalid credentials", name, err)
		}
	}
}

// verifyServer is a mock FxA: /v1/verify answers for the tokens in users
// (token → uid), /v1/jwks serves jwks() with status jwksStatus.
type verifyServer struct {
	mu         sync.Mutex
	users      map[string]string
	jwks       []byte
	jwksStatus int
	jwksHits   int
	verifyHits int
	hold       chan struct{} // when set, /v1/verify waits on it
	entered    chan struct{}
}

func (m *verifyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/jwks":
		m.mu.Lock()
		m.jwksHits++
		status, body := m.jwksStatus, m.jwks
		m.mu.Unlock()
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	case "/v1/verify":
		var body struct{ Token string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		m.mu.Lock()
		m.verifyHits++
		uid, ok := m.users[body.Token]
		hold, entered := m.hold, m.entered
		m.mu.Unlock()
		if hold != nil {
			entered <- struct{}{}
			<-hold
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"user":"` + uid + `","scope":["` + SyncScope + `"],"generation":5}`))
	default:
		http.NotFound(w, r)
	}
}

func (m *verifyServer) hits() (jwks, verify int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jwksHits, m.verifyHits
}

// Mozilla's test FxA hands out JSON text with two dots as bearer tokens;
// a token that does not decode as a JWT must reach the verify server.
func TestVerifyNonJWTWithDotsGoesToVerifyServer(t *testing.T) {
	a, _, _ := testKeys(t)
	tok := `{"fxa_uid": "u.1", "generation": 1234, "keys.x": "y"}`
	mock := &verifyServer{users: map[string]string{tok: "u1"}, jwks: JWKS(a)}
	srv := httptest.NewServer(mock)
	defer srv.Close()
	v := &Verifier{Keys: NewRemoteJWKS(srv.URL, srv.Client(), nil), OAuthServerURL: srv.URL, HTTPClient: srv.Client(), Now: func() time.Time { return now }}
	id, err := v.Verify(context.Background(), tok)
	if err != nil || id.FxaUID != "u1" {
		t.Fatalf("got %+v %v", id, err)
	}
	if _, vh := mock.hits(); vh != 1 {
		t.Fatalf("verify server asked %d times, want 1", vh)
	}
	// A JWT whose alg is not RS256 does not decode as ours either.
	hs, _ := a.MintWithHeader(map[string]string{"alg": "HS256", "typ": "at+JWT"}, good())
	if _, err := v.Verify(context.Background(), hs); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("HS256 token: %v", err)
	}
	if _, vh := mock.hits(); vh != 2 {
		t.Fatalf("HS256 token: verify server asked %d times in all, want 2", vh)
	}
	// A decodable RS256 JWT with a bad signature is refused locally.
	_, _, c := testKeys(t)
	foreign, _ := c.Mint(good())
	if _, err := v.Verify(context.Background(), foreign); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("foreign key: %v", err)
	}
	if _, vh := mock.hits(); vh != 2 {
		t.Fatalf("foreign-key JWT reached the verify server")
	}
}

func TestRemoteJWKS(t *testing.T) {
	a, b, _ := testKeys(t)
	mock := &verifyServer{jwks: JWKS(a)}
	srv := httptest.NewServer(mock)
	defer srv.Close()
	clock := now
	var fetchErrs int
	keys := NewRemoteJWKS(srv.URL, srv.Client(), func(error) { fetchErrs++ })
	keys.now = func() time.Time { return clock }
	v := &Verifier{Keys: keys, Now: func() time.Time { return clock }}
	long := good()
	long.Exp = now.Add(time.Hour).Unix()
	tokA, _ := a.Mint(long)
	for range 3 {
		if _, err := v.Verify(context.Background(), tokA); err != nil {
			t.Fatalf("key a: %v", err)
		}
	}
	if jh, _ := mock.hits(); jh != 1 {
		t.Fatalf("keys fetched %d times for a known kid, want 1 (cached)", jh)
	}
	// FxA rotates to b: the unknown kid triggers one refresh.
	mock.mu.Lock()
	mock.jwks = JWKS(a, b)
	mock.mu.Unlock()
	clock = clock.Add(DefaultJWKSRefresh)
	tokB, _ := b.Mint(long)
	if _, err := v.Verify(context.Background(), tokB); err != nil {
		t.Fatalf("key b after rotation: %v", err)
	}
	if jh, _ := mock.hits(); jh != 2 {
		t.Fatalf("keys fetched %d times, want 2", jh)
	}
	// Unknown kids within a minute of the last fetch do not fetch again.
	unknown, _ := b.MintWithHeader(map[string]string{"alg": "RS256", "typ": "at+JWT", "kid": "zz"}, long)
	for range 5 {
		_, _ = v.Verify(context.Background(), unknown)
	}
	clock = clock.Add(DefaultJWKSRefresh - time.Second)
	_, _ = v.Verify(context.Background(), unknown)
	if jh, _ := mock.hits(); jh != 2 {
		t.Fatalf("keys fetched %d times within a minute, want 2", jh)
	}
	clock = clock.Add(time.Second)
	for range 3 {
		_, _ = v.Verify(context.Background(), unknown)
	}
	if jh, _ := mock.hits(); jh != 3 {
		t.Fatalf("keys fetched %d times, want 3 (one refresh a minute later)", jh)
	}
	// A failed fetch keeps the keys held.
	mock.mu.Lock()
	mock.jwksStatus = http.StatusInternalServerError
	mock.mu.Unlock()
	clock = clock.Add(2 * DefaultJWKSRefresh)
	_, _ = v.Verify(context.Background(), unknown)
	if fetchErrs != 1 {
		t.Fatalf("fetch errors reported: %d, want 1", fetchErrs)
	}
	if _, err := v.Verify(context.Background(), tokA); err != nil {
		t.Fatalf("key a after a failed refresh: %v", err)
	}
}

func TestRemoteJWKSUnavailableFallsBackToVerify(t *testing.T) {
	a, _, _ := testKeys(t)
	tokA, _ := a.Mint(good())
	mock := &verifyServer{jwksStatus: http.StatusBadGateway, users: map[string]string{tokA: "from-verify"}}
	srv := httptest.NewServer(mock)
	defer srv.Close()
	v := &Verifier{Keys: NewRemoteJWKS(srv.URL, srv.Client(), nil), OAuthServerURL: srv.URL, HTTPClient: srv.Client(), Now: func() time.Time { return now }}
	id, err := v.Verify(context.Background(), tokA)
	if err != nil || id.FxaUID != "from-verify" {
		t.Fatalf("got %+v %v, want the verify server's answer", id, err)
	}
}

func TestVerifyRemoteBounds(t *testing.T) {
	mock := &verifyServer{users: map[string]string{"t1": "u1", "t2": "u2"},
		hold: make(chan struct{}), entered: make(chan struct{}, 2)}
	srv := httptest.NewServer(mock)
	defer srv.Close()
	v := &Verifier{Keys: StaticKeys{}, OAuthServerURL: srv.URL, HTTPClient: srv.Client(), MaxConcurrentVerify: 2}
	big := strings.Repeat("x", MaxRemoteTokenBytes+1)
	if _, err := v.Verify(context.Background(), big); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("oversized token: %v", err)
	}
	if _, vh := mock.hits(); vh != 0 {
		t.Fatalf("an oversized token reached the verify server")
	}
	errs := make(chan error, 2)
	for _, tok := range []string{"t1", "t2"} {
		go func() { _, err := v.Verify(context.Background(), tok); errs <- err }()
	}
	<-mock.entered
	<-mock.entered
	if _, err := v.Verify(context.Background(), "t1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("third concurrent call: %v, want ErrBusy", err)
	}
	close(mock.hold)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if _, err := v.Verify(context.Background(), "t2"); err != nil {
		t.Fatalf("after the calls finished: %v", err)
	}
}

// A sign-in whose client hung up does not make the key fetch fail.
func TestRemoteJWKSFetchOutlivesCancelledCaller(t *testing.T) {
	a, _, _ := testKeys(t)
	mock := &verifyServer{jwks: JWKS(a)}
	srv := httptest.NewServer(mock)
	defer srv.Close()
	keys := NewRemoteJWKS(srv.URL, srv.Client(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := keys.KeysFor(ctx, "a"); err != nil || len(got) != 1 {
		t.Fatalf("keys %v, %v", got, err)
	}
}
