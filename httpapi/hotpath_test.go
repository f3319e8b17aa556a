package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"

	"github.com/wimms-dev/wimms/fsm"
)

// hotPairServer is a follower's Server over the real state machine, with
// one service, node and user, whose Router relays what needs the leader.
func hotPairServer(t *testing.T) (*Server, *prometheus.Registry) {
	t.Helper()
	st := &hotStore{f: fsm.New(fsm.Options{}), clock: 1_700_000_000_000}
	reg := prometheus.NewRegistry()
	router := &fakeRouter{}
	srv := New(Config{Store: st, Router: router, Logger: hclog.NewNullLogger(), APIToken: "t", Registry: reg})
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`},
		{"POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1.example.com","capacity":100}`},
		{"POST", "/v1/services/sync-1.5/users", `{"email":"a@b.c","generation":1,"client_state":"aa"}`},
		{"POST", "/v1/services/sync-1.5/users", `{"email":"x<y>&z@b.c","generation":1,"client_state":"bb"}`},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			t.Fatalf("setup %s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
	router.Follower = true
	return srv, reg
}

// TestHotRoutesAnswerAsTheRouter: every request, on the hot routes or
// near them, gets the same status, headers and body, and counts the same
// metric series, whether served by Handler (which takes the hot routes
// without gorilla/mux) or by the router alone.
func TestHotRoutesAnswerAsTheRouter(t *testing.T) {
	hot, hotReg := hotPairServer(t)
	viaMux, muxReg := hotPairServer(t)
	const user = "/v1/services/sync-1.5/users/a%40b.c"
	const login = user + "/login"
	const keys = `{"generation":5,"keys_changed_at":5,"client_state":"cc"}`
	type call struct{ method, target, body, auth, contentType, idemKey string }
	calls := []call{
		{method: "GET", target: user + "?consistency=stale"},
		{method: "GET", target: user + "?consistency=stale&max_staleness=2s"},
		{method: "GET", target: user + "?max_staleness=2s&consistency=stale"},
		{method: "GET", target: user + "?consistency=linearizable"},
		{method: "GET", target: user},
		{method: "GET", target: user + "?consistency=bogus"},
		{method: "GET", target: user + "?consistency=stale&consistency=stale"},
		{method: "GET", target: user + "?consistency=stale&max_staleness=-1s"},
		{method: "GET", target: user + "?max_staleness=2s"},
		{method: "GET", target: user + "?max_staleness=soon&consistency=stale"},
		{method: "GET", target: user + "?consistency=stale&node=x"},
		{method: "GET", target: user + "?consistency=st%61le"},
		{method: "GET", target: user + "?consistency=stale;x=1"},
		{method: "GET", target: user + "?consistency=stale&&"},
		{method: "GET", target: user + "?=stale"},
		{method: "GET", target: user + "?consistency"},
		{method: "GET", target: "/v1/services/sync-1.5/users/a@b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/x%3Cy%3E%26z%40b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/nobody%40b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/no-such/users/a%40b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/bad%20name/users/a%40b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/a%2Fb?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/..?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/not-an-email?consistency=stale"},
		{method: "GET", target: user + "/?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users/?consistency=stale"},
		{method: "GET", target: "/v1/services//users/a%40b.c?consistency=stale"},
		{method: "GET", target: "/v1/services/sync-1.5/users"},
		{method: "HEAD", target: user},
		{method: "get", target: user},
		{method: "POST", target: user},
		{method: "DELETE", target: user},
		{method: "GET", target: user + "?consistency=stale", auth: "-"},
		{method: "GET", target: user + "?consistency=stale", auth: "Bearer wrong"},
		{method: "GET", target: user + "?consistency=stale", auth: "bearer t"},
		{method: "GET", target: user + "/records?consistency=stale"},
		{method: "GET", target: login},
		{method: "POST", target: login + "/", body: keys},
		{method: "POST", target: login, body: `{"generation":1,"client_state":"aa"}`},
		{method: "POST", target: login, body: `{"generation":0,"client_state":"aa"}`},
		{method: "POST", target: login, body: `{"client_state":"aa","generation":1,"extra":true}`},
		{method: "POST", target: login, body: `{"client_state":"aa","generation":1.0}`},
		{method: "POST", target: login, body: `{"client_state":"aa","client_state":"aa"}`},
		{method: "POST", target: login, body: `{"client_state":"aa"} x`},
		{method: "POST", target: login, body: `[1]`},
		{method: "POST", target: login, body: ``},
		{method: "POST", target: login, body: `{"generation":1,"client_state":"aa"}`, contentType: "text/plain"},
		{method: "POST", target: login, body: keys},
		{method: "POST", target: login, body: keys, idemKey: "k1"},
		{method: "POST", target: login + "?x=1", body: `{"generation":1,"client_state":"aa"}`},
		{method: "POST", target: "/v1/services/sync-1.5/users/new%40b.c/login", body: keys},
	}
	for _, c := range calls {
		do := func(h http.Handler) *httptest.ResponseRecorder {
			req := httptest.NewRequest(strings.ToUpper(c.method), c.target, strings.NewReader(c.body))
			req.Method = c.method
			switch c.auth {
			case "":
				req.Header.Set("Authorization", "Bearer t")
			case "-":
			default:
				req.Header.Set("Authorization", c.auth)
			}
			if c.body != "" || c.contentType != "" {
				ct := c.contentType
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			if c.idemKey != "" {
				req.Header.Set(HeaderIdempotencyKey, c.idemKey)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		a, b := do(hot.Handler()), do(viaMux.router)
		what := c.method + " " + c.target + " " + c.body
		if a.Code != b.Code || a.Body.String() != b.Body.String() {
			t.Errorf("%s:\nhot path %d %s\nrouter   %d %s", what, a.Code, a.Body, b.Code, b.Body)
		}
		if !reflect.DeepEqual(a.Header(), b.Header()) {
			t.Errorf("%s: headers\nhot path %v\nrouter   %v", what, a.Header(), b.Header())
		}
	}
	for _, name := range []string{"wimms_http_requests_total", "wimms_http_request_duration_seconds",
		"wimms_http_forwarded_requests_total", "wimms_logins_total", "wimms_login_reads_total"} {
		a, b := seriesCounts(t, hotReg, name), seriesCounts(t, muxReg, name)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s:\nhot path %v\nrouter   %v", name, a, b)
		}
	}
}

// TestHotRouteMatch: the requests Handler serves without the router are
// exactly the user lookups and logins the router would give those routes,
// with the escaped variables the router would extract.
func TestHotRouteMatch(t *testing.T) {
	s, _ := hotPairServer(t)
	for _, c := range []struct {
		method, target string
		want           *hotRoute
		service, email string
	}{
		{"GET", "/v1/services/sync-1.5/users/a%40b.c?consistency=stale", s.hot.getUser, "sync-1.5", "a%40b.c"},
		{"GET", "/v1/services/sync-1.5/users/a@b.c", s.hot.getUser, "sync-1.5", "a@b.c"},
		{"GET", "/v1/services/s/users/a%2Fb", s.hot.getUser, "s", "a%2Fb"},
		{"GET", "/v1/services/s/users/..", s.hot.getUser, "s", ".."},
		{"POST", "/v1/services/sync-1.5/users/a%40b.c/login", s.hot.login, "sync-1.5", "a%40b.c"},
		{"POST", "/v1/services/sync-1.5/users/a%40b.c/login?x=1", s.hot.login, "sync-1.5", "a%40b.c"},
		{"POST", "/v1/services/sync-1.5/users/a%40b.c", nil, "", ""},
		{"GET", "/v1/services/sync-1.5/users/a%40b.c/login", nil, "", ""},
		{"POST", "/v1/services/sync-1.5/users/a%40b.c/login/", nil, "", ""},
		{"POST", "/v1/services/sync-1.5/users/a%40b.c/retire", nil, "", ""},
		{"GET", "/v1/services/sync-1.5/users/a%40b.c/", nil, "", ""},
		{"GET", "/v1/services/sync-1.5/users/a%40b.c/records", nil, "", ""},
		{"GET", "/v1/services/sync-1.5/users/", nil, "", ""},
		{"GET", "/v1/services/sync-1.5/users", nil, "", ""},
		{"GET", "/v1/services//users/a", nil, "", ""},
		{"GET", "/v1/services/s/nodes/1", nil, "", ""},
		{"HEAD", "/v1/services/s/users/a", nil, "", ""},
		{"PATCH", "/v1/services/s/users/a", nil, "", ""},
		{"get", "/v1/services/s/users/a", nil, "", ""},
		{"GET", "/v2/services/s/users/a", nil, "", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.target, nil)
		req.Method = c.method
		got, vars := s.hot.match(req)
		if got != c.want {
			t.Errorf("%s %s: matched %v, want %v", c.method, c.target, got != nil, c.want != nil)
			continue
		}
		if got != nil && (vars.service != c.service || vars.email != c.email || !vars.set) {
			t.Errorf("%s %s: vars %+v, want service %q email %q", c.method, c.target, vars, c.service, c.email)
		}
	}
}

// seriesCounts lists a metric's series as "labels count" (a histogram's
// sample count), sorted.
func seriesCounts(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out = append(out, fmt.Sprintf("%s %v", strings.Join(labels, ","), count(m)))
		}
	}
	sort.Strings(out)
	return out
}

