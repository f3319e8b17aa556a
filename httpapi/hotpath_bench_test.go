package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// The hot-path benchmarks measure what a member spends on the two requests
// a token server sends most, as a follower serves them: a stale user
// lookup and a login that changes nothing (decided from a read). The state
// is the real state machine's read view; the Router serves everything here
// (a follower's answer to AnyMember). Request and response writer are
// reused, so allocs/op counts the server's allocations only. The file
// compiles against older revisions of the package too, which is how
// docs/benchmarks.md compares before and after in one run.

// hotStore is the real state machine behind the Store interface, with the
// Meta of a follower that heard from its leader 3 ms ago.
type hotStore struct {
	mu    sync.Mutex
	f     *fsm.FSM
	clock int64
}

var hotMeta = store.Meta{Index: 1234567, MemberID: "m2", KnownLeader: true, LastContactMs: 3}

func (s *hotStore) Apply(_ context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock += 1000
	cmd.TS = s.clock
	return s.f.Apply(cmd), hotMeta, nil
}

func (s *hotStore) Read(_ context.Context, _ store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error) {
	return hotMeta, fn(s.f.View())
}

func (s *hotStore) Meta() store.Meta { return hotMeta }
func (s *hotStore) Ready() bool      { return true }

// serveHere is a follower's Router for requests any member may serve.
type serveHere struct{}

func (serveHere) Route(http.ResponseWriter, *http.Request, []byte, store.Placement, Relay) bool {
	return false
}

// reuseWriter is a ResponseWriter reset between requests.
type reuseWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *reuseWriter) Header() http.Header { return w.h }
func (w *reuseWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *reuseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *reuseWriter) reset() {
	clear(w.h)
	w.code = 0
	w.body.Reset()
}

// reuseBody is a request body reset between requests.
type reuseBody struct{ strings.Reader }

func (*reuseBody) Close() error { return nil }

const (
	hotLookupPath = "/v1/services/sync-1.5/users/a%40b.c?consistency=stale"
	hotLoginPath  = "/v1/services/sync-1.5/users/a%40b.c/login"
	hotLoginBody  = `{"generation":1700000000000,"keys_changed_at":1700000000000,"client_state":"0123456789abcdef0123456789abcdef"}`
)

// hotServer is a follower's Server holding one service, node and user
// (who signed in with hotLoginBody's keys).
func hotServer(tb testing.TB) http.Handler {
	st := &hotStore{f: fsm.New(fsm.Options{}), clock: 1_700_000_000_000}
	srv := New(Config{Store: st, Router: serveHere{}, Logger: hclog.NewNullLogger(), APIToken: "t"})
	h := srv.Handler()
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`},
		{"POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1.example.com","capacity":100}`},
		{"POST", "/v1/services/sync-1.5/users", `{"email":"a@b.c","generation":1,"client_state":"aa"}`},
		{"POST", hotLoginPath, hotLoginBody},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderIdempotencyKey, "setup-"+c.path)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			tb.Fatalf("setup %s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
	return h
}

func benchHot(b *testing.B, method, target, body string) {
	h := hotServer(b)
	req := httptest.NewRequest(method, target, nil)
	req.Header.Set("Authorization", "Bearer t")
	var rd *reuseBody
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = int64(len(body))
		rd = &reuseBody{}
	}
	w := &reuseWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		if rd != nil {
			rd.Reset(body)
			req.Body = rd
		}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("code %d: %s", w.code, w.body.String())
		}
	}
}

// BenchmarkHotStaleLookup is GET /v1/services/{service}/users/{email}?consistency=stale.
func BenchmarkHotStaleLookup(b *testing.B) {
	benchHot(b, http.MethodGet, hotLookupPath, "")
}

// BenchmarkHotLoginRead is an unkeyed login that changes nothing.
func BenchmarkHotLoginRead(b *testing.B) {
	benchHot(b, http.MethodPost, hotLoginPath, hotLoginBody)
}
