package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// Headers of the API, declared in package wire (the router and the clients
// name them too).
const (
	HeaderIndex          = wire.HeaderIndex
	HeaderMember         = wire.HeaderMember
	HeaderKnownLeader    = wire.HeaderKnownLeader
	HeaderLastContact    = wire.HeaderLastContact
	HeaderIdempotencyKey = wire.HeaderIdempotencyKey
	HeaderForwarded      = wire.HeaderForwarded
	HeaderReplayed       = wire.HeaderReplayed
)

// Config configures a Server.
type Config struct {
	Store   Store   // required
	Cluster Cluster // nil: GET /v1/cluster answers from Store.Meta, mutations 503 no-cluster
	Router  Router  // nil: every request is served here (store.ErrNotLeader answers 503 not-leader)
	Logger  hclog.Logger
	// APIToken, when set, is required as "Authorization: Bearer <token>" on
	// every /v1 request.
	APIToken string
	// AdminToken, when set, is required instead on mutating service, node,
	// event and cluster endpoints (and is accepted everywhere APIToken is).
	AdminToken string
	// MetricsToken, when set, is required as a bearer token on GET
	// /metrics (the admin token is accepted too); empty leaves /metrics
	// open, as it always was, for scrapers inside a trusted network.
	MetricsToken string
	Registry     *prometheus.Registry // /metrics; nil → a new one
	Now          func() time.Time     // "now" of reads (old records, count as_of); nil → time.Now
	// ExtraRoutes mounts routes the API does not define (member-to-member
	// internals). They get metrics and panic recovery, not auth.
	ExtraRoutes func(r *mux.Router)
	// Tokens, when set, serves the token server's GET /1.0/{app}/{version}
	// (tokenserver.go); nil answers 404 there.
	Tokens TokenIssuer
	// Version is what /__version__ answers; empty fields get defaults.
	Version VersionInfo
}

// Server translates HTTP requests into state-machine commands and reads.
type Server struct {
	store   Store
	cluster Cluster
	// routing is cfg.Router with the relayed requests counted; nil when
	// every request is served here.
	routing    *countingRouter
	log        hclog.Logger
	apiToken   string
	adminToken string
	// apiSum and adminSum are the tokens' SHA-256 digests, computed once
	// (authorized compares digests).
	apiSum, adminSum [sha256.Size]byte
	// metricsToken guards /metrics when set.
	metricsToken string
	registry     *prometheus.Registry
	now          func() time.Time
	metrics      *httpMetrics
	// metricsHandler serves /metrics from registry.
	metricsHandler http.Handler
	router         *mux.Router
	// hot are the routes served without the router (hotpath.go).
	hot     hotRoutes
	handler http.Handler
	// lastMeta are the header values of the last Meta answered (hotpath.go).
	lastMeta atomic.Pointer[metaHeaderValues]
	tokens   TokenIssuer
	version  VersionInfo
}

