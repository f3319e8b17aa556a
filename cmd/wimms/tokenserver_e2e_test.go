package main

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// This file checks the token server of real members against an
// independent implementation: JWTs are signed, JWKS written, tokens and
// Hawk MACs verified with the standard library only, never with the
// project's own fxa/tokenlib/hawk packages.

const oldSyncScope = "https://identity.mozilla.com/apps/oldsync"

type testFxAKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func newTestFxAKey(t *testing.T, kid string) testFxAKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testFxAKey{kid: kid, priv: priv}
}

func writeJWKS(t *testing.T, path string, keys ...testFxAKey) {
	t.Helper()
	var list []map[string]string
	for _, k := range keys {
		list = append(list, map[string]string{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
			"n": base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes())})
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (k testFxAKey) jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	return signJWT(t, k, map[string]string{"alg": "RS256", "typ": "at+JWT", "kid": k.kid}, claims)
}

func syncClaims(sub string, generation int64) map[string]any {
	return map[string]any{"sub": sub, "scope": "profile " + oldSyncScope, "exp": time.Now().Add(time.Hour).Unix(), "fxa-generation": generation}
}

func hkdf32(t *testing.T, secret, salt []byte, info string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, secret, salt, info, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type tokenPayload struct {
	UID     int64   `json:"uid"`
	Node    string  `json:"node"`
	Expires float64 `json:"expires"`
	Salt    string  `json:"salt"`
	FxaUID  string  `json:"fxa_uid"`
	FxaKid  string  `json:"fxa_kid"`
}

// checkToken verifies a token and its derived secret the way a
// syncstorage-rs node does, with the master secret itself.
func checkToken(t *testing.T, master, id, key string) tokenPayload {
	t.Helper()
	raw, err := base64.URLEncoding.DecodeString(id)
	if err != nil || len(raw) <= 32 {
		t.Fatalf("token is not padded base64url: %v", err)
	}
	body, sig := raw[:len(raw)-32], raw[len(raw)-32:]
	mac := hmac.New(sha256.New, hkdf32(t, []byte(master), nil, "services.mozilla.com/tokenlib/v1/signing"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sig) {
		t.Fatalf("token signature does not verify with the master secret")
	}
	var p tokenPayload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("payload %s: %v", body, err)
	}
	want := base64.URLEncoding.EncodeToString(hkdf32(t, []byte(master), []byte(p.Salt), "services.mozilla.com/tokenlib/v1/derive/"+id))
	if key != want {
		t.Fatalf("derived secret %q, want %q", key, want)
	}
	return p
}

// hawkNode is a storage-node stand-in: it accepts DELETE /1.5/{uid} only
// with a valid token and Hawk MAC, and answers status.
type hawkNode struct {
	t      *testing.T
	master string
	status int
	mu     sync.Mutex
	ok     []int64
	bad    int
}

func (n *hawkNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	uid, err := n.verify(r)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.bad++
		n.t.Logf("storage node refused %s %s: %v", r.Method, r.URL, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	n.ok = append(n.ok, uid)
	w.WriteHeader(n.status)
}

func (n *hawkNode) verify(r *http.Request) (int64, error) {
	h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Hawk ")
	if !ok || r.Method != http.MethodDelete {
		return 0, fmt.Errorf("not a Hawk DELETE")
	}
	attrs := map[string]string{}
	for _, part := range strings.Split(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		attrs[k] = strings.Trim(v, `"`)
	}
	raw, err := base64.URLEncoding.DecodeString(attrs["id"])
	if err != nil || len(raw) <= 32 {
		return 0, fmt.Errorf("bad id")
	}
	body, sig := raw[:len(raw)-32], raw[len(raw)-32:]
	mac := hmac.New(sha256.New, hkdf32(n.t, []byte(n.master), nil, "services.mozilla.com/tokenlib/v1/signing"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sig) {
		return 0, fmt.Errorf("token signature")
	}
	var p tokenPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return 0, err
	}
	if p.Expires < float64(time.Now().Unix()) {
		return 0, fmt.Errorf("expired token")
	}
	key := base64.URLEncoding.EncodeToString(hkdf32(n.t, []byte(n.master), []byte(p.Salt), "services.mozilla.com/tokenlib/v1/derive/"+attrs["id"]))
	host, port, _ := strings.Cut(r.Host, ":")
	norm := "hawk.1.header\n" + attrs["ts"] + "\n" + attrs["nonce"] + "\n" + r.Method + "\n" + r.URL.RequestURI() + "\n" +
		host + "\n" + port + "\n\n" + attrs["ext"] + "\n"
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(norm))
	if base64.StdEncoding.EncodeToString(m.Sum(nil)) != attrs["mac"] {
		return 0, fmt.Errorf("hawk mac")
	}
	if r.URL.Path != "/1.5/"+strconv.FormatInt(p.UID, 10) {
		return 0, fmt.Errorf("path %s for token uid %d", r.URL.Path, p.UID)
	}
	return p.UID, nil
}

func (n *hawkNode) calls() ([]int64, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.ok...), n.bad
}

func TestTokenServerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs three real members")
	}
	const master = "5d1ae3f94b54d6a9c6a7d0ef0bb1a4fd5d1ae3f94b54d6a9c6a7d0ef0bb1a4fd"
	// Two master secrets, oldest first: the newest one signs.
	masterFile := testutil.TempFile(t, "master", []byte("# rotated out\n00000000000000000000000000000000\n"+master+"\n"))
	hashFile := testutil.TempFile(t, "hash", []byte("metrics-hash-secret\n"))
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	k1, k2, stranger := newTestFxAKey(t, "k1"), newTestFxAKey(t, "k2"), newTestFxAKey(t, "k1")
	writeJWKS(t, jwksFile, k1)

	good := &hawkNode{t: t, master: master, status: http.StatusNoContent}
	down := &hawkNode{t: t, master: master, status: http.StatusServiceUnavailable}
	goodSrv, downSrv := httptest.NewServer(good), httptest.NewServer(down)
	defer goodSrv.Close()
	defer downSrv.Close()

	ms := launchMembers(t, 3, membersSpec{idPrefix: "ts", zones: []string{"zone"},
		flags: []string{"--fxa-jwks-file", jwksFile, "--master-secret-file", masterFile, "--metrics-hash-secret-file", hashFile}})
	leader := waitConverged(t, ms, 3)
	var follower *member
	for _, m := range ms {
		if m.ID != leader {
			follower = m
		}
	}

	expect(t, call(t, "PUT", ms[0].url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/1.5/{uid}"}), 201, "service")
	expect(t, call(t, "POST", ms[0].url("/v1/services/sync-1.5/nodes"), map[string]any{"node": goodSrv.URL, "capacity": 100, "available": 100}), 201, "node")

	signin := func(m *member, jwt, keyID string) answer {
		t.Helper()
		var h []string
		if jwt != "" {
			h = append(h, "Authorization", "Bearer "+jwt)
		}
		if keyID != "" {
			h = append(h, "X-KeyID", keyID)
		}
		return call(t, "GET", m.url("/1.0/sync/1.5"), nil, h...)
	}

	// A sign-in on a follower (the login goes to the leader).
	a := expect(t, signin(follower, k1.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo"), 200, "sign-in via follower "+follower.ID)
	if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("X-Timestamp") == "" {
		t.Fatalf("headers %v", a.header)
	}
	uid := a.num("uid")
	p := checkToken(t, master, a.str("id"), a.str("key"))
	if p.UID != uid || p.Node != goodSrv.URL || p.FxaUID != "fxa-user-1" || p.FxaKid != "0000000000100-qqo" ||
		a.str("api_endpoint") != fmt.Sprintf("%s/1.5/%d", goodSrv.URL, uid) || a.num("duration") != 3600 || a.str("hashalg") != "sha256" {
		t.Fatalf("answer %s, payload %+v", a.raw, p)
	}
	hm := hmac.New(sha256.New, []byte("metrics-hash-secret"))
	hm.Write([]byte("fxa-user-1"))
	if want := fmt.Sprintf("%x", hm.Sum(nil))[:32]; a.str("hashed_fxa_uid") != want {
		t.Fatalf("hashed_fxa_uid %s, want %s", a.str("hashed_fxa_uid"), want)
	}
	for _, m := range ms {
		b := expect(t, signin(m, k1.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo"), 200, "again via "+m.ID)
		if b.num("uid") != uid {
			t.Fatalf("same user got uid %d then %d", uid, b.num("uid"))
		}
	}

	recordsOf := func(email string) string {
		r := expect(t, call(t, "GET", userURL(ms[0], "sync-1.5", email, "?consistency=linearizable"), nil), 200, "user")
		return r.raw
	}
	const email1 = "fxa-user-1@api.accounts.firefox.com"
	before := recordsOf(email1)
	expired := syncClaims("fxa-user-1", 100)
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	wrongScope := syncClaims("fxa-user-1", 100)
	wrongScope["scope"] = "profile"
	for _, c := range []struct {
		name, jwt, keyID, status string
	}{
		{"no token", "", "100-qqo", "error"},
		{"foreign key", stranger.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo", "invalid-credentials"},
		{"not yet trusted key", k2.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo", "invalid-credentials"},
		{"wrong scope", k1.jwt(t, wrongScope), "100-qqo", "invalid-credentials"},
		{"expired", k1.jwt(t, expired), "100-qqo", "invalid-credentials"},
		{"missing X-KeyID", k1.jwt(t, syncClaims("fxa-user-1", 100)), "", "invalid-key-id"},
		{"malformed X-KeyID", k1.jwt(t, syncClaims("fxa-user-1", 100)), "100-qq=o", "invalid-credentials"},
		{"lower generation", k1.jwt(t, syncClaims("fxa-user-1", 99)), "100-qqo", "invalid-generation"},
		{"new client state without keys_changed_at change", k1.jwt(t, syncClaims("fxa-user-1", 200)), "100-u7s", "invalid-client-state"},
	} {
		for _, m := range []*member{follower, byID(ms, leader)} {
			r := expect(t, signin(m, c.jwt, c.keyID), 401, c.name+" via "+m.ID)
			if r.str("status") != c.status {
				t.Fatalf("%s: status %s, want %s", c.name, r.raw, c.status)
			}
		}
	}
	if after := recordsOf(email1); after != before {
		t.Fatalf("a refused sign-in changed the user:\n%s\n%s", before, after)
	}

	// Key rotation: FxA publishes the new key beside the old one; members
	// re-read the file on their next request.
	writeJWKS(t, jwksFile, k1, k2)
	r := expect(t, signin(follower, k2.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo"), 200, "new kid after rotation")
	if r.num("uid") != uid {
		t.Fatalf("rotation moved the user: %s", r.raw)
	}
	expect(t, signin(follower, k1.jwt(t, syncClaims("fxa-user-1", 100)), "100-qqo"), 200, "old kid still published")

	// A key change replaces the record: the old one is for the purge.
	moved := expect(t, signin(follower, k2.jwt(t, syncClaims("fxa-user-1", 200)), "200-u7s"), 200, "key change")
	if moved.num("uid") == uid {
		t.Fatalf("key change kept uid %d", uid)
	}
	// A user on a node that is failing, replaced too.
	n2 := expect(t, call(t, "POST", ms[0].url("/v1/services/sync-1.5/nodes"), map[string]any{"node": downSrv.URL, "capacity": 100, "available": 100}), 201, "second node")
	_ = n2
	stuck := expect(t, call(t, "POST", ms[0].url("/v1/services/sync-1.5/users"), map[string]any{"email": "stuck@x", "node": downSrv.URL}), 201, "user on the failing node")
	expect(t, call(t, "POST", userURL(ms[0], "sync-1.5", "stuck@x", "/replace"), map[string]any{}), 200, "replace stuck@x")

	purge := func(extra ...string) (map[string]any, int) {
		t.Helper()
		args := append([]string{"purge", "--once", "--grace", "0s", "--max-per-loop", "1", "--addr", follower.HTTPAddr, "--master-secret-file", masterFile}, extra...)
		stdout, stderr, code := testutil.RunSplit(t, testutil.Wimms(t, args...))
		var sum map[string]any
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("purge summary %q (stderr %s): %v", stdout, stderr, err)
		}
		return sum, code
	}
	var sum map[string]any
	var code int
	eventually(t, 10*time.Second, "both replaced records listed", func() error {
		sum, code = purge("--dry-run")
		if sum["would_purge"] != float64(2) {
			return fmt.Errorf("dry run %v", sum)
		}
		return nil
	})
	if okCalls, _ := good.calls(); len(okCalls) != 0 || code != 0 {
		t.Fatalf("dry run asked a node or failed: %v, exit %d", okCalls, code)
	}
	sum, code = purge()
	okCalls, bad := good.calls()
	downCalls, _ := down.calls()
	if code != 1 || sum["purged"] != float64(1) || sum["failed"] != float64(1) || bad != 0 ||
		len(okCalls) != 1 || okCalls[0] != uid || len(downCalls) != 1 || downCalls[0] != stuck.num("uid") {
		t.Fatalf("purge: exit %d, summary %v, good node %v (%d refused), failing node %v", code, sum, okCalls, bad, downCalls)
	}
	var recs struct {
		Records []struct {
			UID int64 `json:"uid"`
		} `json:"records"`
	}
	rr := expect(t, call(t, "GET", userURL(ms[0], "sync-1.5", email1, "/records?consistency=linearizable"), nil), 200, "records after purge")
	if err := json.Unmarshal([]byte(rr.raw), &recs); err != nil || len(recs.Records) != 1 || recs.Records[0].UID != moved.num("uid") {
		t.Fatalf("records after purge: %s", rr.raw)
	}
	rs := expect(t, call(t, "GET", userURL(ms[0], "sync-1.5", "stuck@x", "/records?consistency=linearizable"), nil), 200, "stuck records")
	if !strings.Contains(rs.raw, fmt.Sprintf(`"uid":%d`, stuck.num("uid"))) {
		t.Fatalf("the failing node's record was deleted: %s", rs.raw)
	}
}
