package tokenlib

import (
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/tokenserver/hawk"
)

// The vectors below are syncstorage-rs's own: the storage node's Hawk
// fixture (syncserver/src/web/auth.rs, master secret "Ted Koppel is a
// robot", a token made by the Python token server) and the token server's
// request fixture (syncserver/src/tokenserver/extractors.rs, fxa_uid
// "test123", an empty metrics hash secret). tokenlib's own tests have no
// fixed token vectors (they round-trip random ones); its HKDF vectors are
// RFC 5869's, which crypto/hkdf is tested against.
const (
	rsMasterSecret = "Ted Koppel is a robot"
	rsTokenID      = "eyJ1aWQiOiAxLCAibm9kZSI6ICJodHRwOi8vbG9jYWxob3N0OjUwMDAiLCAiZXhwaXJlcyI6IDE4ODQ5Njg0MzkuMCwgImZ4YV91aWQiOiAiMzE5Yjk4Zjk5NjFmZjFkYmRkMDczMTNjZDZiYTkyNWEiLCAiZnhhX2tpZCI6ICJkZTY5N2FkNjZkODQ1YjI4NzNjOWQ3ZTEzYjg5NzFhZiIsICJoYXNoZWRfZnhhX3VpZCI6ICIwZThkZjVkNDEzOThhMzg5OTEzYmQ4NDAyNDM1NjQ5NTE4YWY0NjQ5M2RhMWQ0YTQzN2E0NmRjMTc4NGM1MDFhIiwgImhhc2hlZF9kZXZpY2VfaWQiOiAiMmJjYjkyZjRkNDY5OGMzZDdiMDgzYTNjNjk4YTE2Y2NkNzhiYzJhOGQyMGE5NmU0YmIxMjhkZGNlYWY0ZTBiNiIsICJzYWx0IjogIjJiMzA3YiJ9lXaC5pIOenf7qL1AWlgKFvYH63nakyniTXP-7acS5cw="
)

func TestParseTokenSyncstorageVector(t *testing.T) {
	p, used, err := ParseToken(rsTokenID, "wibble", rsMasterSecret)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if used != rsMasterSecret {
		t.Fatalf("signed by %q, want the master secret", used)
	}
	want := Payload{Node: "http://localhost:5000", UID: 1, Expires: 1884968439, Salt: "2b307b",
		FxaUID: "319b98f9961ff1dbdd07313cd6ba925a", FxaKid: "de697ad66d845b2873c9d7e13b8971af",
		HashedFxaUID:   "0e8df5d41398a389913bd8402435649518af46493da1d4a437a46dc1784c501a",
		HashedDeviceID: "2bcb92f4d4698c3d7b083a3c698a16ccd78bc2a8d20a96e4bb128ddceaf4e0b6"}
	if p != want {
		t.Fatalf("payload\n got %+v\nwant %+v", p, want)
	}
	if _, _, err := ParseToken(rsTokenID, "wibble"); err == nil {
		t.Fatal("a wrong secret verified the token")
	}
	tampered := rsTokenID[:len(rsTokenID)-10] + "AAAAAAAAA="
	if _, _, err := ParseToken(tampered, rsMasterSecret); err == nil {
		t.Fatal("a tampered signature verified")
	}
}

// The derived secret is checked through the Hawk MACs the storage node's
// fixture accepts: a wrong derived secret cannot produce them.
func TestDerivedSecretSyncstorageHawkVectors(t *testing.T) {
	key, err := DerivedSecret(rsTokenID, "2b307b", rsMasterSecret)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, resource, nonce, mac string
	}{
		{"GET", "/storage/1.5/1/storage/col2", "h1Ch4vo=", "UwDpC+DSrHCSTQSfMOWlueB6kM6gHb0Hsv8eU9ZcTVs="},
		{"POST", "/storage/1.5/1/storage/col2?batch=MTUzNjE5ODk3NjkyMQ==&commit=true", "4Rj7c+0=", "E7j1UjN7//mh7pYXsgGi3n0KGR+sUPpuyogDVzJWaHg="},
	}
	for _, c := range cases {
		req := hawk.Request{Method: c.method, Resource: c.resource, Host: "localhost", Port: 5000}
		got := hawk.MAC(key, req, hawk.Artifacts{TS: 1569608439, Nonce: c.nonce})
		if got != c.mac {
			t.Errorf("%s %s: mac %s, want %s", c.method, c.resource, got, c.mac)
		}
	}
	// The fixture's bad_mac case must not verify.
	p := hawk.Parsed{ID: rsTokenID, MAC: "xRVjP7607eZUWCBxJKwTo1CsLcNf4TZwUUNrLPUqkdQ=", Artifacts: hawk.Artifacts{TS: 1569608439, Nonce: "h1Ch4vo="}}
	if hawk.Verify(p, key, hawk.Request{Method: "GET", Resource: "/storage/1.5/1/storage/col2", Host: "localhost", Port: 5000}) {
		t.Fatal("the fixture's bad mac verified")
	}
}

func TestMetricsHashesSyncstorageVector(t *testing.T) {
	h := MetricsHash("test123", []byte(""))
	if h != "4d00ecae64b98dd7dc7dea68d0dd615d" {
		t.Fatalf("hashed_fxa_uid %s", h)
	}
	if d := HashedDeviceID(h, []byte("")); d != "3a41cccbdd666ebc4199f1f9d1249d44" {
		t.Fatalf("hashed_device_id %s", d)
	}
}

func TestMakeTokenRoundTrip(t *testing.T) {
	p := Payload{Node: "https://sync-1.example.com", UID: 42, Expires: 2000000000, FxaUID: "abc", FxaKid: "0000000001234-qqo"}
	tok, derived, err := MakeToken(p, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ParseToken(tok, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Salt) != 6 || got.UID != 42 || got.Node != p.Node || got.Expires != p.Expires {
		t.Fatalf("round trip: %+v", got)
	}
	again, err := DerivedSecret(tok, got.Salt, "s3cret")
	if err != nil || again != derived {
		t.Fatalf("derived secret not reproducible: %q vs %q (%v)", again, derived, err)
	}
	if _, _, err := ParseToken(tok, "other"); err == nil {
		t.Fatal("verified with another secret")
	}
	tok2, derived2, _ := MakeToken(p, "s3cret")
	if tok2 == tok || derived2 == derived {
		t.Fatal("two tokens share a salt or secret")
	}
}

func TestNodeSecret(t *testing.T) {
	master := strings.Repeat("ab", 32)
	m, err := NodeSecret(SecretModeMaster, master, "https://n1")
	if err != nil || m != master {
		t.Fatalf("master mode: %q %v", m, err)
	}
	d1, err := NodeSecret(SecretModeDerived, master, "https://n1")
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := NodeSecret(SecretModeDerived, master, "https://n2")
	if len(d1) != len(master) || d1 == d2 || d1 == master {
		t.Fatalf("derived secrets: %q %q", d1, d2)
	}
	if _, err := ParseSecretMode("both"); err == nil {
		t.Fatal("accepted an unknown mode")
	}
}
