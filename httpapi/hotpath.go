package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/store"
)

// The two requests a token server sends most, a user lookup and a login,
// are served without gorilla/mux: matching them by regular expression,
// copying the request twice to attach the route and its variables, and
// building the middleware per request cost more than the rest of a stale
// lookup (docs/benchmarks.md, "HTTP hot paths"). serveHTTP recognises them
// by plain string comparisons and serves them through the same serve
// function, with the same metrics series; anything else, including every
// request whose path or method is even slightly different, goes to the
// router, which answers it as it always did.

// hotRoute is a route served without the router.
type hotRoute struct {
	serve  func(w http.ResponseWriter, r *http.Request, vars pathVars)
	series *routeSeries
}

// pathVars are the escaped path variables of a request served without the
// router (the router's requests keep theirs in mux.Vars).
type pathVars struct {
	service, email string
	set            bool
}

func (v pathVars) get(name string) (string, bool) {
	switch name {
	case "service":
		return v.service, true
	case "email":
		return v.email, true
	}
	return "", false
}

// hotRoutes are the routes serveHTTP takes: GET pathUser, POST pathUser/login.
type hotRoutes struct {
	getUser, login *hotRoute
}

func (s *Server) newHotRoutes(all []route) hotRoutes {
	var h hotRoutes
	for _, rt := range all {
		switch rt.name {
		case routeGetUser:
			h.getUser = s.newHotRoute(rt)
		case routeLogin:
			h.login = s.newHotRoute(rt)
		}
	}
	return h
}

func (s *Server) newHotRoute(rt route) *hotRoute {
	return &hotRoute{serve: s.serveFunc(rt), series: s.metrics.series(rt.path, methodLabel(rt.method))}
}

// matchHot returns the hot route of r and its variables, or nil. It
// matches what the router would: the escaped path (UseEncodedPath) against
// the template, each variable one or more bytes without '/', and the
// route's method exactly; the path group (routing.go) must agree too.
func (h hotRoutes) match(r *http.Request) (*hotRoute, pathVars) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, pathVars{}
	}
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/v1/services/")
	if !ok {
		return nil, pathVars{}
	}
	service, rest, ok := strings.Cut(rest, "/")
	if !ok || service == "" {
		return nil, pathVars{}
	}
	email, ok := strings.CutPrefix(rest, "users/")
	if !ok {
		return nil, pathVars{}
	}
	var hr *hotRoute
	if i := strings.IndexByte(email, '/'); i < 0 {
		if r.Method != http.MethodGet {
			return nil, pathVars{}
		}
		hr = h.getUser
	} else {
		if email[i:] != "/login" || r.Method != http.MethodPost {
			return nil, pathVars{}
		}
		email, hr = email[:i], h.login
	}
	if email == "" || hr == nil {
		return nil, pathVars{}
	}
	if g, sub := pathGroup(requestPath(r)); g != "services" || sub != "users" {
		return nil, pathVars{}
	}
	return hr, pathVars{service: service, email: email, set: true}
}

// serveHTTP is the Server's handler: the hot routes directly, the rest
// through the router.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	hr, vars := s.hot.match(r)
	if hr == nil {
		s.router.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := recorderPool.Get().(*statusRecorder)
	*rec = statusRecorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v, rec, r, hr.series.route)
		}
		code := rec.code
		if !rec.wroteHeader {
			code = http.StatusOK
		}
		hr.series.counter(code).Inc()
		hr.series.duration.Observe(time.Since(start).Seconds())
		*rec = statusRecorder{}
		recorderPool.Put(rec)
	}()
	hr.serve(rec, r, vars)
}

// recorderPool holds the status recorders of the hot routes: the recorder
// is dropped when the handler returns (the Router and the handlers keep no
// writer past their call).
var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// routeSeries are the metric series of one route template and method,
// looked up once: WithLabelValues hashes its labels on every call.
type routeSeries struct {
	route, method string
	requests      *prometheus.CounterVec
	duration      prometheus.Observer
	// codes are the request counters by status code seen so far, replaced
	// as a whole when a code is first seen (a handful per route).
	codes atomic.Pointer[[]codeCounter]
	mu    sync.Mutex
}

type codeCounter struct {
	code int
	c    prometheus.Counter
}

func (m *httpMetrics) series(route, method string) *routeSeries {
	return &routeSeries{route: route, method: method, requests: m.requests,
		duration: m.duration.WithLabelValues(route, method)}
}

// counter is the requests counter of code.
func (rs *routeSeries) counter(code int) prometheus.Counter {
	if cs := rs.codes.Load(); cs != nil {
		for _, c := range *cs {
			if c.code == code {
				return c.c
			}
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var old []codeCounter
	if cs := rs.codes.Load(); cs != nil {
		old = *cs
		for _, c := range old {
			if c.code == code {
				return c.c
			}
		}
	}
	c := rs.requests.WithLabelValues(rs.route, rs.method, strconv.Itoa(code))
	next := append(append(make([]codeCounter, 0, len(old)+1), old...), codeCounter{code, c})
	rs.codes.Store(&next)
	return c
}

// Header values are shared between answers where they repeat (net/http
// and the handlers only replace a header's values, never write into
// them): building a []string per header per answer was a good part of a
// lookup's allocations.
var (
	headerJSON  = []string{"application/json"}
	headerTrue  = []string{"true"}
	headerFalse = []string{"false"}
	// lastContactHeaders are the values of X-Wimms-Last-Contact below 1 s,
	// what a follower in touch with its leader reports.
	lastContactHeaders = func() [][]string {
		out := make([][]string, 1000)
		for i := range out {
			out[i] = []string{strconv.Itoa(i)}
		}
		return out
	}()
)

func lastContactHeader(ms int64) []string {
	if ms >= 0 && ms < int64(len(lastContactHeaders)) {
		return lastContactHeaders[ms]
	}
	return []string{strconv.FormatInt(ms, 10)}
}

// metaHeaderValues are the X-Wimms-Index and X-Wimms-Member values of one
// Meta; the last ones built are reused while the index stays (reads
// between writes).
type metaHeaderValues struct {
	indexN        uint64
	memberID      string
	index, member []string
}

func (s *Server) metaHeaders(m store.Meta) *metaHeaderValues {
	if mh := s.lastMeta.Load(); mh != nil && mh.indexN == m.Index && mh.memberID == m.MemberID {
		return mh
	}
	mh := &metaHeaderValues{indexN: m.Index, memberID: m.MemberID,
		index: []string{strconv.FormatUint(m.Index, 10)}, member: []string{m.MemberID}}
	s.lastMeta.Store(mh)
	return mh
}
