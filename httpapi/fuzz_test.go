package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
)

// FuzzParseObject: any body either is refused with a detail or parses to
// an object whose canonical form is itself a body that parses to the same
// canonical form (the idempotency hash must be stable).
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"email":"a@b.c","generation":1}`, `{"a":1,"a":2}`, `{"x":[1,{"y":null}]} `,
		`{"release_rate":0.10}`, `{"n":1e400}`, `[1]`, `{"a":"\ud800"}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		obj, bad := parseObject(body)
		if (obj == nil) == (bad == nil) {
			t.Fatalf("parseObject(%q) = %v, %v: want exactly one", body, obj, bad)
		}
		if bad != nil {
			return
		}
		c1 := obj.canonical(nil)
		again, bad := parseObject(c1)
		if bad != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c1, body, bad)
		}
		if c2 := again.canonical(nil); !bytes.Equal(c1, c2) {
			t.Fatalf("canonical form not stable: %q → %q", c1, c2)
		}
	})
}

// FuzzRequestBody sends arbitrary bodies to every body-taking route on the
// fake store: the answer is never a 500, and every error answer has the
// documented shape.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.c","generation":1,"client_state":"aabb"}`, `{"node":"https://n.example.com","capacity":5}`,
		`{"generation":9223372036854775808}`, `{"email":"` + "\x00" + `"}`, `{"pattern":"{node}/{uid}","release_rate":1.5}`, `not json`, `{"id":"m2"}`} {
		for route := range 6 {
			f.Add(uint8(route), []byte(s))
		}
	}
	targets := []struct{ method, path string }{
		{http.MethodPost, "/v1/services/sync-1.5/users"},
		{http.MethodPatch, "/v1/services/sync-1.5/users/a%40b.c"},
		{http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login"},
		{http.MethodPut, "/v1/services/sync-1.5"},
		{http.MethodPost, "/v1/services/sync-1.5/nodes"},
		{http.MethodPost, "/v1/events"},
		{http.MethodPost, "/v1/cluster/leader"},
		{http.MethodPatch, "/v1/services/sync-1.5/nodes/3"},
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		e := newEnv(t)
		e.seed()
		// Every command that reaches the store is refused by the "state
		// machine": what is fuzzed is the HTTP layer up to that boundary.
		e.store.ApplyFunc = func(fsm.Command) (fsm.Result, error) {
			return fsm.Result{Err: &fsm.Error{Status: fsm.StatusConflict, Msg: "refused by the fuzz fake"}}, nil
		}
		tg := targets[int(route)%len(targets)]
		req := httptest.NewRequest(tg.method, tg.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var eb ErrorBody
			dec := json.NewDecoder(rec.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&eb); err != nil || eb.Status == "" || len(eb.Errors) == 0 {
				t.Fatalf("%d answer outside the error shape: %v", rec.Code, err)
			}
		}
	})
}