// New builds a Server. It panics when cfg.Store is nil or the metrics
// cannot be registered: both are wiring mistakes, not runtime conditions.
func New(cfg Config) *Server {
	if cfg.Store == nil {
		panic("httpapi.New: Config.Store is nil")
	}
	s := &Server{
		store:        cfg.Store,
		cluster:      cfg.Cluster,
		log:          cfg.Logger,
		apiToken:     cfg.APIToken,
		adminToken:   cfg.AdminToken,
		metricsToken: cfg.MetricsToken,
		registry:     cfg.Registry,
		now:          cfg.Now,
		tokens:       cfg.Tokens,
		version:      cfg.Version.withDefaults(),
	}
	if s.log == nil {
		s.log = hclog.Default().Named("httpapi")
	}
	s.apiSum, s.adminSum = sha256.Sum256([]byte(s.apiToken)), sha256.Sum256([]byte(s.adminToken))
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.now == nil {
		s.now = time.Now
	}
	m, err := newHTTPMetrics(s.registry)
	if err != nil {
		panic(fmt.Sprintf("httpapi.New: %v", err))
	}
	s.metrics = m
	if cfg.Router != nil {
		if s.routing, err = newCountingRouter(cfg.Router, s.registry); err != nil {
			panic(fmt.Sprintf("httpapi.New: %v", err))
		}
	}
	s.metricsHandler = promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      promErrorLog{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})

	r := mux.NewRouter()
	// Emails travel path-escaped: match on the escaped path so %2F stays
	// inside one segment, and never "clean" it (an email may be "..").
	r.UseEncodedPath()
	r.SkipClean(true)
	r.Use(s.observe)
	all := s.allRoutes()
	s.mount(r, all)
	s.hot = s.newHotRoutes(all)
	s.mountStatic(r)
	if cfg.ExtraRoutes != nil {
		cfg.ExtraRoutes(r)
	}
	r.NotFoundHandler = s.observe(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rq := &request{s: s, w: w, r: req}
		rq.writeError(http.StatusNotFound, fsm.StatusNotFound,
			ErrorDetail{Location: LocationPath, Name: "path", Description: "no such endpoint"})
	}))
	r.MethodNotAllowedHandler = s.observe(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rq := &request{s: s, w: w, r: req}
		rq.writeError(http.StatusMethodNotAllowed, StatusMethodNotAllowed,
			ErrorDetail{Location: LocationPath, Name: "method", Description: req.Method + " is not allowed on this path"})
	}))
	s.router = r
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// access is who may call a route.
type access int

const (
	accessOpen  access = iota // health and metrics
	accessAPI                 // APIToken (or AdminToken)
	accessAdmin               // AdminToken if set, else APIToken
)

// kind decides which headers an answer carries and how a timeout is reported.
type kind int

const (
	kindUnrouted kind = iota // 404/405/panic answers outside any route
	kindRead                 // reads state: leader headers, ?consistency
	kindWrite                // one fsm command: Idempotency-Key
	kindControl              // cluster membership: not a command
	kindRaw                  // health, metrics: handler does everything
)

type route struct {
	name   string
	method string
	path   string
	access access
	kind   kind
	place  place    // where it runs (routing.go), declared in routes()
	query  []string // accepted query parameters besides the read-level ones
	handle func(*request)
	// subject names the path variable an fsm error without a Field is
	// about (e.g. "email" for a user route).
	subject string
}

// request carries one request through validation to its answer.
type request struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rt   route
	body []byte

	fields *fieldReader
	// fieldsBuf is where fields points: one allocation with the request.
	fieldsBuf fieldReader
	errs      []ErrorDetail // path, query and header problems

	// vars are the escaped path variables when the request was served
	// without the router (hotpath.go); else mux.Vars has them.
	vars pathVars
	// Decoded path variables.
	service, email, member string
	nodeID, uid            int64

	query map[string]string // nil when only the read level was given (parseQuery)
	// consistency and maxStaleness are the read-level parameters, set
	// when given.
	consistency, maxStaleness fsm.OptString
	readOpts                  store.ReadOptions
	levelBad                  bool // ?consistency did not parse: served here, which answers 400
	idemKey                   string

	meta *store.Meta // from Apply/Read; nil → Store.Meta()
	// metaBuf is where meta points after setMeta, and loginCmd/loginRes
	// what loginFromRead's read decides: kept in the request so that
	// they share its one allocation.
	metaBuf  store.Meta
	loginCmd fsm.Command
	loginRes fsm.Result
	// relayed: the answer came from the leader this member relayed the
	// request to, which counted it.
	relayed bool
}

// serve runs the checks every API request goes through, in an order that
// guarantees nothing reaches the store before the whole request is valid.
func (s *Server) serve(rt route) http.Handler {
	f := s.serveFunc(rt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f(w, r, pathVars{}) })
}

