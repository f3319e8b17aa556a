package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/store"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

// The answers of Mozilla's token server (syncstorage-rs, and the view
// tests of its Python predecessor) for GET /1.0/{app}/{version}, one row
// per behaviour: status code and the exact body. Every answer carries
// X-Timestamp; a refused request changes nothing.
func TestTokenConformance(t *testing.T) {
	e := newTokenEnv(t)
	if r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-qqo"); r.code != 200 {
		t.Fatalf("first sign-in: %d %s", r.code, r.body)
	}
	// fxa1 later moved to client state bbbb: aaaa is stale from then on.
	const email = "fxa1@api.accounts.firefox.com"
	good := func() string { return e.jwt(e.trusted, e.claims("fxa1", 1000)) }
	expired := e.claims("fxa1", 1000)
	expired.Exp = e.clock.Unix() - 1
	wrongScope := e.claims("fxa1", 1000)
	wrongScope.Scope = "profile https://identity.mozilla.com/apps/notes"
	get := func(path string, headers ...string) func() response {
		return func() response { return e.do("GET", path, "", headers...) }
	}
	unauthorized := func(status string) string {
		return `{"status":"` + status + `","errors":[{"location":"body","name":"","description":"Unauthorized"}]}`
	}
	clientState := func(reason string) string {
		return `{"status":"invalid-client-state","errors":[{"location":"header","name":"X-Client-State","description":"Unacceptable client-state value ` + reason + `"}]}`
	}
	cases := []struct {
		name string
		resp func() response
		code int
		body string
		// reaches: the request gets as far as the state machine (which
		// refuses it from a read); otherwise nothing is read or applied.
		reaches bool
	}{
		{"no Authorization", get("/1.0/sync/1.5", HeaderKeyID, "1000-qqo"), 401, unauthorized("error"), false},
		{"another scheme", get("/1.0/sync/1.5", "Authorization", "Unsupported-Auth-Scheme IHACKYOU", HeaderKeyID, "1000-qqo"), 401,
			`{"status":"error","errors":[{"location":"body","name":"","description":"Unsupported"}]}`, false},
		{"Authorization without a space", get("/1.0/sync/1.5", "Authorization", "Bearer", HeaderKeyID, "1000-qqo"), 401, unauthorized("error"), false},
		{"Authorization not ASCII", get("/1.0/sync/1.5", "Authorization", "Bearer \xff", HeaderKeyID, "1000-qqo"), 401, unauthorized("error"), false},
		{"foreign key", func() response { return e.signin(e.jwt(e.foreign, e.claims("fxa1", 1000)), "1000-qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"wrong scope", func() response { return e.signin(e.jwt(e.trusted, wrongScope), "1000-qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"expired", func() response { return e.signin(e.jwt(e.trusted, expired), "1000-qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"not a JWT, no verify server", func() response { return e.signin("{\"a\": \"b.c.d\"}", "1000-qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"missing X-KeyID", func() response { return e.signin(good(), "") }, 401,
			`{"status":"invalid-key-id","errors":[{"location":"header","name":"","description":"Missing X-KeyID header"}]}`, false},
		{"X-KeyID not ASCII", func() response { return e.signin(good(), "1000-\xffq") }, 401,
			`{"status":"invalid-key-id","errors":[{"location":"header","name":"","description":"Invalid X-KeyID header"}]}`, false},
		{"X-KeyID without dash", func() response { return e.signin(good(), "1000qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"X-KeyID client state not base64url", func() response { return e.signin(good(), "1234-state!") }, 401, unauthorized("invalid-credentials"), false},
		{"X-KeyID padded base64", func() response { return e.signin(good(), "1000-qqo=") }, 401, unauthorized("invalid-credentials"), false},
		{"X-KeyID keys_changed_at not an integer", func() response { return e.signin(good(), "abc-qqo") }, 401, unauthorized("invalid-credentials"), false},
		{"X-KeyID client state over 16 bytes (wimms)", func() response { return e.signin(good(), "1000-"+strings.Repeat("qqqq", 6)) }, 401,
			unauthorized("invalid-credentials"), false},
		{"malformed X-Client-State", func() response { return e.signin(good(), "1000-qqo", HeaderClientState, "state!") }, 400,
			`{"status":"error","errors":[{"location":"header","name":"X-Client-State","description":"Invalid client state value"}]}`, false},
		{"X-Client-State not X-KeyID's", func() response { return e.signin(good(), "1000-qqo", HeaderClientState, "bbbb") }, 401,
			unauthorized("invalid-client-state"), false},
		{"unknown application", get("/1.0/xXx/token", "Authorization", "Bearer "+good(), HeaderKeyID, "1000-qqo"), 404,
			`{"status":"error","errors":[{"location":"url","name":"application","description":"Unsupported application"}]}`, true},
		{"unknown version", get("/1.0/sync/1.2", "Authorization", "Bearer "+good(), HeaderKeyID, "1000-qqo"), 404,
			`{"status":"error","errors":[{"location":"url","name":"1.2","description":"Unsupported application version"}]}`, true},
		{"application wimms cannot name", get("/1.0/a-b/1.5", "Authorization", "Bearer "+good(), HeaderKeyID, "1000-qqo"), 404,
			`{"status":"error","errors":[{"location":"url","name":"application","description":"Unsupported application"}]}`, false},
		{"query that does not parse", get("/1.0/sync/1.5?duration=%zz", "Authorization", "Bearer "+good(), HeaderKeyID, "1000-qqo"), 400,
			`{"status":"error","errors":[{"location":"url","name":"","description":"invalid query params"}]}`, false},
		{"lower generation", func() response { return e.signin(e.jwt(e.trusted, e.claims("fxa1", 999)), "1000-qqo") }, 401,
			unauthorized("invalid-generation"), true},
		{"lower keys_changed_at", func() response { return e.signin(good(), "999-qqo") }, 401, unauthorized("invalid-keysChangedAt"), true},
		{"new client state, same keys_changed_at", func() response { return e.signin(e.jwt(e.trusted, e.claims("fxa1", 1500)), "1000-u7s") }, 401,
			clientState("new value with no keys_changed_at change"), true},
		{"new client state, same generation", func() response { return e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-u7s") }, 401,
			clientState("new value with no generation change"), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.records(email)
			idx, reads := e.st.Meta().Index, e.vst.linReads.Load()
			r := c.resp()
			if r.code != c.code || strings.TrimSpace(string(r.body)) != c.body {
				t.Fatalf("answered %d %s\nwant       %d %s", r.code, strings.TrimSpace(string(r.body)), c.code, c.body)
			}
			if r.header.Get("X-Timestamp") != "1800000000" {
				t.Fatalf("X-Timestamp %q", r.header.Get("X-Timestamp"))
			}
			applied := e.st.Meta().Index != idx
			if reached := applied || e.vst.linReads.Load() != reads; reached != c.reaches {
				t.Fatalf("reached the state machine: %v, want %v", reached, c.reaches)
			}
			if applied {
				t.Fatalf("a refused sign-in was proposed")
			}
			if after := e.records(email); after != before {
				t.Fatalf("records changed:\n%s\n%s", before, after)
			}
		})
	}
}

// Behaviours that pass: the scheme in any case, unknown query parameters
// ignored, and a stale client state refused once the user moved on.
func TestTokenConformanceAccepted(t *testing.T) {
	e := newTokenEnv(t)
	jwt := e.jwt(e.trusted, e.claims("fxa1", 1000))
	for _, c := range []struct{ name, path, auth string }{
		{"bearer in lower case", "/1.0/sync/1.5", "bearer " + jwt},
		{"unknown query parameter", "/1.0/sync/1.5?foo=bar&duration=10", "Bearer " + jwt},
	} {
		r := e.do("GET", c.path, "", "Authorization", c.auth, HeaderKeyID, "1000-qqo", HeaderClientState, "aaaa")
		if r.code != 200 || r.header.Get("X-Timestamp") == "" {
			t.Fatalf("%s: %d %s", c.name, r.code, r.body)
		}
	}
	if r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 2000)), "2000-u7s"); r.code != 200 {
		t.Fatalf("key change: %d %s", r.code, r.body)
	}
	r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 3000)), "3000-qqo")
	want := `{"status":"invalid-client-state","errors":[{"location":"header","name":"X-Client-State","description":"Unacceptable client-state value stale value"}]}`
	if r.code != 401 || strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("stale client state: %d %s", r.code, r.body)
	}
}

