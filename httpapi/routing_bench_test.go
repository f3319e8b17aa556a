package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
)

// hotRequests are the requests a token server sends most: a user lookup,
// a login and an allocation.
func hotRequests() []*http.Request {
	return []*http.Request{
		httptest.NewRequest(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=stale", nil),
		httptest.NewRequest(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", nil),
		httptest.NewRequest(http.MethodPost, "/v1/services/sync-1.5/users", nil),
	}
}

// flatRouter is how routes were mounted before routing.go: every route on
// one router, tried in order.
func flatRouter(s *Server) *mux.Router {
	r := mux.NewRouter()
	r.UseEncodedPath()
	r.SkipClean(true)
	for _, rt := range s.routes() {
		r.Handle(rt.path, s.serve(rt)).Methods(rt.method).Name(rt.name)
	}
	return r
}

// BenchmarkRouteMatch compares finding the route of the hot requests on
// the grouped router (the server's) and on one flat router.
func BenchmarkRouteMatch(b *testing.B) {
	s := New(Config{Store: fake.NewStore(), Logger: hclog.NewNullLogger()})
	for _, tc := range []struct {
		name string
		r    *mux.Router
	}{{"grouped", s.router}, {"flat", flatRouter(s)}} {
		b.Run(tc.name, func(b *testing.B) {
			reqs := hotRequests()
			b.ReportAllocs()
			for b.Loop() {
				for _, req := range reqs {
					var m mux.RouteMatch
					if !tc.r.Match(req, &m) || m.Route == nil {
						b.Fatalf("%s %s: no route", req.Method, req.URL)
					}
				}
			}
		})
	}
}

// BenchmarkObserve is the per-request cost of metrics (observe: the
// request counter, the duration histogram, the status recorder and the
// route label) around a handler that does nothing. The server logs no
// line per request (only failures), so logging costs nothing here.
func BenchmarkObserve(b *testing.B) {
	s := New(Config{Store: fake.NewStore(), Logger: hclog.NewNullLogger()})
	r := mux.NewRouter()
	r.Handle("/v1/services/{service}/users/{email}", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).Methods(http.MethodGet)
	bare := mux.NewRouter()
	bare.Handle("/v1/services/{service}/users/{email}", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).Methods(http.MethodGet)
	r.Use(s.observe)
	req := httptest.NewRequest(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", nil)
	w := httptest.NewRecorder()
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"with-metrics", r}, {"without", bare}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, req)
			}
		})
	}
}