// serveFunc is serve with the path variables given (hotpath.go) instead
// of taken from mux.Vars.
func (s *Server) serveFunc(rt route) func(http.ResponseWriter, *http.Request, pathVars) {
	return func(w http.ResponseWriter, r *http.Request, vars pathVars) {
		rq := &request{s: s, w: w, r: r, rt: rt, vars: vars}
		if !s.authorized(r, rt.access) {
			rq.refuseUnauthorized(rt.access)
			return
		}
		if rt.kind == kindRaw {
			rt.handle(rq)
			return
		}
		if !rq.jsonContentType() || !rq.readBody() {
			return
		}
		// Path and query are parsed once, before routing: a read's level
		// decides where it runs. Their problems are answered by the member
		// that serves the request.
		rq.parsePath()
		rq.parseQuery()
		if s.routing != nil && s.routing.route(w, r, rq.body, rq.placement(), rt.path) {
			return
		}
		if rt.kind == kindWrite {
			rq.parseIdempotencyKey()
		}
		obj, bad := parseObject(rq.body)
		if bad != nil {
			rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, append(rq.errs, *bad)...)
			return
		}
		rq.fieldsBuf.init(obj)
		rq.fields = &rq.fieldsBuf
		rt.handle(rq)
	}
}

func (rq *request) readBody() bool {
	if rq.r.Body == http.NoBody {
		// What net/http gives a request without a body (a GET).
		return true
	}
	body, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "body",
				Description: fmt.Sprintf("body exceeds %d bytes", MaxBodyBytes)})
			return false
		}
		if bodyTimedOut(err) {
			rq.w.Header().Set("Connection", "close")
			rq.writeError(http.StatusRequestTimeout, StatusTimeout, ErrorDetail{Location: LocationBody, Name: "body",
				Description: "the body did not arrive in time"})
			return false
		}
		rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, ErrorDetail{Location: LocationBody, Name: "body",
			Description: "could not read body: " + err.Error()})
		return false
	}
	rq.body = body
	return true
}

// pathVarOrder fixes the order variables enter the request hash.
var pathVarOrder = []string{"service", "email", "id", "uid", "member"}

// pathVar is the escaped path variable name, as the router matched it.
func (rq *request) pathVar(name string) (string, bool) {
	if rq.vars.set {
		return rq.vars.get(name)
	}
	v, ok := mux.Vars(rq.r)[name]
	return v, ok
}

func (rq *request) parsePath() {
	for _, name := range pathVarOrder {
		escaped, ok := rq.pathVar(name)
		if !ok {
			continue
		}
		v, err := url.PathUnescape(escaped)
		if err != nil {
			rq.pathError(name, "invalid percent-encoding")
			continue
		}
		switch name {
		case "service":
			if desc := checkServiceName(v); desc != "" {
				rq.pathError(name, desc)
			}
			rq.service = v
		case "email":
			if desc := checkEmail(v); desc != "" {
				rq.pathError(name, desc)
			}
			rq.email = v
		case "id":
			id, desc := parseDecimalID(v)
			if desc != "" {
				rq.pathError(name, desc)
			}
			rq.nodeID = id
		case "uid":
			uid, desc := parseDecimalID(v)
			if desc != "" {
				rq.pathError(name, desc)
			}
			rq.uid = uid
		case "member":
			if desc := checkMemberID(v); desc != "" {
				rq.pathError("id", desc)
			}
			rq.member = v
		}
	}
}

// inPath reports whether name is one of this route's path variables (as the
// API names them: the member variable is "id").
func (rq *request) inPath(name string) bool {
	if name == "id" {
		_, member := rq.pathVar("member")
		_, node := rq.pathVar("id")
		return member || node
	}
	_, ok := rq.pathVar(name)
	return ok
}

func (rq *request) pathError(name, desc string) {
	rq.errs = append(rq.errs, ErrorDetail{Location: LocationPath, Name: name, Description: desc})
}

func (rq *request) queryError(name, desc string) {
	rq.errs = append(rq.errs, ErrorDetail{Location: LocationQuerystring, Name: name, Description: desc})
}

func (rq *request) parseQuery() {
	if !rq.parseLevelQuery() {
		rq.parseAnyQuery()
	}
	if rq.rt.kind == kindRead {
		rq.parseReadLevel()
	}
}

