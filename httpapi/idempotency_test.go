package httpapi

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
)

// TestIdempotentReplay: a repeated write with the same key and the same
// request (however its JSON is spelled) answers exactly like the first; the
// same key with another request is a conflict.
func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t)
	u := sampleUser()
	e.store.Result = fsm.Result{Created: true, User: &u}
	const path = "/v1/services/sync-1.5/users"
	first := e.do(http.MethodPost, path, `{"email":"a@b.c","generation":5}`, HeaderIdempotencyKey, "key-1")
	if first.code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.code, first.body)
	}
	// From now on a fresh computation would say "returned existing" (200):
	// only a true replay can still answer 201.
	e.store.Result = fsm.Result{Created: false, User: &u}
	sameRequest := []string{
		"{ \"generation\" : 5,\n \"email\":\"a\\u0040b.c\" }",
		`{"email":"a@b.c","generation":5,"node":null}`,
	}
	var again response
	for _, body := range sameRequest {
		again = e.do(http.MethodPost, path, body, HeaderIdempotencyKey, "key-1")
		if again.code != first.code || !bytes.Equal(again.body, first.body) {
			t.Fatalf("replay of %s answered %d %s, first was %d %s", body, again.code, again.body, first.code, first.body)
		}
	}
	if again.header.Get(HeaderReplayed) != "true" || first.header.Get(HeaderReplayed) != "" {
		t.Fatalf("replay header: first %q, again %q", first.header.Get(HeaderReplayed), again.header.Get(HeaderReplayed))
	}

	conflicts := []struct {
		name, method, path, body string
	}{
		{"other body", http.MethodPost, path, `{"email":"a@b.c","generation":6}`},
		{"other service", http.MethodPost, "/v1/services/sync-1.6/users", `{"email":"a@b.c","generation":5}`},
		{"other route", http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", ``},
	}
	for _, c := range conflicts {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.body, HeaderIdempotencyKey, "key-1")
			if r.code != http.StatusConflict || r.errorBody(t).Status != fsm.StatusConflict {
				t.Fatalf("code %d: %s", r.code, r.body)
			}
		})
	}

	cmds := e.store.Commands()
	if cmds[0].IdempotencyKey != "key-1" || cmds[0].RequestHash == 0 || cmds[1].RequestHash != cmds[0].RequestHash {
		t.Fatalf("commands carry key %q hashes %x %x", cmds[0].IdempotencyKey, cmds[0].RequestHash, cmds[1].RequestHash)
	}
}

// TestReleaseRateSpellingDoesNotChangeHash: 0.10 and 1e-1 mean 0.1.
func TestReleaseRateSpellingDoesNotChangeHash(t *testing.T) {
	e := newEnv(t)
	s := sampleService()
	e.store.Result = fsm.Result{Service: &s, Created: true}
	for i, rate := range []string{"0.1", "0.10", "1e-1"} {
		r := e.do(http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"p","release_rate":`+rate+`}`, HeaderIdempotencyKey, "k")
		if r.code != http.StatusCreated || (i > 0) != (r.header.Get(HeaderReplayed) == "true") {
			t.Fatalf("rate %s: code %d replay %q: %s", rate, r.code, r.header.Get(HeaderReplayed), r.body)
		}
	}
	if r := e.do(http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"p","release_rate":0.2}`, HeaderIdempotencyKey, "k"); r.code != http.StatusConflict {
		t.Fatalf("another rate under the same key: code %d", r.code)
	}
}

func TestNoKeyNoHash(t *testing.T) {
	e := newEnv(t)
	u := sampleUser()
	e.store.Result = fsm.Result{User: &u}
	e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", "")
	if c := e.store.Commands()[0]; c.IdempotencyKey != "" || c.RequestHash != 0 {
		t.Fatalf("command without a key carries %q %x", c.IdempotencyKey, c.RequestHash)
	}
}

// TestEmailEscapingDoesNotChangeHash: a@b and a%40b address the same user,
// so a retry that escapes differently is still a replay.
func TestEmailEscapingDoesNotChangeHash(t *testing.T) {
	e := newEnv(t)
	u := sampleUser()
	e.store.Result = fsm.Result{User: &u}
	e.do(http.MethodPost, "/v1/services/sync-1.5/users/a@b.c/retire", "", HeaderIdempotencyKey, "k")
	r := e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", "", HeaderIdempotencyKey, "k")
	if r.code != http.StatusOK || r.header.Get(HeaderReplayed) != "true" {
		t.Fatalf("code %d replay %q: %s", r.code, r.header.Get(HeaderReplayed), r.body)
	}
}