func count(m *dto.Metric) float64 {
	if h := m.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

// TestMetaHeadersFollowTheMeta: the reused header values change with the
// index and member they show.
func TestMetaHeadersFollowTheMeta(t *testing.T) {
	e := newEnv(t)
	for _, m := range []struct {
		index  uint64
		member string
		last   int64
	}{{7, "m1", 0}, {7, "m1", 5}, {123456789, "m1", 999}, {123456789, "m2", 1000}, {8, "m2", -1}} {
		e.store.Set(func(s *fake.Store) {
			s.MetaValue.Index, s.MetaValue.MemberID, s.MetaValue.LastContactMs = m.index, m.member, m.last
		})
		r := e.do("GET", "/v1/services?consistency=stale", "")
		want := map[string]string{HeaderIndex: strconv.FormatUint(m.index, 10), HeaderMember: m.member,
			HeaderLastContact: strconv.FormatInt(m.last, 10), HeaderKnownLeader: "true"}
		for h, v := range want {
			if got := r.header.Values(h); len(got) != 1 || got[0] != v {
				t.Errorf("meta %+v: %s = %q, want %q", m, h, got, v)
			}
		}
	}
}

// TestCounterCacheCountsEverySeries: the cached children count in the
// series of their labels, also past the cache's size limit.
func TestCounterCacheCountsEverySeries(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total"}, []string{"service", "outcome"})
	c := newCounterCache(vec)
	n := maxCachedSeries + 50
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			c.with(fmt.Sprint("s", i), "ok").Inc()
		}
		c.with("s0", "retired").Inc()
	}
	for i := 0; i < n; i++ {
		if got := promtest.ToFloat64(vec.WithLabelValues(fmt.Sprint("s", i), "ok")); got != 2 {
			t.Fatalf("series s%d: %v, want 2", i, got)
		}
	}
	if got := promtest.ToFloat64(vec.WithLabelValues("s0", "retired")); got != 2 {
		t.Fatalf("series s0 retired: %v, want 2", got)
	}
	if m := c.m.Load(); m == nil || len(*m) != maxCachedSeries {
		t.Fatalf("cache holds %v series, want %d", m, maxCachedSeries)
	}
}
