package httpapi

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// TestWriteRoutes: each write turns into exactly one command with exactly
// the given fields, and its result renders with the contract's code and body.
func TestWriteRoutes(t *testing.T) {
	svc, node, user := sampleService(), sampleNode(3), sampleUser()
	cases := []struct {
		name     string
		method   string
		path     string
		body     string
		result   fsm.Result
		wantCode int
		wantCmd  fsm.Command
		wantBody string // "" for 204
	}{
		{"put service creates", http.MethodPut, "/v1/services/sync-1.5",
			`{"pattern":"{node}/1.5/{uid}","release_rate":0.10,"allow_new_users":false,"spread":3}`,
			fsm.Result{Created: true, Service: &svc}, http.StatusCreated,
			fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}"),
				ReleaseRate: fsm.SomeString("0.1"), AllowNewUsers: fsm.SomeBool(false), Spread: fsm.SomeInt64(3)},
			sampleServiceJSON},
		{"put service updates", http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"x"}`,
			fsm.Result{Service: &svc}, http.StatusOK,
			fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("x")},
			sampleServiceJSON},
		{"put service release_rate 1 and exponent", http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"p","release_rate":25e-2}`,
			fsm.Result{Service: &svc}, http.StatusOK,
			fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("p"), ReleaseRate: fsm.SomeString("0.25")},
			sampleServiceJSON},
		{"delete service", http.MethodDelete, "/v1/services/sync-1.5", "",
			fsm.Result{}, http.StatusNoContent,
			fsm.Command{Op: fsm.OpDeleteService, Service: "sync-1.5"}, ""},
		{"add node", http.MethodPost, "/v1/services/sync-1.5/nodes", `{"node":"https://n1.example.com","capacity":100}`,
			fsm.Result{Created: true, Node: &node}, http.StatusCreated,
			fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1.example.com", Capacity: fsm.SomeInt64(100)},
			sampleNode3JSON},
		{"add node all fields", http.MethodPost, "/v1/services/sync-1.5/nodes",
			`{"node":"http://n1:8000","capacity":0,"available":0,"current_load":7,"downed":true,"backoff":false}`,
			fsm.Result{Created: true, Node: &node}, http.StatusCreated,
			fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "http://n1:8000", Capacity: fsm.SomeInt64(0),
				Available: fsm.SomeInt64(0), CurrentLoad: fsm.SomeInt64(7), Downed: fsm.SomeBool(true), Backoff: fsm.SomeBool(false)},
			sampleNode3JSON},
		{"update node", http.MethodPatch, "/v1/services/sync-1.5/nodes/3", `{"downed":true,"capacity":50}`,
			fsm.Result{Node: &node}, http.StatusOK,
			fsm.Command{Op: fsm.OpUpdateNode, Service: "sync-1.5", NodeID: 3, Downed: fsm.SomeBool(true), Capacity: fsm.SomeInt64(50)},
			sampleNode3JSON},
		{"unassign node", http.MethodPost, "/v1/services/sync-1.5/nodes/3/unassign", "",
			fsm.Result{Count: 5}, http.StatusOK,
			fsm.Command{Op: fsm.OpUnassignNode, Service: "sync-1.5", NodeID: 3}, `{"unassigned":5}`},
		{"remove node", http.MethodDelete, "/v1/services/sync-1.5/nodes/3", "",
			fsm.Result{Count: 6}, http.StatusOK,
			fsm.Command{Op: fsm.OpRemoveNode, Service: "sync-1.5", NodeID: 3}, `{"unassigned":6}`},
		{"allocate creates", http.MethodPost, "/v1/services/sync-1.5/users",
			`{"email":"a@b.c","generation":5,"client_state":"aabb","keys_changed_at":4,"node":"https://n1.example.com"}`,
			fsm.Result{Created: true, User: &user}, http.StatusCreated,
			fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: "a@b.c", Generation: fsm.SomeInt64(5),
				ClientState: fsm.SomeString("aabb"), KeysChangedAt: fsm.SomeInt64(4), Node: fsm.SomeString("https://n1.example.com")},
			sampleUserJSON},
		{"allocate returns existing", http.MethodPost, "/v1/services/sync-1.5/users", `{"email":"a@b.c","keys_changed_at":null}`,
			fsm.Result{User: &user}, http.StatusOK,
			fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: "a@b.c"}, sampleUserJSON},
		{"update user, escaped email", http.MethodPatch, "/v1/services/sync-1.5/users/a%40b.c", `{"client_state":"ccdd","generation":6}`,
			fsm.Result{User: &user}, http.StatusOK,
			fsm.Command{Op: fsm.OpUpdateUser, Service: "sync-1.5", Email: "a@b.c", ClientState: fsm.SomeString("ccdd"), Generation: fsm.SomeInt64(6)},
			sampleUserJSON},
		{"update user moves node", http.MethodPatch, "/v1/services/sync-1.5/users/a@b.c", `{"node":"https://n2.example.com"}`,
			fsm.Result{User: &user}, http.StatusOK,
			fsm.Command{Op: fsm.OpUpdateUser, Service: "sync-1.5", Email: "a@b.c", Node: fsm.SomeString("https://n2.example.com")},
			sampleUserJSON},
		{"login", http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", `{"generation":5,"keys_changed_at":4,"client_state":""}`,
			fsm.Result{User: &user, FxaKid: "0000000000004-qrs"}, http.StatusOK,
			fsm.Command{Op: fsm.OpLogin, Service: "sync-1.5", Email: "a@b.c", Generation: fsm.SomeInt64(5),
				KeysChangedAt: fsm.SomeInt64(4), ClientState: fsm.SomeString("")},
			sampleUserJSON[:len(sampleUserJSON)-1] + `,"fxa_kid":"0000000000004-qrs"}`},
		{"retire", http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", "",
			fsm.Result{User: &user}, http.StatusOK,
			fsm.Command{Op: fsm.OpRetire, Service: "sync-1.5", Email: "a@b.c"}, sampleUserJSON},
		{"replace at", http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/replace", `{"at":1500}`,
			fsm.Result{Count: 2}, http.StatusOK,
			fsm.Command{Op: fsm.OpReplace, Service: "sync-1.5", Email: "a@b.c", At: fsm.SomeInt64(1500)}, `{"replaced":2}`},
		{"replace now", http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/replace", `{}`,
			fsm.Result{Count: 1}, http.StatusOK,
			fsm.Command{Op: fsm.OpReplace, Service: "sync-1.5", Email: "a@b.c"}, `{"replaced":1}`},
		{"delete record", http.MethodDelete, "/v1/services/sync-1.5/records/42", "",
			fsm.Result{}, http.StatusNoContent,
			fsm.Command{Op: fsm.OpDeleteRecord, Service: "sync-1.5", UID: 42}, ""},
		{"event", http.MethodPost, "/v1/events", `{"event":"passwordChange","email":"a@b.c","generation":7}`,
			fsm.Result{Count: 2}, http.StatusOK,
			fsm.Command{Op: fsm.OpAccountEvent, Event: "passwordChange", Email: "a@b.c", Generation: fsm.SomeInt64(7)}, `{"applied":2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.Result = tc.result
			r := e.do(tc.method, tc.path, tc.body)
			if r.code != tc.wantCode {
				t.Fatalf("code %d, want %d; body %s; logs %s", r.code, tc.wantCode, r.body, e.logs)
			}
			cmds := e.store.Commands()
			if len(cmds) != 1 {
				t.Fatalf("%d commands applied, want 1", len(cmds))
			}
			if !reflect.DeepEqual(cmds[0], tc.wantCmd) {
				t.Fatalf("command\n got: %+v\nwant: %+v", cmds[0], tc.wantCmd)
			}
			if tc.wantBody == "" {
				if len(r.body) != 0 {
					t.Fatalf("body %q, want none", r.body)
				}
			} else {
				assertJSONEqual(t, r.body, tc.wantBody)
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
			}
			if got := r.header.Get(HeaderIndex); got != "8" { // fake: index 7, +1 per applied command
				t.Fatalf("%s = %q, want 8 (the index Apply returned)", HeaderIndex, got)
			}
			if r.header.Get(HeaderMember) != "m1" {
				t.Fatalf("%s = %q", HeaderMember, r.header.Get(HeaderMember))
			}
			reads := e.store.Reads()
			if tc.name == "login" {
				// A login first asks a linearizable read whether it changes
				// anything (login_read.go); this fake's reader cannot say, so
				// it is proposed.
				if len(reads) != 1 || reads[0].Level != store.ReadLinearizable {
					t.Fatalf("login read %+v, want one linearizable read", reads)
				}
			} else if len(reads) != 0 {
				t.Fatalf("a write also read")
			}
		})
	}
}

// TestReadRoutes: each read renders the reader's data with the contract's
// field names, nulls and order.
func TestReadRoutes(t *testing.T) {
	cases := []struct {
		name     string
		path     string
		wantBody string
	}{
		{"list services", "/v1/services", `{"services":[` + sampleServiceJSON + `]}`},
		{"get service", "/v1/services/sync-1.5", sampleServiceJSON},
		{"list nodes sorted by id", "/v1/services/sync-1.5/nodes", `{"nodes":[` +
			`{"id":2,"service":"sync-1.5","node":"https://n2.example.com","capacity":100,"available":10,"current_load":3,"downed":false,"backoff":true},` +
			sampleNode3JSON + `]}`},
		{"get node", "/v1/services/sync-1.5/nodes/3", sampleNode3JSON},
		{"get user, escaped email", "/v1/services/sync-1.5/users/a%40b.c", sampleUserJSON},
		{"get user, raw email", "/v1/services/sync-1.5/users/a@b.c", sampleUserJSON},
		{"get user whose node was removed", "/v1/services/sync-1.5/users/o%40b.c", orphanUserJSON},
		{"records", "/v1/services/sync-1.5/users/a%40b.c/records", sampleRecordsJSON},
		{"old records", "/v1/services/sync-1.5/records/old",
			`{"records":[{"uid":40,"email":"a@b.c","node_id":9,"node":null,"downed":false,"generation":1,"keys_changed_at":null,"client_state":"1122","created_at":500,"replaced_at":1000}]}`},
		{"stats", "/v1/services/sync-1.5/stats", `{"users":5,"records":8,"nodes":2}`},
		{"count users", "/v1/users/count?service=sync-1.5&as_of=123", `{"count":17,"as_of":123}`},
		{"count users defaults", "/v1/users/count", `{"count":17,"as_of":1700000000000}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed()
			r := e.do(http.MethodGet, tc.path, "")
			if r.code != http.StatusOK {
				t.Fatalf("code %d; body %s", r.code, r.body)
			}
			assertJSONEqual(t, r.body, tc.wantBody)
			if len(e.store.Commands()) != 0 {
				t.Fatalf("a read applied a command")
			}
			reads := e.store.Reads()
			if len(reads) != 1 || reads[0] != (store.ReadOptions{}) {
				t.Fatalf("reads %+v, want one default read", reads)
			}
			for h, want := range map[string]string{HeaderIndex: "7", HeaderMember: "m1", HeaderKnownLeader: "true", HeaderLastContact: "0"} {
				if got := r.header.Get(h); got != want {
					t.Fatalf("%s = %q, want %q", h, got, want)
				}
			}
		})
	}
}

// TestOldRecordsQuery checks what the reader is asked: the cutoff
// (Now − GraceMs) is what selects records.
func TestOldRecordsQuery(t *testing.T) {
	now := testNow.UnixMilli()
	week := int64(7 * 24 * 3600 * 1000)
	cases := []struct {
		query                 string
		wantCutoff            int64
		wantLimit, wantOffset int
	}{
		{"", now - week, 100, 0},
		{"?grace_ms=0&limit=1000&offset=20", now, 1000, 20},
		{"?grace_ms=1&limit=1", now - 1, 1, 0},
		{"?grace_ms=60000", now - 60000, 100, 0},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			e := newEnv(t)
			e.seed()
			wantCode(t, e.do(http.MethodGet, "/v1/services/sync-1.5/records/old"+tc.query, ""), http.StatusOK)
			q := e.store.State.LastOldQuery
			if q.Service != "sync-1.5" || q.Now-q.GraceMs != tc.wantCutoff || q.GraceMs <= 0 || q.Limit != tc.wantLimit || q.Offset != tc.wantOffset {
				t.Fatalf("query %+v (cutoff %d), want cutoff %d limit %d offset %d", q, q.Now-q.GraceMs, tc.wantCutoff, tc.wantLimit, tc.wantOffset)
			}
		})
	}
}

func TestCountUsersArguments(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if r := e.do(http.MethodGet, "/v1/users/count?service=sync-1.5&as_of=123", ""); r.code != http.StatusOK {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
	if e.store.State.LastCountService != "sync-1.5" || e.store.State.LastCountAsOf != 123 {
		t.Fatalf("counted (%q, %d)", e.store.State.LastCountService, e.store.State.LastCountAsOf)
	}
	if r := e.do(http.MethodGet, "/v1/users/count", ""); r.code != http.StatusOK {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
	if e.store.State.LastCountService != "" || e.store.State.LastCountAsOf != testNow.UnixMilli() {
		t.Fatalf("counted (%q, %d), want all services as of now", e.store.State.LastCountService, e.store.State.LastCountAsOf)
	}
}

func TestReadLevels(t *testing.T) {
	cases := []struct {
		query string
		want  store.ReadOptions
	}{
		{"?consistency=default", store.ReadOptions{Level: store.ReadDefault}},
		{"?consistency=stale", store.ReadOptions{Level: store.ReadStale}},
		{"?consistency=stale&max_staleness=2s", store.ReadOptions{Level: store.ReadStale, MaxStaleness: 2e9}},
		{"?consistency=linearizable", store.ReadOptions{Level: store.ReadLinearizable}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			e := newEnv(t)
			e.seed()
			if r := e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c"+tc.query, ""); r.code != http.StatusOK {
				t.Fatalf("code %d: %s", r.code, r.body)
			}
			if reads := e.store.Reads(); len(reads) != 1 || reads[0] != tc.want {
				t.Fatalf("reads %+v, want %+v", reads, tc.want)
			}
		})
	}
}

