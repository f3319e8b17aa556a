package purge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// TestFxaKidSameOnEveryPath: a user's kid is the same in the state
// machine's login answer, in the token the endpoint's Issuer mints from
// it, and in the token the purge signs its DELETE with, for a hex, an
// empty and a non-hex client state (fsm.FxaKid is the one rule).
func TestFxaKidSameOnEveryPath(t *testing.T) {
	const secret = "00112233445566778899aabbccddeeff"
	node := &storageNode{t: t, secret: secret, status: http.StatusNoContent}
	srv := httptest.NewServer(node)
	defer srv.Close()

	iss, err := tokenserver.New(tokenserver.Config{Verifier: &fxa.Verifier{Keys: fxa.StaticKeys{}}, MasterSecrets: []string{secret},
		Mode: tokenlib.SecretModeMaster, MetricsHashSecret: []byte("h")})
	if err != nil {
		t.Fatal(err)
	}
	nodes := &HawkNodes{Minter: iss.Minter()}

	f := fsm.New(fsm.Options{})
	ts := int64(1_800_000_000_000)
	apply := func(cmd fsm.Command) fsm.Result {
		t.Helper()
		ts++
		cmd.TS = ts
		res := f.Apply(cmd)
		if res.Err != nil {
			t.Fatalf("%v: %v", cmd.Op, res.Err)
		}
		return res
	}
	apply(fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}")})
	apply(fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: srv.URL, Capacity: fsm.SomeInt64(100), Available: fsm.SomeInt64(100)})

	cases := []struct {
		name, email, cs string
		gen, kca        int64 // kca 0: none given
		want            string
	}{
		{"hex", "hex@x", "aaaa", 5, 1234, "0000000001234-qqo"},
		{"hex, no keys_changed_at", "gen@x", "0f", 7, 0, "0000000000007-Dw"},
		{"empty", "empty@x", "", 5, 0, "0000000000005-"},
		{"not hex", "nothex@x", "abc.def", 9, 9, "0000000000009-YWJjLmRlZg"},
		{"odd length", "odd@x", "abc", 3, 0, "0000000000003-YWJj"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := fsm.Command{Op: fsm.OpLogin, Service: "sync-1.5", Email: c.email, Generation: fsm.SomeInt64(c.gen),
				ClientState: fsm.SomeString(c.cs)}
			if c.kca != 0 {
				cmd.KeysChangedAt = fsm.SomeInt64(c.kca)
			}
			res := apply(cmd)
			u := res.User
			if res.FxaKid != c.want {
				t.Fatalf("login answer kid %q, want %q", res.FxaKid, c.want)
			}

			tok, err := iss.Issue(tokenserver.Grant{Node: u.NodeURL, UID: u.UID, FxaUID: "fxa", FxaKid: res.FxaKid})
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := tokenlib.ParseToken(tok.ID, secret)
			if err != nil || p.FxaKid != c.want {
				t.Fatalf("issued token kid %q (%v), want %q", p.FxaKid, err, c.want)
			}

			rec := Record{UID: u.UID, Email: u.Email, Node: u.NodeURL, Generation: u.Generation, ClientState: u.ClientState}
			if u.KeysChangedAt != fsm.Null {
				rec.KeysChangedAt = u.KeysChangedAt
			}
			before := len(node.kids)
			if err := nodes.DeleteUserData(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			if len(node.kids) != before+1 || node.kids[before] != c.want {
				t.Fatalf("purge signed kids %q, want %q last", node.kids, c.want)
			}
		})
	}
}
