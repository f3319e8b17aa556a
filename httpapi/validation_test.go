package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
)

// TestValidation: every malformed request is 400 bad-request naming the
// offending field and its location, and reaches neither Apply nor Read.
func TestValidation(t *testing.T) {
	const (
		svc   = "/v1/services/sync-1.5"
		users = svc + "/users"
		user  = users + "/a%40b.c"
		nodes = svc + "/nodes"
	)
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name     string
		method   string
		path     string
		body     string
		headers  []string
		wantName string
		wantLoc  string
	}{
		// body structure
		{"unknown field", http.MethodPut, svc, `{"pattern":"p","foo":1}`, nil, "foo", LocationBody},
		{"unknown field on bodiless route", http.MethodPost, user + "/retire", `{"x":1}`, nil, "x", LocationBody},
		{"body on a read", http.MethodGet, svc, `{"x":1}`, nil, "x", LocationBody},
		{"not an object", http.MethodPut, svc, `["pattern"]`, nil, "body", LocationBody},
		{"invalid JSON", http.MethodPut, svc, `{"pattern":"p",`, nil, "body", LocationBody},
		{"truncated value", http.MethodPut, svc, `{"pattern":`, nil, "pattern", LocationBody},
		{"trailing object", http.MethodPut, svc, `{"pattern":"p"} {}`, nil, "body", LocationBody},
		{"trailing garbage", http.MethodPut, svc, `{"pattern":"p"}x`, nil, "body", LocationBody},
		{"duplicate key", http.MethodPut, svc, `{"pattern":"p","pattern":"q"}`, nil, "pattern", LocationBody},
		{"body too large", http.MethodPut, svc, `{"pattern":"` + long(MaxBodyBytes) + `"}`, nil, "body", LocationBody},
		{"missing required", http.MethodPost, users, `{}`, nil, "email", LocationBody},
		{"null required", http.MethodPost, users, `{"email":null}`, nil, "email", LocationBody},
		{"login needs client_state", http.MethodPost, user + "/login", `{"generation":1}`, nil, "client_state", LocationBody},
		{"add node needs capacity", http.MethodPost, nodes, `{"node":"http://n1"}`, nil, "capacity", LocationBody},
		// types and ranges
		{"wrong type string", http.MethodPut, svc, `{"pattern":5}`, nil, "pattern", LocationBody},
		{"wrong type bool", http.MethodPut, svc, `{"pattern":"p","allow_new_users":"yes"}`, nil, "allow_new_users", LocationBody},
		{"wrong type int", http.MethodPost, users, `{"email":"a@b.c","generation":"5"}`, nil, "generation", LocationBody},
		{"huge int", http.MethodPost, users, `{"email":"a@b.c","generation":9223372036854775808}`, nil, "generation", LocationBody},
		{"huge negative int", http.MethodPost, users, `{"email":"a@b.c","generation":-9223372036854775809}`, nil, "generation", LocationBody},
		{"float for int", http.MethodPost, users, `{"email":"a@b.c","generation":1.5}`, nil, "generation", LocationBody},
		{"integral float for int", http.MethodPost, users, `{"email":"a@b.c","generation":1.0}`, nil, "generation", LocationBody},
		{"exponent for int", http.MethodPost, users, `{"email":"a@b.c","generation":1e3}`, nil, "generation", LocationBody},
		{"negative generation", http.MethodPost, users, `{"email":"a@b.c","generation":-1}`, nil, "generation", LocationBody},
		{"negative keys_changed_at", http.MethodPatch, user, `{"keys_changed_at":-5}`, nil, "keys_changed_at", LocationBody},
		{"negative capacity", http.MethodPost, nodes, `{"node":"http://n1","capacity":-1}`, nil, "capacity", LocationBody},
		{"negative available", http.MethodPatch, nodes + "/3", `{"available":-1}`, nil, "available", LocationBody},
		{"negative current_load", http.MethodPatch, nodes + "/3", `{"current_load":-2}`, nil, "current_load", LocationBody},
		{"negative at", http.MethodPost, user + "/replace", `{"at":-1}`, nil, "at", LocationBody},
		{"spread zero", http.MethodPut, svc, `{"pattern":"p","spread":0}`, nil, "spread", LocationBody},
		{"release_rate zero", http.MethodPut, svc, `{"pattern":"p","release_rate":0}`, nil, "release_rate", LocationBody},
		{"release_rate above one", http.MethodPut, svc, `{"pattern":"p","release_rate":1.5}`, nil, "release_rate", LocationBody},
		{"release_rate ten places", http.MethodPut, svc, `{"pattern":"p","release_rate":0.1234567891}`, nil, "release_rate", LocationBody},
		{"release_rate negative", http.MethodPut, svc, `{"pattern":"p","release_rate":-0.1}`, nil, "release_rate", LocationBody},
		{"release_rate tiny exponent", http.MethodPut, svc, `{"pattern":"p","release_rate":1e-10}`, nil, "release_rate", LocationBody},
		{"release_rate huge exponent", http.MethodPut, svc, `{"pattern":"p","release_rate":1e-999999999}`, nil, "release_rate", LocationBody},
		{"release_rate as string", http.MethodPut, svc, `{"pattern":"p","release_rate":"0.1"}`, nil, "release_rate", LocationBody},
		// value rules
		{"email with slash in body", http.MethodPost, users, `{"email":"a/b@c"}`, nil, "email", LocationBody},
		{"email empty", http.MethodPost, users, `{"email":""}`, nil, "email", LocationBody},
		{"email too long", http.MethodPost, users, `{"email":"` + long(256) + `"}`, nil, "email", LocationBody},
		{"email not printable", http.MethodPost, users, `{"email":"a\u0001b"}`, nil, "email", LocationBody},
		{"email non-ASCII", http.MethodPost, users, `{"email":"é@b.c"}`, nil, "email", LocationBody},
		{"client_state bad char", http.MethodPatch, user, `{"client_state":"a b"}`, nil, "client_state", LocationBody},
		{"client_state too long", http.MethodPatch, user, `{"client_state":"` + long(33) + `"}`, nil, "client_state", LocationBody},
		{"pattern too long", http.MethodPut, svc, `{"pattern":"` + long(129) + `"}`, nil, "pattern", LocationBody},
		{"pattern empty", http.MethodPut, svc, `{"pattern":""}`, nil, "pattern", LocationBody},
		{"zone too long", http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","zone":"` + long(65) + `"}`, nil, "zone", LocationBody},
		{"node not http", http.MethodPost, nodes, `{"node":"ftp://n1","capacity":1}`, nil, "node", LocationBody},
		{"node not a URL", http.MethodPost, nodes, `{"node":"n1 host","capacity":1}`, nil, "node", LocationBody},
		{"node empty", http.MethodPost, nodes, `{"node":"","capacity":1}`, nil, "node", LocationBody},
		{"node too long", http.MethodPost, nodes, `{"node":"http://` + long(58) + `","capacity":1}`, nil, "node", LocationBody},
		{"allocate node not a URL", http.MethodPost, users, `{"email":"a@b.c","node":"x"}`, nil, "node", LocationBody},
		{"patch node other field", http.MethodPatch, nodes + "/3", `{"node":"http://n2"}`, nil, "node", LocationBody},
		{"patch node service field", http.MethodPatch, nodes + "/3", `{"capacity":3,"service":"x-1"}`, nil, "service", LocationBody},
		{"patch node nothing", http.MethodPatch, nodes + "/3", `{}`, nil, "body", LocationBody},
		{"patch user nothing", http.MethodPatch, user, ``, nil, "body", LocationBody},
		{"unknown event", http.MethodPost, "/v1/events", `{"event":"explode","email":"a@b.c"}`, nil, "event", LocationBody},
		{"join bad raft_addr", http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"nowhere","http_addr":"127.0.0.1:1"}`, nil, "raft_addr", LocationBody},
		{"join bad port", http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"127.0.0.1:0","http_addr":"127.0.0.1:1"}`, nil, "raft_addr", LocationBody},
		// path
		{"service name without dash", http.MethodPut, "/v1/services/sync", `{"pattern":"p"}`, nil, "service", LocationPath},
		{"service name bad char", http.MethodGet, "/v1/services/sync-1%215", "", nil, "service", LocationPath},
		{"service name too long", http.MethodGet, "/v1/services/s-" + long(29), "", nil, "service", LocationPath},
		{"email with escaped slash", http.MethodGet, users + "/a%2Fb", "", nil, "email", LocationPath},
		{"node id not a number", http.MethodGet, nodes + "/abc", "", nil, "id", LocationPath},
		{"node id signed", http.MethodGet, nodes + "/+3", "", nil, "id", LocationPath},
		{"node id negative", http.MethodDelete, nodes + "/-3", "", nil, "id", LocationPath},
		{"node id overflows", http.MethodGet, nodes + "/9223372036854775808", "", nil, "id", LocationPath},
		{"uid not a number", http.MethodDelete, svc + "/records/0x2a", "", nil, "uid", LocationPath},
		{"member id with slash", http.MethodDelete, "/v1/cluster/members/a%2Fb", "", nil, "id", LocationPath},
		// query
		{"unknown query parameter", http.MethodGet, svc + "?x=1", "", nil, "x", LocationQuerystring},
		{"query on a write", http.MethodPost, user + "/retire?consistency=stale", "", nil, "consistency", LocationQuerystring},
		{"repeated query parameter", http.MethodGet, svc + "/records/old?limit=1&limit=2", "", nil, "limit", LocationQuerystring},
		{"bad consistency", http.MethodGet, svc + "?consistency=eventual", "", nil, "consistency", LocationQuerystring},
		{"bad max_staleness", http.MethodGet, svc + "?consistency=stale&max_staleness=soon", "", nil, "max_staleness", LocationQuerystring},
		{"negative max_staleness", http.MethodGet, svc + "?consistency=stale&max_staleness=-1s", "", nil, "max_staleness", LocationQuerystring},
		{"max_staleness without stale", http.MethodGet, svc + "?max_staleness=1s", "", nil, "max_staleness", LocationQuerystring},
		{"limit zero", http.MethodGet, svc + "/records/old?limit=0", "", nil, "limit", LocationQuerystring},
		{"limit too big", http.MethodGet, svc + "/records/old?limit=1001", "", nil, "limit", LocationQuerystring},
		{"offset negative", http.MethodGet, svc + "/records/old?offset=-1", "", nil, "offset", LocationQuerystring},
		{"grace_ms not a number", http.MethodGet, svc + "/records/old?grace_ms=7d", "", nil, "grace_ms", LocationQuerystring},
		{"grace_ms fraction", http.MethodGet, svc + "/records/old?grace_ms=1.5", "", nil, "grace_ms", LocationQuerystring},
		{"as_of negative", http.MethodGet, "/v1/users/count?as_of=-1", "", nil, "as_of", LocationQuerystring},
		{"count bad service", http.MethodGet, "/v1/users/count?service=nodash", "", nil, "service", LocationQuerystring},
		{"bad query escape", http.MethodGet, svc + "?consistency=%zz", "", nil, "query", LocationQuerystring},
		// headers
		{"idempotency key too long", http.MethodPost, user + "/retire", "", []string{HeaderIdempotencyKey, long(129)}, HeaderIdempotencyKey, LocationHeader},
		{"idempotency key empty", http.MethodPost, user + "/retire", "", []string{HeaderIdempotencyKey, ""}, HeaderIdempotencyKey, LocationHeader},
		{"idempotency key not printable", http.MethodPost, user + "/retire", "", []string{HeaderIdempotencyKey, "a\x01b"}, HeaderIdempotencyKey, LocationHeader},
		{"idempotency key non-ASCII", http.MethodPost, user + "/retire", "", []string{HeaderIdempotencyKey, "clé"}, HeaderIdempotencyKey, LocationHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed()
			u, n, s := sampleUser(), sampleNode(3), sampleService()
			e.store.Result = fsm.Result{User: &u, Node: &n, Service: &s}
			r := e.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.code != http.StatusBadRequest {
				t.Fatalf("code %d, want 400; body %s", r.code, r.body)
			}
			eb := r.errorBody(t)
			if eb.Status != fsm.StatusBadRequest {
				t.Fatalf("status %q", eb.Status)
			}
			if eb.Errors[0].Name != tc.wantName || eb.Errors[0].Location != tc.wantLoc || eb.Errors[0].Description == "" {
				t.Fatalf("errors[0] = %+v, want name %q at %q", eb.Errors[0], tc.wantName, tc.wantLoc)
			}
			if n := len(e.store.Commands()); n != 0 {
				t.Fatalf("a malformed request applied %d commands", n)
			}
			if n := len(e.store.Reads()); n != 0 {
				t.Fatalf("a malformed request read %d times", n)
			}
			if joined, removed, tr := e.cluster.Calls(); len(joined)+len(removed)+len(tr) != 0 {
				t.Fatalf("a malformed request changed membership")
			}
			if r.header.Get(HeaderMember) != "m1" || r.header.Get(HeaderIndex) == "" {
				t.Fatalf("error answer lacks X-Wimms headers: %v", r.header)
			}
		})
	}
}