// parseLevelQuery reads a query of a read that gives only its level
// (consistency, max_staleness, each once) and nothing that needs
// unescaping, without building maps: the query of nearly every read. It
// returns false, having set nothing, for any other query, which
// parseAnyQuery then reads and reports on.
func (rq *request) parseLevelQuery() bool {
	raw := rq.r.URL.RawQuery
	if len(rq.rt.query) != 0 || (raw != "" && rq.rt.kind != kindRead) || strings.ContainsAny(raw, "%+;") {
		return false
	}
	var consistency, maxStaleness fsm.OptString
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		var dst *fsm.OptString
		switch k {
		case "consistency":
			dst = &consistency
		case "max_staleness":
			dst = &maxStaleness
		default:
			return false
		}
		if dst.Set {
			return false
		}
		*dst = fsm.SomeString(v)
	}
	rq.consistency, rq.maxStaleness = consistency, maxStaleness
	return true
}

// parseAnyQuery reads any query into rq.query, reporting unknown and
// repeated parameters in key order.
func (rq *request) parseAnyQuery() {
	rq.query = map[string]string{}
	values, err := url.ParseQuery(rq.r.URL.RawQuery)
	if err != nil {
		rq.queryError("query", "invalid query string: "+err.Error())
		rq.levelBad = true
		return
	}
	allowed := map[string]bool{}
	for _, q := range rq.rt.query {
		allowed[q] = true
	}
	if rq.rt.kind == kindRead {
		allowed["consistency"], allowed["max_staleness"] = true, true
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !allowed[k]:
			rq.queryError(k, "unknown query parameter")
		case len(values[k]) > 1:
			rq.queryError(k, "given more than once")
			rq.levelBad = rq.levelBad || k == "consistency"
		default:
			rq.query[k] = values[k][0]
		}
	}
	if v, ok := rq.query["consistency"]; ok {
		rq.consistency = fsm.SomeString(v)
	}
	if v, ok := rq.query["max_staleness"]; ok {
		rq.maxStaleness = fsm.SomeString(v)
	}
}

// parseReadLevel turns a read's consistency and max_staleness into its
// ReadOptions.
func (rq *request) parseReadLevel() {
	level, err := store.ParseReadLevel(rq.consistency.V)
	if err != nil {
		rq.queryError("consistency", err.Error())
		rq.levelBad = true
	}
	rq.readOpts.Level = level
	if rq.maxStaleness.Set {
		raw := rq.maxStaleness.V
		d, err := time.ParseDuration(raw)
		switch {
		case err != nil:
			rq.queryError("max_staleness", "must be a duration such as 2s or 500ms")
		case d < 0:
			rq.queryError("max_staleness", "must not be negative")
		case level != store.ReadStale:
			rq.queryError("max_staleness", "applies only to consistency=stale")
		default:
			rq.readOpts.MaxStaleness = d
		}
	}
}

// queryInt64 parses an integer query parameter within [min, max], or def
// when absent.
func (rq *request) queryInt64(name string, def, min, max int64) int64 {
	raw, ok := rq.query[name]
	if !ok {
		return def
	}
	v, desc := parseInt64Literal(raw)
	if desc != "" {
		rq.queryError(name, desc)
		return def
	}
	if v < min || v > max {
		rq.queryError(name, fmt.Sprintf("must be from %d to %d", min, max))
		return def
	}
	return v
}

func (rq *request) parseIdempotencyKey() {
	vals, ok := rq.r.Header[HeaderIdempotencyKey]
	if !ok {
		return
	}
	if len(vals) != 1 {
		rq.errs = append(rq.errs, ErrorDetail{Location: LocationHeader, Name: HeaderIdempotencyKey, Description: "given more than once"})
		return
	}
	if desc := checkIdempotencyKey(vals[0]); desc != "" {
		rq.errs = append(rq.errs, ErrorDetail{Location: LocationHeader, Name: HeaderIdempotencyKey, Description: desc})
		return
	}
	rq.idemKey = vals[0]
}

