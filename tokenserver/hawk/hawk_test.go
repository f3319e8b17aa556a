package hawk

import (
	"net/http"
	"testing"
	"time"
)

// The MAC vectors of syncstorage-rs's storage node are checked in
// tokenserver/tokenlib (they need its derived secret); here: header round
// trips and refusals.
func TestSignParseVerify(t *testing.T) {
	r, _ := http.NewRequest(http.MethodDelete, "https://sync.example.com/1.5/42?x=1", nil)
	if err := Sign(r, "tok", "key", time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	p, err := Parse(r.Header.Get("Authorization"))
	if err != nil || p.ID != "tok" || p.TS != 1_700_000_000 || p.Nonce == "" {
		t.Fatalf("%+v %v", p, err)
	}
	req, err := RequestOf(r.Method, r.URL, r.Host)
	if err != nil || req != (Request{Method: "DELETE", Resource: "/1.5/42?x=1", Host: "sync.example.com", Port: 443}) {
		t.Fatalf("%+v %v", req, err)
	}
	if !Verify(p, "key", req) {
		t.Fatal("own signature does not verify")
	}
	for name, bad := range map[string]Request{
		"other key path": {Method: "DELETE", Resource: "/1.5/43?x=1", Host: "sync.example.com", Port: 443},
		"other method":   {Method: "GET", Resource: "/1.5/42?x=1", Host: "sync.example.com", Port: 443},
		"other port":     {Method: "DELETE", Resource: "/1.5/42?x=1", Host: "sync.example.com", Port: 80},
	} {
		if Verify(p, "key", bad) {
			t.Errorf("%s verified", name)
		}
	}
	if Verify(p, "other", req) {
		t.Error("another key verified")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, h := range []string{"", "Bearer x", `Hawk id="a"`, `Hawk id="a", ts="x", nonce="n", mac="m"`, `Hawk id=a, ts="1", nonce="n", mac="m"`} {
		if _, err := Parse(h); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
}
