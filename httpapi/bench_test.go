package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/internal/fake"
)

// The benchmarks measure the HTTP layer's own cost per request (routing,
// auth, strict decoding, validation, hashing, rendering, metrics) against a
// fake store that does no work.

func benchServer(b *testing.B) (*Server, *fake.Store) {
	st := fake.NewStore()
	u := sampleUser()
	st.Result = fsm.Result{User: &u}
	st.State.Users[fake.UserKey("sync-1.5", "a@b.c")] = sampleUser()
	return New(Config{Store: st, Logger: hclog.NewNullLogger(), APIToken: "t"}), st
}

func BenchmarkLoginWrite(b *testing.B) {
	srv, _ := benchServer(b)
	h := srv.Handler()
	body := `{"generation":1700000000000,"keys_changed_at":1700000000000,"client_state":"0123456789abcdef0123456789abcdef"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderIdempotencyKey, "k")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("code %d: %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkGetUserRead(b *testing.B) {
	srv, _ := benchServer(b)
	h := srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=stale", nil)
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("code %d: %s", rec.Code, rec.Body)
		}
	}
}