// TestEmailPathEscaping: emails are addressed path-escaped, including
// characters a router would otherwise treat specially.
func TestEmailPathEscaping(t *testing.T) {
	emails := []string{"a@b.c", "..", ".", "a%b", "a+b c@x", "a?b#c@d"}
	for _, email := range emails {
		t.Run(email, func(t *testing.T) {
			e := newEnv(t)
			u := sampleUser()
			e.store.Result = fsm.Result{User: &u}
			path := "/v1/services/sync-1.5/users/" + escapeSegmentForTest(email) + "/retire"
			if r := e.do(http.MethodPost, path, ""); r.code != http.StatusOK {
				t.Fatalf("%s: code %d: %s", path, r.code, r.body)
			}
			if cmds := e.store.Commands(); len(cmds) != 1 || cmds[0].Email != email {
				t.Fatalf("commands %+v, want email %q", cmds, email)
			}
		})
	}
}

// escapeSegmentForTest escapes every byte outside [A-Za-z0-9] so the test
// does not depend on the client package's escaper.
func escapeSegmentForTest(s string) string {
	const hex = "0123456789ABCDEF"
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hex[c>>4], hex[c&15])
	}
	return string(out)
}

// TestMaxGenerationRoundTrip: 2^63−1 goes in and comes out digit for digit.
func TestMaxGenerationRoundTrip(t *testing.T) {
	e := newEnv(t)
	u := sampleUser()
	u.Generation = fsm.MaxGeneration
	u.KeysChangedAt = fsm.MaxGeneration - 1
	e.store.Result = fsm.Result{User: &u, Created: true}
	r := e.do(http.MethodPost, "/v1/services/sync-1.5/users",
		`{"email":"a@b.c","generation":9223372036854775807,"keys_changed_at":9223372036854775806}`)
	if r.code != http.StatusCreated {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
	cmd := e.store.Commands()[0]
	if cmd.Generation != fsm.SomeInt64(fsm.MaxGeneration) || cmd.KeysChangedAt != fsm.SomeInt64(fsm.MaxGeneration-1) {
		t.Fatalf("command carries generation %+v keys_changed_at %+v", cmd.Generation, cmd.KeysChangedAt)
	}
	body := string(r.body)
	for _, want := range []string{`"generation":9223372036854775807`, `"keys_changed_at":9223372036854775806`} {
		if !strings.Contains(body, want) {
			t.Fatalf("body %s lacks %s", body, want)
		}
	}
}

func TestClusterRoutes(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		e := newEnv(t)
		leader := wire.Member{ID: "m1", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001", Zone: "a", Voter: true, State: "leader"}
		e.cluster.StatusValue = wire.ClusterStatus{Leader: &leader, Term: 3, CommitIndex: 10, AppliedIndex: 9,
			Members: []wire.Member{leader}}
		r := wantCode(t, e.do(http.MethodGet, "/v1/cluster", ""), http.StatusOK)
		m := `{"id":"m1","raft_addr":"127.0.0.1:7001","http_addr":"127.0.0.1:8001","zone":"a","voter":true,"state":"leader","last_contact_ms":0}`
		assertJSONEqual(t, r.body, `{"leader":`+m+`,"term":3,"commit_index":10,"applied_index":9,"members":[`+m+`]}`)
		if r.header.Get(HeaderKnownLeader) != "true" {
			t.Fatalf("cluster status lacks read headers")
		}
	})
	t.Run("status without cluster", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Cluster = nil })
		r := wantCode(t, e.do(http.MethodGet, "/v1/cluster", ""), http.StatusOK)
		m := `{"id":"m1","raft_addr":"","http_addr":"","zone":"","voter":true,"state":"leader","last_contact_ms":0}`
		assertJSONEqual(t, r.body, `{"leader":`+m+`,"term":0,"commit_index":7,"applied_index":7,"members":[`+m+`]}`)
	})
	t.Run("join", func(t *testing.T) {
		e := newEnv(t)
		r := wantCode(t, e.do(http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"127.0.0.1:7002","http_addr":"127.0.0.1:8002","zone":"b"}`), http.StatusOK)
		joined, _, _ := e.cluster.Calls()
		want := wire.Member{ID: "m2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8002", Zone: "b", Voter: true}
		if len(joined) != 1 || joined[0] != want {
			t.Fatalf("joined %+v, want %+v", joined, want)
		}
		assertJSONEqual(t, r.body, `{"id":"m2","raft_addr":"127.0.0.1:7002","http_addr":"127.0.0.1:8002","zone":"b","voter":true}`)
	})
	t.Run("join non-voter", func(t *testing.T) {
		e := newEnv(t)
		wantCode(t, e.do(http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"127.0.0.1:7002","http_addr":"127.0.0.1:8002","voter":false}`), http.StatusOK)
		if joined, _, _ := e.cluster.Calls(); len(joined) != 1 || joined[0].Voter {
			t.Fatalf("joined %+v, want one non-voter", joined)
		}
	})
	t.Run("remove", func(t *testing.T) {
		e := newEnv(t)
		r := wantCode(t, e.do(http.MethodDelete, "/v1/cluster/members/m%2D2", ""), http.StatusOK)
		if _, removed, _ := e.cluster.Calls(); !reflect.DeepEqual(removed, []string{"m-2"}) {
			t.Fatalf("removed %v", removed)
		}
		assertJSONEqual(t, r.body, `{"removed":"m-2"}`)
	})
	t.Run("remove unknown", func(t *testing.T) {
		e := newEnv(t)
		e.cluster.Err = store.ErrMemberNotFound
		r := e.do(http.MethodDelete, "/v1/cluster/members/m9", "")
		if r.code != http.StatusNotFound || r.errorBody(t).Status != fsm.StatusNotFound {
			t.Fatalf("code %d: %s", r.code, r.body)
		}
	})
	t.Run("transfer to any", func(t *testing.T) {
		e := newEnv(t)
		r := wantCode(t, e.do(http.MethodPost, "/v1/cluster/leader", ""), http.StatusOK)
		if _, _, tr := e.cluster.Calls(); !reflect.DeepEqual(tr, []string{""}) {
			t.Fatalf("transfers %q", tr)
		}
		assertJSONEqual(t, r.body, `{"target":null}`)
	})
	t.Run("transfer to one", func(t *testing.T) {
		e := newEnv(t)
		wantCode(t, e.do(http.MethodPost, "/v1/cluster/leader", `{"id":"m3"}`), http.StatusOK)
		if _, _, tr := e.cluster.Calls(); !reflect.DeepEqual(tr, []string{"m3"}) {
			t.Fatalf("transfers %q", tr)
		}
	})
	t.Run("join on a follower is forwarded", func(t *testing.T) {
		e := newEnv(t)
		e.router.Follower = true
		body := `{"id":"m2","raft_addr":"127.0.0.1:7002","http_addr":"127.0.0.1:8002"}`
		r := e.do(http.MethodPost, "/v1/cluster/members", body)
		if r.header.Get("X-Fake-Forwarded") != "1" {
			t.Fatalf("not forwarded: %d %s", r.code, r.body)
		}
		if calls := e.router.Relayed(); len(calls) != 1 || string(calls[0].Body) != body || calls[0].Where != store.OnLeader {
			t.Fatalf("forwarded %+v", calls)
		}
		if joined, _, _ := e.cluster.Calls(); len(joined) != 0 {
			t.Fatalf("a forwarded join also reached this member's cluster: %+v", joined)
		}
	})
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/cluster/members", `{"id":"m2","raft_addr":"127.0.0.1:7002","http_addr":"127.0.0.1:8002"}`},
		{http.MethodDelete, "/v1/cluster/members/m2", ""},
		{http.MethodPost, "/v1/cluster/leader", ""},
	} {
		t.Run("without cluster "+tc.method+" "+tc.path, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Cluster = nil })
			r := e.do(tc.method, tc.path, tc.body)
			if r.code != http.StatusServiceUnavailable || r.errorBody(t).Status != StatusNoCluster || r.header.Get("Retry-After") != "1" {
				t.Fatalf("code %d: %s", r.code, r.body)
			}
		})
	}
}

