package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/fxa"
	"github.com/wimms-dev/wimms/internal/tokenserver"
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

func (rq *request) refuseCredentials(name, desc string) {
	rq.writeError(http.StatusUnauthorized, StatusInvalidCredentials,
		ErrorDetail{Location: LocationHeader, Name: name, Description: desc})
}

func (s *Server) token(rq *request) {
	if rq.invalid() {
		return
	}
	service, ok := tokenService(rq.r)
	if !ok {
		rq.writeError(http.StatusNotFound, fsm.StatusNotFound,
			ErrorDetail{Location: LocationPath, Name: "application", Description: "unsupported application or version"})
		return
	}
	accessToken, ok := bearerToken(rq.r)
	if !ok {
		rq.refuseCredentials("Authorization", "Unauthorized: a Bearer FxA OAuth token is required")
		return
	}
	id, err := s.tokens.Authenticate(rq.r.Context(), accessToken)
	if err != nil {
		if errors.Is(err, fxa.ErrInvalidCredentials) {
			// The reason names the failed check, never the token.
			s.log.Debug("token request refused", "reason", err)
			rq.refuseCredentials("Authorization", "Unauthorized")
			return
		}
		s.log.Warn("verifying an FxA token failed", "error", err)
		rq.writeError(http.StatusServiceUnavailable, StatusFxAUnavailable,
			ErrorDetail{Location: LocationHeader, Name: "Authorization", Description: "the FxA verify endpoint could not be reached"})
		return
	}
	kid, desc := parseKeyID(rq.r.Header.Values(HeaderKeyID))
	if desc != "" {
		rq.refuseCredentials(HeaderKeyID, desc)
		return
	}
	if cs := rq.r.Header.Get(HeaderClientState); cs != "" && cs != kid.clientState {
		rq.writeError(http.StatusUnauthorized, fsm.StatusInvalidClientState,
			ErrorDetail{Location: LocationHeader, Name: HeaderClientState, Description: "X-Client-State does not match X-KeyID"})
		return
	}
	email := id.FxaUID + "@" + s.tokens.EmailDomain()
	if checkEmail(email) != "" {
		rq.refuseCredentials("Authorization", "Unauthorized: the FxA uid cannot form an email")
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
		Duration: requestedDuration(rq.query["duration"], s.tokens.MaxDuration())})
	if err != nil {
		rq.internalError("minting the token: " + err.Error())
		return
	}
	endpoint := u.APIEndpoint
	if endpoint == "" {
		endpoint = fmt.Sprintf("%s/1.5/%d", u.NodeURL, u.UID)
	}
	h := rq.w.Header()
	h.Set("X-Timestamp", strconv.FormatInt(s.now().Unix(), 10))
	h.Set("X-Content-Type-Options", "nosniff")
	rq.writeJSON(http.StatusOK, TokenJSON{ID: tok.ID, Key: tok.Key, UID: u.UID, APIEndpoint: endpoint,
		Duration: int64(tok.Duration / time.Second), HashAlg: "sha256", HashedFxaUID: tok.HashedFxaUID, NodeType: tok.NodeType})
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

// parseKeyID reads X-KeyID: "<keys_changed_at>-<base64url, no padding, of
// the client state bytes>" (e.g. "1234-qqo"). It returns a description of
// the problem, or "".
func parseKeyID(values []string) (keyID, string) {
	switch len(values) {
	case 0:
		return keyID{}, "Unauthorized: missing X-KeyID header"
	case 1:
	default:
		return keyID{}, "Unauthorized: X-KeyID given more than once"
	}
	ts, b64, ok := strings.Cut(values[0], "-")
	if !ok {
		return keyID{}, "Unauthorized: X-KeyID must be <keys_changed_at>-<client state>"
	}
	kca, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || kca < 0 {
		return keyID{}, "Unauthorized: X-KeyID keys_changed_at is not a non-negative integer"
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil {
		return keyID{}, "Unauthorized: X-KeyID client state is not unpadded base64url"
	}
	cs := hex.EncodeToString(raw)
	if checkClientState(cs) != "" {
		return keyID{}, "Unauthorized: X-KeyID client state is longer than 16 bytes"
	}
	return keyID{keysChangedAt: kca, clientState: cs}, ""
}
