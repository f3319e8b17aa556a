package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

var (
	tsKeysOnce           sync.Once
	tsTrusted, tsForeign fxa.SigningKey
)

func tokenKeys(t *testing.T) (trusted, foreign fxa.SigningKey) {
	t.Helper()
	tsKeysOnce.Do(func() {
		var err error
		if tsTrusted, err = fxa.GenerateKey("trusted"); err != nil {
			panic(err)
		}
		if tsForeign, err = fxa.GenerateKey("trusted"); err != nil { // same kid, other key
			panic(err)
		}
	})
	return tsTrusted, tsForeign
}

const tsMaster = "0123456789abcdef0123456789abcdef"

type tokenEnv struct {
	*testEnv
	st      *fsmStore
	vst     *viewStore // st, with reads on the read view and counted proposals
	trusted fxa.SigningKey
	foreign fxa.SigningKey
	clock   time.Time
}

func newTokenEnv(t *testing.T, edit ...func(*tokenserver.Config)) *tokenEnv {
	t.Helper()
	trusted, foreign := tokenKeys(t)
	keys, err := fxa.ParseJWKS(fxa.JWKS(trusted))
	if err != nil {
		t.Fatal(err)
	}
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	clock := time.Unix(1_800_000_000, 0)
	cfg := tokenserver.Config{
		Verifier:          &fxa.Verifier{Keys: fxa.StaticKeys(keys), Now: func() time.Time { return clock }},
		MasterSecrets:     []string{"old-secret", tsMaster},
		Mode:              tokenlib.SecretModeMaster,
		MetricsHashSecret: []byte("hash-secret"),
		Now:               func() time.Time { return clock },
	}
	for _, f := range edit {
		f(&cfg)
	}
	iss, err := tokenserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vst := &viewStore{fsmStore: st}
	srv := New(Config{Store: vst, Logger: hclog.NewNullLogger(), Now: func() time.Time { return clock }, Tokens: iss})
	e := &tokenEnv{testEnv: &testEnv{t: t, srv: srv}, st: st, vst: vst, trusted: trusted, foreign: foreign, clock: clock}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`},
		{"POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1.example","capacity":100,"available":100}`},
	} {
		if r := e.do(c.method, c.path, c.body); r.code/100 != 2 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	return e
}

func (e *tokenEnv) claims(sub string, generation int64) fxa.Claims {
	return fxa.Claims{Sub: sub, Scope: fxa.SyncScope, Exp: e.clock.Unix() + 300, Generation: generation}
}

func (e *tokenEnv) jwt(k fxa.SigningKey, c fxa.Claims) string {
	e.t.Helper()
	s, err := k.Mint(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *tokenEnv) signin(jwt, keyID string, extra ...string) response {
	e.t.Helper()
	h := append([]string{}, extra...)
	if jwt != "" {
		h = append(h, "Authorization", "Bearer "+jwt)
	}
	if keyID != "" {
		h = append(h, HeaderKeyID, keyID)
	}
	return e.do("GET", "/1.0/sync/1.5", "", h...)
}

func (e *tokenEnv) records(email string) string {
	e.t.Helper()
	r := e.do("GET", "/v1/services/sync-1.5/users/"+strings.ReplaceAll(email, "@", "%40")+"/records", "")
	return fmt.Sprintf("%d %s", r.code, r.body)
}

func TestTokenEndpointDisabledIs404(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/1.0/sync/1.5", ""); r.code != http.StatusNotFound {
		t.Fatalf("disabled token endpoint answered %d", r.code)
	}
}

func TestTokenEndpointIssuesTokens(t *testing.T) {
	e := newTokenEnv(t)
	r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-qqo")
	if r.code != http.StatusOK {
		t.Fatalf("sign-in: %d %s", r.code, r.body)
	}
	var tok TokenJSON
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tok); err != nil {
		t.Fatalf("answer %s: %v", r.body, err)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Timestamp") != "1800000000" {
		t.Fatalf("headers %v", r.header)
	}
	wantEndpoint := fmt.Sprintf("https://n1.example/1.5/%d", tok.UID)
	if tok.APIEndpoint != wantEndpoint || tok.Duration != 3600 || tok.HashAlg != "sha256" || tok.NodeType != "spanner" ||
		tok.HashedFxaUID != tokenlib.MetricsHash("fxa1", []byte("hash-secret")) {
		t.Fatalf("answer %+v", tok)
	}
	p, used, err := tokenlib.ParseToken(tok.ID, tsMaster)
	if err != nil || used != tsMaster {
		t.Fatalf("token not signed by the newest master secret: %v", err)
	}
	if p.UID != tok.UID || p.Node != "https://n1.example" || p.FxaUID != "fxa1" || p.FxaKid != "0000000001000-qqo" ||
		p.Expires != float64(e.clock.Unix()+3600) {
		t.Fatalf("payload %+v", p)
	}
	if key, _ := tokenlib.DerivedSecret(tok.ID, p.Salt, tsMaster); key != tok.Key {
		t.Fatal("key is not the token's derived secret")
	}
	var u struct {
		Email         string `json:"email"`
		Generation    int64  `json:"generation"`
		KeysChangedAt int64  `json:"keys_changed_at"`
		ClientState   string `json:"client_state"`
	}
	if r := e.do("GET", "/v1/services/sync-1.5/users/fxa1%40api.accounts.firefox.com", ""); r.code != 200 || json.Unmarshal(r.body, &u) != nil ||
		u.Generation != 1000 || u.KeysChangedAt != 1000 || u.ClientState != "aaaa" {
		t.Fatalf("stored user %d %s", r.code, r.body)
	}

	// Same user again: same uid; a shorter requested duration is honoured,
	// a longer one is not.
	for q, want := range map[string]int64{"?duration=100": 100, "?duration=99999": 3600, "?duration=x": 3600} {
		r := e.do("GET", "/1.0/sync/1.5"+q, "", "Authorization", "Bearer "+e.jwt(e.trusted, e.claims("fxa1", 1000)), HeaderKeyID, "1000-qqo")
		var again TokenJSON
		if r.code != 200 || json.Unmarshal(r.body, &again) != nil || again.UID != tok.UID || again.Duration != want {
			t.Fatalf("%s: %d %s", q, r.code, r.body)
		}
	}

	// A key change with a newer keys_changed_at moves the user to a new uid.
	r = e.signin(e.jwt(e.trusted, e.claims("fxa1", 2000)), "2000-u7s")
	var moved TokenJSON
	if r.code != 200 || json.Unmarshal(r.body, &moved) != nil || moved.UID == tok.UID {
		t.Fatalf("key change: %d %s", r.code, r.body)
	}
}