func TestHealthAndReady(t *testing.T) {
	e := newEnv(t)
	if r := e.do(http.MethodGet, "/healthz", ""); r.code != http.StatusOK {
		t.Fatalf("healthz %d", r.code)
	}
	if r := e.do(http.MethodGet, "/readyz", ""); r.code != http.StatusOK {
		t.Fatalf("readyz %d while ready", r.code)
	}
	e.store.Set(func(s *fake.Store) { s.ReadyFlag = false })
	r := e.do(http.MethodGet, "/readyz", "")
	if r.code != http.StatusServiceUnavailable || r.errorBody(t).Status != StatusNotReady || r.header.Get("Retry-After") != "1" {
		t.Fatalf("readyz %d %s while not ready", r.code, r.body)
	}
	if r.header.Get(HeaderMember) != "m1" {
		t.Fatalf("readyz lacks %s", HeaderMember)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/v1/nothing", "")
	if r.code != http.StatusNotFound || r.errorBody(t).Status != fsm.StatusNotFound || r.header.Get(HeaderMember) != "m1" {
		t.Fatalf("unknown path: %d %s", r.code, r.body)
	}
	r = e.do(http.MethodPost, "/v1/services/sync-1.5", "")
	if r.code != http.StatusMethodNotAllowed || r.errorBody(t).Status != StatusMethodNotAllowed {
		t.Fatalf("wrong method: %d %s", r.code, r.body)
	}
	if len(e.store.Commands()) != 0 {
		t.Fatalf("an unrouted request reached the store")
	}
}

func TestExtraRoutes(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.APIToken = "secret"
		c.ExtraRoutes = func(r *mux.Router) {
			r.HandleFunc("/internal/v1/ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
		}
	})
	if r := e.do(http.MethodGet, "/internal/v1/ping", ""); r.code != http.StatusTeapot {
		t.Fatalf("extra route answered %d", r.code)
	}
	m := e.do(http.MethodGet, "/metrics", "")
	if !strings.Contains(string(m.body), `route="/internal/v1/ping"`) {
		t.Fatalf("extra route is not in the metrics:\n%s", m.body)
	}
}

// TestPanicBecomes500: a bug below the HTTP layer answers a logged 500 in
// the error shape instead of dropping the connection.
func TestPanicBecomes500(t *testing.T) {
	e := newEnv(t)
	e.store.ApplyFunc = func(fsm.Command) (fsm.Result, error) { panic("todo") }
	r := e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", "")
	if r.code != http.StatusInternalServerError || r.errorBody(t).Status != StatusInternalError {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
	if !strings.Contains(e.logs.String(), "handler panicked") {
		t.Fatalf("panic not logged: %s", e.logs)
	}
}

// TestMissingResultObjectIs500: a command that "succeeds" without the object
// its route renders is a broken promise, reported, not rendered as zeros.
func TestMissingResultObjectIs500(t *testing.T) {
	e := newEnv(t)
	e.store.Result = fsm.Result{}
	wantCode(t, e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", `{"client_state":""}`), http.StatusInternalServerError)
}

func TestBadReleaseRateFromStoreIs500(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.store.State.Services[0].ReleaseRate = ""
	r := e.do(http.MethodGet, "/v1/services/sync-1.5", "")
	if r.code != http.StatusInternalServerError || r.errorBody(t).Status != StatusInternalError {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
}
