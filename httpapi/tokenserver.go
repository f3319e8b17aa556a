package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// The token server's endpoint (GET /1.0/{app}/{version}): Firefox's sign-in
// to Sync, answered like the Python and Rust token servers answer it.
const (
	routeToken = "token"
	pathToken  = "/1.0/{app}/{version}"

	// StatusInvalidCredentials: the FxA token or X-KeyID was refused.
	StatusInvalidCredentials = "invalid-credentials"
	// StatusFxAUnavailable: FxA's verify endpoint could not be asked.
	StatusFxAUnavailable = "fxa-unavailable"

	HeaderKeyID       = "X-KeyID"
	HeaderClientState = "X-Client-State"
)

// TokenIssuer verifies FxA credentials and mints storage-node tokens
// (tokenserver.Issuer implements it; tests use a fake).
type TokenIssuer interface {
	// Authenticate verifies an FxA OAuth access token. Refusals wrap
	// fxa.ErrInvalidCredentials; other errors mean FxA could not be asked.
	Authenticate(ctx context.Context, accessToken string) (fxa.Identity, error)
	EmailDomain() string
	MaxDuration() time.Duration
	Issue(tokenserver.Grant) (tokenserver.Token, error)
}

// TokenJSON is the token server's 200 answer.
type TokenJSON struct {
	ID           string `json:"id"`
	Key          string `json:"key"`
	UID          int64  `json:"uid"`
	APIEndpoint  string `json:"api_endpoint"`
	Duration     int64  `json:"duration"`
	HashAlg      string `json:"hashalg"`
	HashedFxaUID string `json:"hashed_fxa_uid"`
	NodeType     string `json:"node_type"`
}

// The error entries of Mozilla's token server: its locations include
// "url" and "internal", and most entries have an empty name.
const (
	tsLocationURL      = "url"
	tsLocationInternal = "internal"
	// tsStatusError is the status of answers Mozilla gives no specific one.
	tsStatusError          = "error"
	tsStatusInvalidKeyID   = "invalid-key-id"
	tsDescUnauthorized     = "Unauthorized"
	tsDescServerError      = "Server error"
	tsDescUnavailable      = "Resource is not available"
	tsDescInvalidQuery     = "invalid query params"
	tsDescBadClientState   = "Invalid client state value"
	tsDescUnsupportedApp   = "Unsupported application"
	tsDescUnsupportedVer   = "Unsupported application version"
	tsDescNewUsersDisabled = "New users are not allowed"
)