func TestTokenEndpointNewUsersDisabled(t *testing.T) {
	e := newTokenEnv(t)
	if r := e.do("PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}","allow_new_users":false}`); r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	r := e.signin(e.jwt(e.trusted, e.claims("newbie", 1)), "1-qqo")
	want := `{"status":"new-users-disabled","errors":[{"location":"body","name":"","description":"New users are not allowed"}]}`
	if r.code != http.StatusForbidden || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

// An Idempotency-Key must not let a second user replay the first user's
// answer: the header plays no part on this route.
func TestTokenEndpointIgnoresIdempotencyKey(t *testing.T) {
	e := newTokenEnv(t)
	var a, b TokenJSON
	ra := e.signin(e.jwt(e.trusted, e.claims("alice", 1)), "1-qqo", HeaderIdempotencyKey, "k1")
	rb := e.signin(e.jwt(e.trusted, e.claims("bob", 1)), "1-qqo", HeaderIdempotencyKey, "k1")
	if json.Unmarshal(ra.body, &a) != nil || json.Unmarshal(rb.body, &b) != nil || a.UID == b.UID || rb.header.Get(HeaderReplayed) != "" {
		t.Fatalf("alice %s, bob %s", ra.body, rb.body)
	}
}

type failingIssuer struct{ TokenIssuer }

func (failingIssuer) Authenticate(context.Context, string) (fxa.Identity, error) {
	return fxa.Identity{}, errors.New("dial tcp: connection refused")
}

func TestTokenEndpointFxAUnavailable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Tokens = failingIssuer{} })
	r := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer opaque", HeaderKeyID, "1-qqo")
	want := `{"status":"fxa-unavailable","errors":[{"location":"body","name":"","description":"Resource is not available"}]}`
	if r.code != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != want || len(e.store.Commands()) != 0 ||
		r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %v %s", r.code, r.header, r.body)
	}
}

// On a follower the login is not applied here: the Router relays the
// request to the leader before anything is proposed, headers intact.
func TestTokenEndpointForwardsToLeader(t *testing.T) {
	te := newTokenEnv(t)
	e := newEnv(t, func(c *Config) { c.Tokens = te.srv.tokens })
	e.router.Follower = true
	jwt := te.jwt(te.trusted, te.claims("fxa1", 1))
	r := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer "+jwt, HeaderKeyID, "1-qqo")
	relayed := e.router.Relayed()
	if r.header.Get("X-Fake-Forwarded") != "1" || len(relayed) != 1 || len(e.store.Commands()) != 0 {
		t.Fatalf("not relayed: %d %s", r.code, r.body)
	}
	if c := relayed[0]; c.Method != "GET" || c.Path != "/1.0/sync/1.5" || c.Where != store.OnLeader ||
		c.Header.Get("Authorization") != "Bearer "+jwt || c.Header.Get(HeaderKeyID) != "1-qqo" {
		t.Fatalf("relayed %+v", c)
	}
}

// TestTokenEndpointReturningUserIsARead: a returning user's sign-in with
// unchanged keys is answered from a linearizable read (nothing proposed),
// with the same user as the first sign-in; a new generation is proposed.
func TestTokenEndpointReturningUserIsARead(t *testing.T) {
	e := newTokenEnv(t)
	decode := func(r response) TokenJSON {
		t.Helper()
		if r.code != http.StatusOK {
			t.Fatalf("sign-in: %d %s", r.code, r.body)
		}
		var tok TokenJSON
		if err := json.Unmarshal(r.body, &tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := decode(e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-qqo"))
	applies := e.vst.applies.Load()
	again := decode(e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-qqo"))
	if e.vst.applies.Load() != applies {
		t.Fatalf("an unchanged sign-in was proposed")
	}
	if again.UID != first.UID || again.APIEndpoint != first.APIEndpoint {
		t.Fatalf("returning sign-in %+v, first %+v", again, first)
	}
	decode(e.signin(e.jwt(e.trusted, e.claims("fxa1", 2000)), "1000-qqo"))
	if e.vst.applies.Load() != applies+1 {
		t.Fatalf("a sign-in with a new generation was not proposed")
	}
}