// invalid answers 400 with every problem found so far and reports whether
// it did. Handlers call it after reading their fields and before touching
// the store.
func (rq *request) invalid() bool {
	errs := append([]ErrorDetail{}, rq.errs...)
	errs = append(errs, rq.fields.unknown()...)
	errs = append(errs, rq.fields.errs...)
	if len(errs) == 0 {
		return false
	}
	rq.writeError(http.StatusBadRequest, fsm.StatusBadRequest, errs...)
	return true
}

// requestHash binds an Idempotency-Key to what was asked: a repeat with the
// same key but another route, path or body is a conflict, not a replay.
func (rq *request) requestHash() uint64 {
	h := fnv.New64a()
	write := func(s string) {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	write(rq.r.Method)
	write(rq.rt.path)
	// "name=value" of each decoded path variable, in pathVarOrder. Only
	// a valid request is hashed, so every variable decodes.
	for _, name := range pathVarOrder {
		if escaped, ok := rq.pathVar(name); ok {
			v, _ := url.PathUnescape(escaped)
			write(name + "=" + v)
		}
	}
	_, _ = h.Write(rq.fields.obj.canonical(rq.fields.canon))
	return h.Sum64()
}

// apply proposes cmd. On failure it has answered already and returns false.
func (rq *request) apply(cmd fsm.Command) (fsm.Result, bool) {
	if rq.idemKey != "" {
		cmd.IdempotencyKey = rq.idemKey
		cmd.RequestHash = rq.requestHash()
	}
	res, meta, err := rq.s.store.Apply(rq.r.Context(), cmd)
	if err != nil {
		if meta.MemberID != "" {
			rq.setMeta(meta)
		}
		rq.storeError(err)
		return res, false
	}
	rq.setMeta(meta)
	if res.Repeated {
		rq.w.Header().Set(HeaderReplayed, "true")
	}
	if res.Err != nil {
		rq.fsmError(res.Err)
		return res, false
	}
	return res, true
}

func (rq *request) setMeta(m store.Meta) {
	rq.metaBuf = m
	rq.meta = &rq.metaBuf
}

// read runs fn at the requested level. On failure it has answered already.
func (rq *request) read(fn func(fsm.Reader) error) bool {
	meta, err := rq.s.store.Read(rq.r.Context(), rq.readOpts, fn)
	if meta.MemberID != "" {
		rq.setMeta(meta)
	}
	if err != nil {
		var fe *fsm.Error
		if errors.As(err, &fe) {
			rq.fsmError(fe)
			return false
		}
		rq.storeError(err)
		return false
	}
	return true
}

// storeError answers a store or cluster error. A not-leader error is
// answered, not forwarded: the Router already sent the request where it
// had to run, so leadership moved since, and the client retries (503 with
// Retry-After; nothing was proposed).
func (rq *request) storeError(err error) {
	if rq.rt.name == routeToken {
		rq.tsStoreError(err)
		return
	}
	f := classifyStoreError(err, rq.rt.kind != kindRead)
	if f.internal {
		rq.s.log.Error("request failed", "route", rq.rt.name, "method", rq.r.Method, "error", err)
	}
	rq.writeError(f.code, f.status, f.detail)
}

func (rq *request) fsmError(e *fsm.Error) {
	if rq.rt.name == routeToken {
		rq.tsFSMError(e)
		return
	}
	code, known := httpStatusForFSM(e.Status, rq.rt.name)
	if !known {
		rq.s.log.Error("state machine returned an unknown status", "route", rq.rt.name, "status", e.Status, "error", e)
	}
	name := e.Field
	if name == "" {
		name = rq.rt.subject
	}
	if name == "node" && rq.rt.subject == subjectNode {
		// On node routes the state machine's "node" is the node the path
		// names by {id}, not a body field.
		name = "id"
	}
	location := LocationBody
	if rq.inPath(name) {
		location = LocationPath
	}
	desc := e.Msg
	if e.Status == fsm.StatusInvalidClientState && e.Reason != "" {
		desc = "Unacceptable client-state value " + e.Reason
	}
	if desc == "" {
		desc = e.Status
	}
	rq.writeError(code, e.Status, ErrorDetail{Location: location, Name: name, Description: desc})
}

// internalError answers 500 for a broken promise between layers (e.g. a
// successful command without the object it must return).
func (rq *request) internalError(what string) {
	rq.s.log.Error("internal error", "route", rq.rt.name, "method", rq.r.Method, "problem", what)
	if rq.rt.name == routeToken {
		rq.tsError(http.StatusInternalServerError, StatusInternalError, tsLocationInternal, "", tsDescServerError)
		return
	}
	rq.writeError(http.StatusInternalServerError, StatusInternalError,
		ErrorDetail{Location: LocationBody, Name: "request", Description: "internal error"})
}

func (rq *request) setMetaHeaders() {
	m := rq.s.store.Meta()
	if rq.meta != nil {
		m = *rq.meta
	}
	h := rq.w.Header()
	mh := rq.s.metaHeaders(m)
	h[HeaderIndex] = mh.index
	h[HeaderMember] = mh.member
	if rq.rt.kind == kindRead {
		h[HeaderKnownLeader] = headerFalse
		if m.KnownLeader {
			h[HeaderKnownLeader] = headerTrue
		}
		h[HeaderLastContact] = lastContactHeader(m.LastContactMs)
	}
}

func (rq *request) writeJSON(code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rq.s.log.Error("encode answer", "route", rq.rt.name, "error", err)
		code = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Status: StatusInternalError,
			Errors: []ErrorDetail{{Location: LocationBody, Name: "response", Description: "internal error"}}})
	}
	rq.writeRendered(code, b)
}