// clientStateHeader is what Mozilla's server accepts in X-Client-State.
var clientStateHeader = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,32}$`)

// tokenRoutes is empty (so the path answers 404) unless the member was
// given a token-server configuration. The route is open: its
// Authorization header carries the user's FxA token, not the API token.
// It is kindControl, not kindWrite: an Idempotency-Key must never let one
// user replay another user's sign-in answer.
func (s *Server) tokenRoutes() []route {
	if s.tokens == nil {
		return nil
	}
	return []route{{name: routeToken, method: http.MethodGet, path: pathToken, access: accessOpen,
		kind: kindControl, place: placeLeaderAlone, handle: s.token, subject: subjectUser, query: []string{"duration"}}}
}

// tsError answers with one error entry in Mozilla's shape.
func (rq *request) tsError(code int, status, location, name, desc string) {
	if tw, ok := rq.w.(*tokenWriter); ok {
		tw.status = status
	}
	rq.writeError(code, status, ErrorDetail{Location: location, Name: name, Description: desc})
}

func (rq *request) tsUnauthorized(status, desc string) {
	rq.tsError(http.StatusUnauthorized, status, LocationBody, "", desc)
}

// tsServerError is Mozilla's answer to every failure of its database: the
// detail goes to the log, never to the client.
func (rq *request) tsServerError(code int, what string) {
	rq.s.log.Warn("token request failed", "problem", what, "status", code)
	rq.tsError(code, StatusInternalError, tsLocationInternal, "", tsDescServerError)
}

// The checks run in the order of Mozilla's token server, so a request
// with several problems gets the same answer: Authorization, the FxA
// token, X-KeyID (with X-Client-State), the application and version, the
// query, then the sign-in rules.
func (s *Server) token(rq *request) {
	accessToken, desc := bearerTokenOf(rq.r.Header.Values("Authorization"))
	if desc != "" {
		rq.tsUnauthorized(tsStatusError, desc)
		return
	}
	id, err := s.tokens.Authenticate(rq.r.Context(), accessToken)
	if err != nil {
		switch {
		case errors.Is(err, fxa.ErrInvalidCredentials):
			// The reason names the failed check, never the token.
			s.log.Debug("token request refused", "reason", err)
			rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
		case errors.Is(err, fxa.ErrBusy):
			s.log.Warn("FxA verify calls at their limit; answering 503", "error", err)
			rq.tsError(http.StatusServiceUnavailable, tsStatusError, LocationBody, "", tsDescUnavailable)
		default:
			s.log.Warn("verifying an FxA token failed", "error", err)
			rq.tsError(http.StatusServiceUnavailable, StatusFxAUnavailable, LocationBody, "", tsDescUnavailable)
		}
		return
	}
	kid, ok := rq.tsKeyID()
	if !ok {
		return
	}
	service, ok := tokenService(rq.r)
	if !ok {
		rq.tsUnsupported()
		return
	}
	values, err := url.ParseQuery(rq.r.URL.RawQuery)
	if err != nil || len(values["duration"]) > 1 {
		rq.tsError(http.StatusBadRequest, tsStatusError, tsLocationURL, "", tsDescInvalidQuery)
		return
	}
	email := id.FxaUID + "@" + s.tokens.EmailDomain()
	if checkEmail(email) != "" {
		s.log.Debug("token request refused", "reason", "the FxA uid cannot form an email")
		rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
		return
	}
	cmd := fsm.Command{Op: fsm.OpLogin, Service: service, Email: email, ClientState: fsm.SomeString(kid.clientState)}
	if id.Generation > 0 {
		cmd.Generation = fsm.SomeInt64(id.Generation)
	}
	if kid.keysChangedAt > 0 {
		cmd.KeysChangedAt = fsm.SomeInt64(kid.keysChangedAt)
	}
	// A returning user with unchanged keys changes nothing: answered from a
	// linearizable read like the login endpoint (login_read.go). Any other
	// login is proposed here: the Router placed this route on the leader.
	res, ok := rq.serveLogin(cmd, rq.apply)
	if !ok {
		return
	}
	if res.User == nil || res.User.NodeURL == "" {
		rq.internalError("login succeeded without a user on a node")
		return
	}
	u := res.User
	tok, err := s.tokens.Issue(tokenserver.Grant{Node: u.NodeURL, UID: u.UID, FxaUID: id.FxaUID, FxaKid: res.FxaKid,
		Duration: requestedDuration(values.Get("duration"), s.tokens.MaxDuration())})
	if err != nil {
		rq.internalError("minting the token: " + err.Error())
		return
	}
	endpoint := u.APIEndpoint
	if endpoint == "" {
		endpoint = fmt.Sprintf("%s/1.5/%d", u.NodeURL, u.UID)
	}
	rq.noteSignIn("uid", tok.LogUID, "metrics_uid", tok.HashedFxaUID, "first_seen_at", u.FirstSeenAt, "node_type", tok.NodeType)
	rq.w.Header().Set("X-Content-Type-Options", "nosniff")
	rq.writeJSON(http.StatusOK, TokenJSON{ID: tok.ID, Key: tok.Key, UID: u.UID, APIEndpoint: endpoint,
		Duration: int64(tok.Duration / time.Second), HashAlg: "sha256", HashedFxaUID: tok.HashedFxaUID, NodeType: tok.NodeType})
}

// bearerTokenOf reads "Authorization: Bearer <token>" as Mozilla's server
// does (the scheme in any case, split at the first space) and returns the
// error description otherwise.
func bearerTokenOf(values []string) (string, string) {
	if len(values) == 0 || !visibleASCII(values[0]) {
		return "", tsDescUnauthorized
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok {
		return "", tsDescUnauthorized
	}
	if !strings.EqualFold(scheme, "bearer") {
		return "", "Unsupported"
	}
	return token, ""
}

// visibleASCII: what a header value must be for Mozilla's server to read
// it as text (tab, space and printable ASCII).
func visibleASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}

// tsUnsupported answers 404 for an application or version this member
// does not serve: "application" when no service {app}-* exists, else the
// version, as Mozilla's server names them.
func (rq *request) tsUnsupported() {
	app, _ := url.PathUnescape(mux.Vars(rq.r)["app"])
	version, _ := url.PathUnescape(mux.Vars(rq.r)["version"])
	appKnown := false
	if app != "" && !strings.Contains(app, "-") {
		// A stale read is enough to choose between two 404 answers.
		_, _ = rq.s.store.Read(rq.r.Context(), store.ReadOptions{Level: store.ReadStale}, func(rd fsm.Reader) error {
			for _, svc := range rd.ListServices() {
				if strings.HasPrefix(svc.Name, app+"-") {
					appKnown = true
				}
			}
			return nil
		})
	}
	if !appKnown {
		rq.tsError(http.StatusNotFound, tsStatusError, tsLocationURL, "application", tsDescUnsupportedApp)
		return
	}
	rq.tsError(http.StatusNotFound, tsStatusError, tsLocationURL, version, tsDescUnsupportedVer)
}

// tsFSMError answers a refused sign-in as Mozilla's server does.
func (rq *request) tsFSMError(e *fsm.Error) {
	switch e.Status {
	case fsm.StatusInvalidGeneration, fsm.StatusInvalidKeysChangedAt:
		rq.tsUnauthorized(e.Status, tsDescUnauthorized)
	case fsm.StatusInvalidClientState:
		desc := "Unacceptable client-state value"
		if e.Reason != "" {
			desc += " " + e.Reason
		}
		rq.tsError(http.StatusUnauthorized, e.Status, LocationHeader, HeaderClientState, desc)
	case fsm.StatusNewUsersDisabled:
		rq.tsError(http.StatusForbidden, e.Status, LocationBody, "", tsDescNewUsersDisabled)
	case fsm.StatusNotFound:
		rq.tsUnsupported()
	case fsm.StatusNoNodeAvailable:
		rq.tsServerError(http.StatusServiceUnavailable, "no node can take the user: "+e.Error())
	default:
		rq.tsServerError(http.StatusInternalServerError, "the sign-in was refused: "+e.Error())
	}
}

// tsStoreError: the cluster could not decide (no leader, shutting down,
// timed out). Mozilla's server answers a database failure 503
// internal-error; retrying a sign-in is always safe.
func (rq *request) tsStoreError(err error) {
	rq.tsServerError(http.StatusServiceUnavailable, err.Error())
}

// requestedDuration honours ?duration= only when it is a whole number of
// seconds not above the configured lifetime; anything else gets the
// default, never an error (as the token servers do).
func requestedDuration(raw string, max time.Duration) time.Duration {
	if raw == "" {
		return max
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n <= 0 || time.Duration(n) > max/time.Second {
		return max
	}
	return time.Duration(n) * time.Second
}

type keyID struct {
	keysChangedAt int64
	clientState   string // hex
}

// tsKeyID reads X-KeyID: "<keys_changed_at>-<base64url, no padding, of
// the client state bytes>" (e.g. "1234-qqo") and checks X-Client-State
// against it, answering as Mozilla's server does when something is wrong.
func (rq *request) tsKeyID() (keyID, bool) {
	values := rq.r.Header.Values(HeaderKeyID)
	if len(values) == 0 {
		rq.tsError(http.StatusUnauthorized, tsStatusInvalidKeyID, LocationHeader, "", "Missing X-KeyID header")
		return keyID{}, false
	}
	if !visibleASCII(values[0]) {
		rq.tsError(http.StatusUnauthorized, tsStatusInvalidKeyID, LocationHeader, "", "Invalid X-KeyID header")
		return keyID{}, false
	}
	ts, b64, ok := strings.Cut(values[0], "-")
	if !ok {
		rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
		return keyID{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil {
		rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
		return keyID{}, false
	}
	cs := hex.EncodeToString(raw)
	if xcs := rq.r.Header.Values(HeaderClientState); len(xcs) > 0 {
		if !clientStateHeader.MatchString(xcs[0]) {
			rq.tsError(http.StatusBadRequest, tsStatusError, LocationHeader, HeaderClientState, tsDescBadClientState)
			return keyID{}, false
		}
		if xcs[0] != cs {
			rq.tsUnauthorized(fsm.StatusInvalidClientState, tsDescUnauthorized)
			return keyID{}, false
		}
	}
	kca, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || kca < 0 || checkClientState(cs) != "" {
		// wimms also refuses a client state over 16 bytes (the longest
		// the state machine stores).
		rq.tsUnauthorized(StatusInvalidCredentials, tsDescUnauthorized)
		return keyID{}, false
	}
	return keyID{keysChangedAt: kca, clientState: cs}, true
}

// tokenService is the service a token request names: {app}-{version}.
func tokenService(r *http.Request) (string, bool) {
	vars := mux.Vars(r)
	app, err1 := url.PathUnescape(vars["app"])
	version, err2 := url.PathUnescape(vars["version"])
	if err1 != nil || err2 != nil || strings.Contains(app, "-") {
		return "", false
	}
	service := app + "-" + version
	return service, checkServiceName(service) == ""
}

// tokenAnswers wraps the token route: every answer carries X-Timestamp
// (Mozilla's clients read the server's clock from it, on errors too), and
// an error the cluster layer wrote before the handler ran (no leader,
// shutting down, a relay that failed) is answered in Mozilla's shape.
func (s *Server) tokenAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Timestamp", strconv.FormatInt(s.now().Unix(), 10))
		tw := &tokenWriter{ResponseWriter: w}
		next.ServeHTTP(tw, r)
		tw.finish()
		s.logSignIn(r, tw, time.Since(start))
	})
}

// clusterStatuses are the statuses of wimms' own cluster-level failures.
var clusterStatuses = map[string]bool{
	StatusNotLeader: true, StatusNoLeader: true, StatusShuttingDown: true, StatusUnknownOutcome: true,
	StatusTimeout: true, StatusNotReady: true, StatusStaleRead: true, StatusNoCluster: true,
}

// tokenWriter holds back error answers (status >= 500) so a cluster-level
// one can be rewritten; everything else passes straight through.
type tokenWriter struct {
	http.ResponseWriter
	code    int
	held    []byte
	holding bool
	status  string // of an error answer, for the request log
	// summary holds what the handler learned for the request log (the
	// hashed uid, first_seen_at, node type), as hclog key/value pairs.
	summary []any
}

// logSignIn writes the one request-log line of a sign-in, in the fields of
// Mozilla's token servers ("request.summary"; --log-format mozlog gives it
// their shape). The FxA uid appears only hashed.
func (s *Server) logSignIn(r *http.Request, tw *tokenWriter, took time.Duration) {
	if by := tw.Header().Get(HeaderMember); by != "" && by != s.store.Meta().MemberID {
		return // relayed: the member that answered wrote the line
	}
	code := tw.code
	if code == 0 {
		code = http.StatusOK
	}
	kv := []any{"uri.method", r.Method, "uri.path", r.URL.Path, "code", code, "user_agent", r.UserAgent(),
		"t", took.Milliseconds()}
	if tw.status != "" {
		kv = append(kv, "status", tw.status)
	}
	kv = append(kv, tw.summary...)
	s.log.Info("request.summary", kv...)
}

// noteSignIn adds fields to the request-log line of this sign-in.
func (rq *request) noteSignIn(kv ...any) {
	if tw, ok := rq.w.(*tokenWriter); ok {
		tw.summary = append(tw.summary, kv...)
	}
}

func (tw *tokenWriter) WriteHeader(code int) {
	if tw.code != 0 {
		return
	}
	tw.code = code
	if code >= 500 {
		tw.holding = true
		return
	}
	tw.ResponseWriter.WriteHeader(code)
}

func (tw *tokenWriter) Write(b []byte) (int, error) {
	if tw.code == 0 {
		tw.WriteHeader(http.StatusOK)
	}
	if tw.holding {
		tw.held = append(tw.held, b...)
		return len(b), nil
	}
	return tw.ResponseWriter.Write(b)
}

func (tw *tokenWriter) finish() {
	if !tw.holding {
		return
	}
	code, body := tw.code, tw.held
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil {
		tw.status = eb.Status
	}
	if clusterStatuses[eb.Status] {
		// A sign-in that may or may not have been applied is safe to
		// retry: the next one sees the record the first one made.
		code = http.StatusServiceUnavailable
		body, _ = json.Marshal(ErrorBody{Status: StatusInternalError,
			Errors: []ErrorDetail{{Location: tsLocationInternal, Name: "", Description: tsDescServerError}}})
		body = append(body, '\n')
		h := tw.ResponseWriter.Header()
		h.Del("Content-Length")
		h.Set("Content-Type", "application/json")
		h.Set("Retry-After", "1")
		tw.status = StatusInternalError
	}
	tw.ResponseWriter.WriteHeader(code)
	_, _ = tw.ResponseWriter.Write(body)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (tw *tokenWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }
