package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// httpMetrics are the per-request series of /metrics. Labels use the route
// template, never the raw path: emails in paths would make cardinality
// unbounded (and leak them into monitoring).
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// logins counts every login this member decided, from a read or by
	// proposing it (a follower that relays a login leaves it to the
	// leader): each login is counted once in the cluster, so dashboards
	// sum it over members.
	logins *prometheus.CounterVec
	// loginReads counts the logins this member decided from a linearizable
	// read. Deprecated: wimms_logins_total counts them too; kept for one
	// release.
	loginReads *prometheus.CounterVec
	// webhookEvents counts FxA account events by type and outcome.
	webhookEvents *prometheus.CounterVec
	// loginsBy and loginReadsBy are logins and loginReads by (service,
	// outcome), looked up once per pair.
	loginsBy, loginReadsBy *counterCache
}

// counterCache holds the children of a CounterVec with two labels as they
// are first used: WithLabelValues hashes its labels on every call, and a
// login counted two series per request. The map is replaced as a whole on
// a miss; past maxCachedSeries pairs (a client naming services that do not
// exist) misses are not cached.
type counterCache struct {
	vec *prometheus.CounterVec
	m   atomic.Pointer[map[[2]string]prometheus.Counter]
	mu  sync.Mutex
}

const maxCachedSeries = 256

func newCounterCache(vec *prometheus.CounterVec) *counterCache {
	return &counterCache{vec: vec}
}

func (c *counterCache) with(a, b string) prometheus.Counter {
	key := [2]string{a, b}
	if m := c.m.Load(); m != nil {
		if ctr, ok := (*m)[key]; ok {
			return ctr
		}
	}
	ctr := c.vec.WithLabelValues(a, b)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= maxCachedSeries {
		return ctr
	}
	next := make(map[[2]string]prometheus.Counter, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[key] = ctr
	c.m.Store(&next)
	return ctr
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wimms_http_requests_total",
		Help: "HTTP requests answered, by route template, method and status code.",
	}, []string{"route", "method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wimms_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route template and method.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	loginReads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wimms_login_reads_total",
		Help: "Deprecated (use wimms_logins_total): logins this member decided from a linearizable read, without a Raft write, by service and outcome.",
	}, []string{"service", "outcome"})
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricLogins,
		Help: "Logins this member decided (the login endpoint and the token server), by service and outcome (ok, retired, unavailable, or the error status). Each login is counted by one member: sum over members.",
	}, []string{"service", "outcome"})
	webhookEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wimms_fxa_webhook_events_total",
		Help: "FxA account events received on /1.0/webhooks/fxa/events, by event (delete-user, password-change, other) and outcome (applied, repeated: a redelivery that changed nothing, counted: --fxa-webhook-metrics-only, dropped: not acted on).",
	}, []string{"event", "outcome"})
	var err error
	if logins, err = registerOrReuse(reg, logins); err != nil {
		return nil, err
	}
	if webhookEvents, err = registerOrReuse(reg, webhookEvents); err != nil {
		return nil, err
	}
	if requests, err = registerOrReuse(reg, requests); err != nil {
		return nil, err
	}
	if duration, err = registerOrReuse(reg, duration); err != nil {
		return nil, err
	}
	if loginReads, err = registerOrReuse(reg, loginReads); err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration, logins: logins, loginReads: loginReads, webhookEvents: webhookEvents,
		loginsBy: newCounterCache(logins), loginReadsBy: newCounterCache(loginReads)}, nil
}

// loginRead counts one login decided from a read (the deprecated series;
// loginDecided counts it in wimms_logins_total).
func (m *httpMetrics) loginRead(service string, res fsm.Result) {
	outcome := loginOutcome(res, true)
	m.loginReadsBy.with(serviceLabel(service, outcome), outcome).Inc()
}

// loginDecided counts one login this member decided; answered is false
// when it failed outside the state machine (no leader, a timeout).
func (m *httpMetrics) loginDecided(service string, res fsm.Result, answered bool) {
	outcome := loginOutcome(res, answered)
	m.loginsBy.with(serviceLabel(service, outcome), outcome).Inc()
}

// unknownService labels a login whose service may not exist: the name
// comes from the request, and a label per name a client makes up would
// let any caller grow /metrics without bound.
const unknownService = "(unknown)"

// serviceLabel is service when the login's outcome shows the service
// exists (the state machine decided it), else unknownService.
func serviceLabel(service, outcome string) string {
	if outcome == fsm.StatusNotFound || outcome == OutcomeUnavailable || outcome == fsm.StatusBadRequest {
		return unknownService
	}
	return service
}

// OutcomeUnavailable is a login that got no decision: the cluster could
// not commit or read it (no leader, a timeout, an unknown outcome).
const OutcomeUnavailable = "unavailable"

func loginOutcome(res fsm.Result, answered bool) string {
	switch {
	case res.Err != nil:
		return res.Err.Status
	case !answered:
		return OutcomeUnavailable
	case res.User != nil && res.User.Generation == fsm.MaxGeneration:
		return store.OutcomeRetired
	}
	return store.OutcomeOK
}

// registerOrReuse lets two Servers share one Registry (a test, or a
// restarted listener) instead of panicking on the second registration.
func registerOrReuse[C prometheus.Collector](reg *prometheus.Registry, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register http metrics: %w", err)
	}
	return c, nil
}

// routeLabel names the matched route's template, or "unmatched".
func routeLabel(r *http.Request) string {
	if cur := mux.CurrentRoute(r); cur != nil {
		if tpl, err := cur.GetPathTemplate(); err == nil {
			return tpl
		}
	}
	return "unmatched"
}

// statusRecorder remembers the status code for metrics and whether headers
// went out (after which a panic can no longer become a clean 500).
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code = code
		s.wroteHeader = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.code = http.StatusOK
		s.wroteHeader = true
	}
	return s.ResponseWriter.Write(b)
}

// Flush and Unwrap keep a Router that relays with httputil.ReverseProxy able to
// stream through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// recovered turns the panic v of a handler into a logged 500 (unless
// headers went out already); http.ErrAbortHandler panics on, as net/http
// expects.
func (s *Server) recovered(v any, rec *statusRecorder, r *http.Request, route string) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("handler panicked", "route", route, "method", r.Method, "panic", fmt.Sprint(v))
	if !rec.wroteHeader {
		rq := &request{s: s, w: rec, r: r}
		rq.writeError(http.StatusInternalServerError, StatusInternalError,
			ErrorDetail{Location: LocationBody, Name: "request", Description: "internal error"})
	}
}

// observe wraps every handler: it counts and times the request and turns a
// panic into a logged 500 so one bad request cannot take the member down.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		route := routeLabel(r)
		defer func() {
			if v := recover(); v != nil {
				s.recovered(v, rec, r, route)
			}
			code := rec.code
			if !rec.wroteHeader {
				code = http.StatusOK
			}
			method := methodLabel(r.Method)
			s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
			s.metrics.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}