// TestValidationReportsEveryProblem: one answer lists all problems, path
// first, so a client can fix them in one round.
func TestValidationReportsEveryProblem(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/v1/services/nodash/users?x=1", `{"email":"a/b","generation":-1,"zzz":true}`)
	if r.code != http.StatusBadRequest {
		t.Fatalf("code %d", r.code)
	}
	var got []string
	for _, d := range r.errorBody(t).Errors {
		got = append(got, d.Location+":"+d.Name)
	}
	want := []string{"path:service", "querystring:x", "body:zzz", "body:email", "body:generation"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("errors %v, want %v", got, want)
	}
}

// TestBodyAtLimit: exactly 64 KiB is accepted, one byte more is not.
func TestBodyAtLimit(t *testing.T) {
	e := newEnv(t)
	s := sampleService()
	e.store.Result = fsm.Result{Service: &s}
	prefix, suffix := `{"pattern":"p"`, `}`
	pad := strings.Repeat(" ", MaxBodyBytes-len(prefix)-len(suffix))
	if r := e.do(http.MethodPut, "/v1/services/sync-1.5", prefix+pad+suffix); r.code != http.StatusOK {
		t.Fatalf("64 KiB body: code %d %s", r.code, r.body)
	}
	if r := e.do(http.MethodPut, "/v1/services/sync-1.5", prefix+pad+" "+suffix); r.code != http.StatusBadRequest {
		t.Fatalf("64 KiB + 1 body: code %d", r.code)
	}
}

func TestCanonicalReleaseRate(t *testing.T) {
	ok := map[string]string{
		"0.1": "0.1", "0.10": "0.1", "1": "1", "1.0": "1", "0.000000001": "0.000000001",
		"25e-2": "0.25", "0.123456789": "0.123456789", "1E0": "1",
	}
	for in, want := range ok {
		got, desc := canonicalReleaseRate(in)
		if desc != "" || got != want {
			t.Errorf("canonicalReleaseRate(%q) = %q, %q; want %q", in, got, desc, want)
		}
	}
	for _, in := range []string{"0", "-0.5", "1.000000001", "0.0000000001", "2", `"0.1"`, "true", "1e400", "1e-400"} {
		if got, desc := canonicalReleaseRate(in); desc == "" {
			t.Errorf("canonicalReleaseRate(%q) = %q, want an error", in, got)
		}
	}
}
