package bench

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

func TestTokenKeyIDFormat(t *testing.T) {
	cases := []struct {
		kca  int64
		cs   []byte
		want string
	}{
		{1700000000000, []byte{0xaa, 0xaa}, "1700000000000-qqo"}, // docs/tokenserver.md's example
		{0, nil, "0-"},
		{42, []byte{0xfb, 0xff}, "42--_8"}, // URL alphabet, no padding
	}
	for _, c := range cases {
		if got := tokenKeyID(c.kca, c.cs); got != c.want {
			t.Errorf("tokenKeyID(%d, %x) = %q, want %q", c.kca, c.cs, got, c.want)
		}
	}
	for service, want := range map[string]string{"sync-1.5": "/1.0/sync/1.5", "bench-1.0": "/1.0/bench/1.0", "a-b-c": "/1.0/a/b-c"} {
		if got := tokenPath(service); got != want {
			t.Errorf("tokenPath(%q) = %q, want %q", service, got, want)
		}
	}
}

// tokenSignIn is what the fake token endpoint read from one request.
type tokenSignIn struct {
	generation, keysChangedAt int64
	clientState               string
}

// fakeTokenEndpoint checks every request the way the token server does
// (docs/tokenserver.md): a GET of path, a JWT that verifies against keys
// with the sync scope, an X-KeyID of <integer>-<unpadded base64url>, and
// no API token anywhere. It records each account's sign-in.
type fakeTokenEndpoint struct {
	t        *testing.T
	path     string
	verifier *fxa.Verifier
	mu       sync.Mutex
	requests int
	accounts map[string]tokenSignIn
}

func (f *fakeTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(format string, args ...any) {
		f.t.Errorf(format, args...)
		http.Error(w, `{"status":"invalid-credentials"}`, http.StatusUnauthorized)
	}
	if r.Method != http.MethodGet || r.URL.Path != f.path || r.URL.RawQuery != "" {
		refuse("request %s %s, want GET %s", r.Method, r.URL, f.path)
		return
	}
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		refuse("Authorization %q: want one Bearer token", auth)
		return
	}
	id, err := f.verifier.Verify(r.Context(), strings.TrimPrefix(auth[0], "Bearer "))
	if err != nil {
		refuse("access token refused: %v", err)
		return
	}
	kids := r.Header.Values("X-KeyID")
	if len(kids) != 1 {
		refuse("X-KeyID %q: want exactly one", kids)
		return
	}
	ts, b64, _ := strings.Cut(kids[0], "-")
	kca, err1 := strconv.ParseInt(ts, 10, 64)
	cs, err2 := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err1 != nil || err2 != nil || len(cs) != 16 {
		refuse("X-KeyID %q: want <keys_changed_at>-<unpadded base64url of 16 bytes>", kids[0])
		return
	}
	got := tokenSignIn{generation: id.Generation, keysChangedAt: kca, clientState: string(cs)}
	if got.generation <= 0 || got.generation != got.keysChangedAt {
		refuse("fxa-generation %d, keys_changed_at %d: want both the same ms timestamp", got.generation, got.keysChangedAt)
		return
	}
	f.mu.Lock()
	prev, seen := f.accounts[id.FxaUID]
	f.accounts[id.FxaUID] = got
	f.requests++
	f.mu.Unlock()
	if seen && prev != got {
		refuse("account %s signed in with %+v, then %+v: a returning account must send the same state", id.FxaUID, prev, got)
		return
	}
	w.Header().Set("X-Wimms-Member", "fake")
	_, _ = w.Write([]byte(`{"id":"t","key":"k","uid":1}`))
}

// TestTokenWorkloadRequests runs the token workload against a fake
// endpoint that checks every request's path and headers.
func TestTokenWorkloadRequests(t *testing.T) {
	key, err := fxa.GenerateKey("bench-test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := fxa.ParseJWKS(fxa.JWKS(key))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTokenEndpoint{t: t, path: "/1.0/sync/1.5", verifier: &fxa.Verifier{Keys: fxa.StaticKeys(keys)},
		accounts: map[string]tokenSignIn{}}
	srv := httptest.NewServer(f)
	defer srv.Close()

	const users, ops = 5, 60
	s, err := Run(context.Background(), Config{Addrs: []string{hostOf(srv.URL)}, APIToken: "api-secret",
		Workload: WorkloadToken, Service: "sync-1.5", Users: users, Clients: 3, Ops: ops, TokenKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != ops || s.OK != ops || s.Errors != 0 {
		t.Fatalf("ops %d ok %d errors %d %v: want %d successful sign-ins", s.Ops, s.OK, s.Errors, s.ErrorsByStatus, ops)
	}
	if k := s.OpsByKind["token"]; k.OK != ops {
		t.Fatalf("ops by kind %+v: want %d token sign-ins", s.OpsByKind, ops)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests != ops {
		t.Fatalf("endpoint saw %d requests, want %d (minting must not send any)", f.requests, ops)
	}
	if len(f.accounts) == 0 || len(f.accounts) > users {
		t.Fatalf("%d distinct accounts signed in, want 1..%d", len(f.accounts), users)
	}
}

func TestTokenWorkloadNeedsKey(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Run(context.Background(), Config{Addrs: []string{hostOf(srv.URL)}, Workload: WorkloadToken, Ops: 1, Users: 1})
	if err == nil || !strings.Contains(err.Error(), "--token-jwks-key") {
		t.Fatalf("err %v: want a missing-key error naming --token-jwks-key", err)
	}
}

func TestMintedTokensOutliveTheRun(t *testing.T) {
	cfg := Config{Warmup: time.Hour, Duration: 30 * time.Hour}
	if got := tokenLifetime(&cfg); got < cfg.Warmup+cfg.Duration {
		t.Fatalf("lifetime %s shorter than the run %s", got, cfg.Warmup+cfg.Duration)
	}
}
