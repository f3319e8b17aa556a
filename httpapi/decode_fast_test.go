package httpapi

import (
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestSplitFlatObjectAgreesWithTheDecoder: whenever the fast splitter
// accepts a body, json.Decoder's strict pass (decodeObject) accepts it too
// and finds the same members in the same order; bodies built from JSON's
// own pieces, valid or not, with any whitespace.
func TestSplitFlatObjectAgreesWithTheDecoder(t *testing.T) {
	pieces := []string{"{", "}", ",", ":", " ", "\t", "\n", "\r", `"a"`, `"b"`, `""`, `"k\u0041"`, `"é"`, "\"\xff\"",
		`"x\"y"`, `"<&>"`, "0", "-0", "1", "-12", "1.5", "1e3", "1E+3", "2e-1", "01", "1.", ".5", "-", "1e", "+1",
		"true", "false", "null", "tru", "nulll", "[1]", `{"n":1}`, "\"\x01\"", "\x00", "\xef\xbb\xbf", "\u00a0", "x"}
	rapid.Check(t, func(t *rapid.T) {
		var body string
		if rapid.Bool().Draw(t, "well-formed") {
			// An object of scalar members, with random spacing.
			sp := func() string { return rapid.SampledFrom([]string{"", " ", "\n\t", "\r\n  "}).Draw(t, "space") }
			var members []string
			for n := rapid.IntRange(0, 5).Draw(t, "members"); n > 0; n-- {
				key := rapid.SampledFrom([]string{`"a"`, `"b"`, `"generation"`, `""`, `"k\u0041"`, `"é"`}).Draw(t, "key")
				val := rapid.SampledFrom(pieces[8:]).Draw(t, "value")
				members = append(members, sp()+key+sp()+":"+sp()+val+sp())
			}
			body = sp() + "{" + strings.Join(members, ",") + "}" + sp()
		} else {
			body = strings.Join(rapid.SliceOfN(rapid.SampledFrom(pieces), 0, 12).Draw(t, "pieces"), "")
		}
		fast, ok := splitFlatObject([]byte(body))
		if !ok {
			return
		}
		slow, bad := decodeObject([]byte(body))
		if bad != nil {
			t.Fatalf("%q: the splitter accepted what the decoder refuses: %v", body, *bad)
		}
		if !slices.Equal(fast.order, slow.order) || len(fast.fields) != len(slow.fields) {
			t.Fatalf("%q: members %q, decoder %q", body, fast.order, slow.order)
		}
		for k, v := range slow.fields {
			if string(fast.fields[k]) != string(v) {
				t.Fatalf("%q: %s = %s, decoder %s", body, k, fast.fields[k], v)
			}
		}
	})
}

// TestSplitFlatObjectTakesTheUsualBodies: the bodies clients send take
// the fast path (else it is dead code and the test above proves nothing).
func TestSplitFlatObjectTakesTheUsualBodies(t *testing.T) {
	for _, body := range []string{hotLoginBody, `{}`, ` { "email" : "a@b.c", "generation": 0, "node": null, "downed": true }` + "\n",
		`{"release_rate":0.10,"pattern":"{node}/1.5/{uid}","allow_new_users":false}`} {
		if _, ok := splitFlatObject([]byte(body)); !ok {
			t.Errorf("%s: not split by the fast path", body)
		}
	}
	for _, body := range []string{`{"a":{"b":1}}`, `{"a":"\n"}`, `{"a":1,"a":1}`, `{"a":1}x`, `{"a":01}`, `[]`} {
		if _, ok := splitFlatObject([]byte(body)); ok {
			t.Errorf("%s: split by the fast path", body)
		}
	}
}

// TestPlainJSONString: plainJSONString decodes only what it may, as
// json.Unmarshal would.
func TestPlainJSONString(t *testing.T) {
	for raw, want := range map[string]bool{`"abc"`: true, `""`: true, `"a b~"`: true, `"a\"`: false, `"é"`: false,
		"\"\x7f\"": false, "\"\x1f\"": false, `abc`: false, `"`: false} {
		s, ok := plainJSONString([]byte(raw))
		if ok != want || (ok && `"`+s+`"` != raw) {
			t.Errorf("%s: %q %v, want ok %v", raw, s, ok, want)
		}
	}
}