// writeRendered answers code with the JSON value b, which it may extend
// (by the newline the answers end with).
func (rq *request) writeRendered(code int, b []byte) {
	rq.setMetaHeaders()
	h := rq.w.Header()
	h["Content-Type"] = headerJSON
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	rq.w.WriteHeader(code)
	_, _ = rq.w.Write(append(b, '\n'))
}

func (rq *request) writeNoContent() {
	rq.setMetaHeaders()
	rq.w.WriteHeader(http.StatusNoContent)
}

func (rq *request) writeError(code int, status string, details ...ErrorDetail) {
	if details == nil {
		details = []ErrorDetail{}
	}
	rq.writeJSON(code, ErrorBody{Status: status, Errors: details})
}

// authorized checks the bearer token a route needs. Tokens are compared as
// digests in constant time so neither content nor length leaks via timing.
// The configured tokens' digests are computed once, in New; the rule is
// wire.HasBearerToken's.
func (s *Server) authorized(r *http.Request, a access) bool {
	var api, admin bool // which tokens are accepted
	switch a {
	case accessOpen:
		return true
	case accessAPI:
		if s.apiToken == "" {
			return true
		}
		api, admin = true, s.adminToken != ""
	case accessAdmin:
		switch {
		case s.adminToken != "":
			admin = true
		case s.apiToken != "":
			api = true
		default:
			return true
		}
	}
	got, ok := wire.BearerToken(r)
	if !ok {
		return false
	}
	gotSum := sha256.Sum256([]byte(got))
	match := 0
	if api {
		match |= subtle.ConstantTimeCompare(gotSum[:], s.apiSum[:])
	}
	if admin {
		match |= subtle.ConstantTimeCompare(gotSum[:], s.adminSum[:])
	}
	return match == 1
}

// refuseUnauthorized answers 401 naming the token the call needs, so a
// caller learns which secret to give instead of guessing between two.
func (rq *request) refuseUnauthorized(a access) {
	need := "the API token (or the admin token): the CLI's --api-token-file FILE or WIMMS_API_TOKEN"
	if a == accessAdmin && rq.s.adminToken != "" {
		need = "the admin token: the CLI's --admin-token-file FILE or WIMMS_ADMIN_TOKEN"
	}
	rq.w.Header().Set("WWW-Authenticate", `Bearer realm="wimms"`)
	rq.writeError(http.StatusUnauthorized, StatusUnauthorized,
		ErrorDetail{Location: LocationHeader, Name: "Authorization", Description: "missing or invalid bearer token; this call needs " + need})
}