// No node can take a new user: Mozilla answers 503 internal-error.
func TestTokenConformanceNoNode(t *testing.T) {
	e := newTokenEnv(t)
	if r := e.do("PATCH", "/v1/services/sync-1.5/nodes/1", `{"downed":true}`); r.code != 200 {
		t.Fatalf("down the node: %d %s", r.code, r.body)
	}
	r := e.signin(e.jwt(e.trusted, e.claims("newbie", 1)), "1-qqo")
	want := `{"status":"internal-error","errors":[{"location":"internal","name":"","description":"Server error"}]}`
	if r.code != 503 || strings.TrimSpace(string(r.body)) != want || r.header.Get("X-Timestamp") == "" {
		t.Fatalf("%d %v %s", r.code, r.header, r.body)
	}
}

type errIssuer struct {
	TokenIssuer
	err error
}

func (i errIssuer) Authenticate(context.Context, string) (fxa.Identity, error) {
	return fxa.Identity{}, i.err
}

// The verify fallback at its concurrency limit: 503 with Retry-After, as
// Mozilla answers an unavailable resource.
func TestTokenConformanceVerifyBusy(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Tokens = errIssuer{err: fxa.ErrBusy} })
	r := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer opaque", HeaderKeyID, "1-qqo")
	want := `{"status":"error","errors":[{"location":"body","name":"","description":"Resource is not available"}]}`
	if r.code != 503 || strings.TrimSpace(string(r.body)) != want || r.header.Get("Retry-After") == "" || r.header.Get("X-Timestamp") == "" {
		t.Fatalf("%d %v %s", r.code, r.header, r.body)
	}
}

// failingRouter answers every request as a member without a leader does.
type failingRouter struct{}

