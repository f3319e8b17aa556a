package httpapi

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// awkwardStrings are strings whose JSON spelling encoding/json treats
// specially: quotes, backslashes, control characters (short and \u
// escapes), HTML characters, DEL, U+2028/U+2029, invalid UTF-8 and
// multi-byte runes.
var awkwardStrings = []string{"", "a@b.c", `"`, `\`, "\b\f\n\r\t", "\x00\x01\x1f", "<>&", "\x7f",
	"\u2028\u2029", "\xff", "\xe2\x80", "é€𝄞", "a\u2028b<c>\"d\\", "https://n1.example.com/1.5/42"}

func anyJSONString(t *rapid.T, label string) string {
	if rapid.Bool().Draw(t, label+"-awkward") {
		return rapid.SampledFrom(awkwardStrings).Draw(t, label)
	}
	return string(rapid.SliceOf(rapid.Byte()).Draw(t, label))
}

// TestAppendUserMatchesEncodingJSON: the hand-written user and login
// answers are byte for byte what json.Marshal makes of toUserJSON's
// wire.User (and wire.LoginResult), for any strings, numbers, nulls and
// removed nodes.
func TestAppendUserMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		num := func(label string) int64 {
			return rapid.OneOf(rapid.Int64(), rapid.SampledFrom([]int64{0, -1, fsm.Null, 1 << 62})).Draw(t, label)
		}
		u := fsm.User{Record: fsm.Record{
			UID: num("uid"), Service: anyJSONString(t, "service"), Email: anyJSONString(t, "email"),
			NodeID: num("node_id"), Generation: num("generation"), KeysChangedAt: num("kca"),
			ClientState: anyJSONString(t, "client_state"), CreatedAt: num("created_at"), ReplacedAt: num("replaced_at"),
		}, FirstSeenAt: num("first_seen_at")}
		if rapid.Bool().Draw(t, "has-node") {
			u.NodeURL, u.APIEndpoint = anyJSONString(t, "node"), anyJSONString(t, "api_endpoint")
		}
		if rapid.Bool().Draw(t, "non-nil-old") {
			u.OldClientStates = []string{}
		}
		for i := rapid.IntRange(0, 3).Draw(t, "old"); i > 0; i-- {
			u.OldClientStates = append(u.OldClientStates, anyJSONString(t, "old-state"))
		}
		fxaKid := anyJSONString(t, "fxa_kid")

		want, err := json.Marshal(toUserJSON(u))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendUserJSON(nil, &u, false, ""); string(got) != string(want) {
			t.Fatalf("user:\n got %s\nwant %s", got, want)
		}
		want, err = json.Marshal(wire.LoginResult{User: toUserJSON(u), FxaKid: fxaKid})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendUserJSON([]byte("prefix"), &u, true, fxaKid); string(got) != "prefix"+string(want) {
			t.Fatalf("login:\n got %s\nwant prefix%s", got, want)
		}
	})
}

// TestAppendJSONStringEveryByte: each single byte and each awkward string
// is escaped as encoding/json escapes it.
func TestAppendJSONStringEveryByte(t *testing.T) {
	cases := append([]string(nil), awkwardStrings...)
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}