func (failingRouter) Route(w http.ResponseWriter, r *http.Request, _ []byte, _ store.Placement, _ Relay) bool {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"status":"no-leader","errors":[{"location":"header","name":"X-Wimms-Member","description":"no leader is known"}]}`))
	return true
}

// The cluster cannot decide (no leader, in the router or in the store):
// 503 internal-error in Mozilla's shape, with Retry-After and X-Timestamp.
func TestTokenConformanceClusterUnavailable(t *testing.T) {
	te := newTokenEnv(t)
	jwt := te.jwt(te.trusted, te.claims("fxa1", 1))
	want := `{"status":"internal-error","errors":[{"location":"internal","name":"","description":"Server error"}]}`
	for name, edit := range map[string]func(*Config){
		"router": func(c *Config) { c.Tokens = te.srv.tokens; c.Router = failingRouter{} },
		"store":  func(c *Config) { c.Tokens = te.srv.tokens; c.Router = nil },
	} {
		e := newEnv(t, edit)
		e.store.ApplyErr, e.store.ReadErr = store.ErrNoLeader, store.ErrNoLeader
		r := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer "+jwt, HeaderKeyID, "1-qqo")
		if r.code != 503 || strings.TrimSpace(string(r.body)) != want || r.header.Get("Retry-After") == "" || r.header.Get("X-Timestamp") == "" {
			t.Fatalf("%s: %d %v %s", name, r.code, r.header, r.body)
		}
	}
}

// Every sign-in writes one request.summary line with Mozilla's fields;
// the FxA uid appears only hashed.
func TestTokenRequestSummaryLog(t *testing.T) {
	e := newTokenEnv(t)
	var buf strings.Builder
	e.srv = New(Config{Store: e.vst, Now: func() time.Time { return e.clock }, Tokens: e.srv.tokens,
		Logger: hclog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: true, Level: hclog.Info})})
	ok := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer "+e.jwt(e.trusted, e.claims("fxa-secret-uid", 1000)),
		HeaderKeyID, "1000-qqo", "User-Agent", "Firefox/140.0 FxSync/1.140.0.desktop")
	refused := e.do("GET", "/1.0/sync/1.5", "", "User-Agent", "curl/8")
	if ok.code != 200 || refused.code != 401 {
		t.Fatalf("sign-ins: %d, %d", ok.code, refused.code)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["@message"] == "request.summary" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d summary lines, want 2:\n%s", len(lines), buf.String())
	}
	first := lines[0]
	want := map[string]any{"code": 200.0, "user_agent": "Firefox/140.0 FxSync/1.140.0.desktop", "uri.path": "/1.0/sync/1.5",
		"uid": tokenlib.MetricsHashFull("fxa-secret-uid", []byte("hash-secret")), "metrics_uid": tokenlib.MetricsHash("fxa-secret-uid", []byte("hash-secret")),
		"node_type": "spanner"}
	var u struct {
		FirstSeenAt float64 `json:"first_seen_at"`
	}
	if r := e.do("GET", "/v1/services/sync-1.5/users/fxa-secret-uid%40api.accounts.firefox.com", ""); r.code != 200 || json.Unmarshal(r.body, &u) != nil || u.FirstSeenAt == 0 {
		t.Fatalf("user: %d %s", r.code, r.body)
	}
	want["first_seen_at"] = u.FirstSeenAt
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if _, ok := first["t"]; !ok {
		t.Errorf("no time field: %v", first)
	}
	if second := lines[1]; second["code"] != 401.0 || second["status"] != "error" || second["user_agent"] != "curl/8" {
		t.Errorf("refused sign-in line %v", second)
	}
	if strings.Contains(buf.String(), "fxa-secret-uid") {
		t.Errorf("the FxA uid appears in the log")
	}
}

// memberRouter relays every request to another member, whose answer names
// it in X-Wimms-Member.
type memberRouter struct{}

func (memberRouter) Route(w http.ResponseWriter, r *http.Request, _ []byte, _ store.Placement, _ Relay) bool {
	w.Header().Set(HeaderMember, "the-leader")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{}`))
	return true
}

// A sign-in relayed to the leader is logged there, once, not again by the
// member that relayed it.
func TestTokenRequestSummaryLogOncePerSignIn(t *testing.T) {
	te := newTokenEnv(t)
	var buf strings.Builder
	e := newEnv(t, func(c *Config) {
		c.Tokens = te.srv.tokens
		c.Router = memberRouter{}
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	})
	if r := e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer x", HeaderKeyID, "1-qqo"); r.code != 200 {
		t.Fatalf("relayed: %d %s", r.code, r.body)
	}
	if strings.Contains(buf.String(), "request.summary") {
		t.Fatalf("the relaying member logged the sign-in:\n%s", buf.String())
	}
	local := newEnv(t, func(c *Config) {
		c.Tokens = te.srv.tokens
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	})
	local.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer x", HeaderKeyID, "1-qqo")
	if n := strings.Count(buf.String(), "request.summary"); n != 1 {
		t.Fatalf("%d summary lines for a sign-in answered here, want 1:\n%s", n, buf.String())
	}
}
