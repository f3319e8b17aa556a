package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// TestErrorBodyExactShape pins the token server's error shape byte for byte.
func TestErrorBodyExactShape(t *testing.T) {
	e := newEnv(t)
	e.seed()
	r := e.do(http.MethodGet, "/v1/services/sync-1.5/users/nobody%40b.c", "")
	if r.code != http.StatusNotFound {
		t.Fatalf("code %d", r.code)
	}
	assertJSONEqual(t, r.body, `{"status":"not-found","errors":[{"location":"path","name":"email","description":"no such user"}]}`)
}

// TestFSMErrorMapping: state-machine statuses become the contract's HTTP
// codes, depending on the route where the contract says so.
func TestFSMErrorMapping(t *testing.T) {
	login := func() (string, string, string) {
		return http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", `{"client_state":"aa"}`
	}
	patch := func() (string, string, string) {
		return http.MethodPatch, "/v1/services/sync-1.5/users/a%40b.c", `{"client_state":"aa"}`
	}
	allocate := func() (string, string, string) {
		return http.MethodPost, "/v1/services/sync-1.5/users", `{"email":"a@b.c"}`
	}
	getNode := func() (string, string, string) {
		return http.MethodPatch, "/v1/services/sync-1.5/nodes/3", `{"downed":true}`
	}
	delService := func() (string, string, string) { return http.MethodDelete, "/v1/services/sync-1.5", "" }
	addNode := func() (string, string, string) {
		return http.MethodPost, "/v1/services/sync-1.5/nodes", `{"node":"http://n1","capacity":1}`
	}
	cases := []struct {
		name       string
		req        func() (string, string, string)
		err        fsm.Error
		wantCode   int
		wantDetail ErrorDetail
	}{
		{"not-found service", allocate, fsm.Error{Status: fsm.StatusNotFound, Field: "service", Msg: "no such service"},
			404, ErrorDetail{Location: LocationPath, Name: "service", Description: "no such service"}},
		{"not-found node given", allocate, fsm.Error{Status: fsm.StatusNotFound, Field: "node", Msg: "no such node"},
			404, ErrorDetail{Location: LocationBody, Name: "node", Description: "no such node"}},
		{"not-found without field names the route's subject", login, fsm.Error{Status: fsm.StatusNotFound, Msg: "gone"},
			404, ErrorDetail{Location: LocationPath, Name: "email", Description: "gone"}},
		{"conflict on delete service", delService, fsm.Error{Status: fsm.StatusConflict, Field: "service", Msg: "has nodes"},
			409, ErrorDetail{Location: LocationPath, Name: "service", Description: "has nodes"}},
		{"unknown node id names the path", getNode, fsm.Error{Status: fsm.StatusNotFound, Field: "node", Msg: "no node 3"},
			404, ErrorDetail{Location: LocationPath, Name: "id", Description: "no node 3"}},
		{"duplicate node", addNode, fsm.Error{Status: fsm.StatusConflict, Field: "node", Msg: "exists"},
			409, ErrorDetail{Location: LocationBody, Name: "node", Description: "exists"}},
		{"bad-request from fsm", allocate, fsm.Error{Status: fsm.StatusBadRequest, Field: "email", Msg: "bad"},
			400, ErrorDetail{Location: LocationBody, Name: "email", Description: "bad"}},
		{"no-node-available", allocate, fsm.Error{Status: fsm.StatusNoNodeAvailable, Field: "service", Msg: "full"},
			503, ErrorDetail{Location: LocationPath, Name: "service", Description: "full"}},
		{"invalid-client-state on login is 401", login, fsm.Error{Status: fsm.StatusInvalidClientState, Field: "client_state", Reason: "stale value", Msg: "x"},
			401, ErrorDetail{Location: LocationBody, Name: "client_state", Description: "Unacceptable client-state value stale value"}},
		{"invalid-client-state on PATCH is 409", patch, fsm.Error{Status: fsm.StatusInvalidClientState, Field: "client_state", Reason: "stale value", Msg: "x"},
			409, ErrorDetail{Location: LocationBody, Name: "client_state", Description: "Unacceptable client-state value stale value"}},
		{"invalid-generation", login, fsm.Error{Status: fsm.StatusInvalidGeneration, Field: "generation", Msg: "too old"},
			401, ErrorDetail{Location: LocationBody, Name: "generation", Description: "too old"}},
		{"invalid-keysChangedAt", login, fsm.Error{Status: fsm.StatusInvalidKeysChangedAt, Field: "keys_changed_at", Msg: "too old"},
			401, ErrorDetail{Location: LocationBody, Name: "keys_changed_at", Description: "too old"}},
		{"new-users-disabled", login, fsm.Error{Status: fsm.StatusNewUsersDisabled, Field: "service", Msg: "closed"},
			403, ErrorDetail{Location: LocationPath, Name: "service", Description: "closed"}},
		{"unknown status is a logged 500", login, fsm.Error{Status: "weird", Msg: "?"},
			500, ErrorDetail{Location: LocationPath, Name: "email", Description: "?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fe := tc.err
			e.store.Result = fsm.Result{Err: &fe}
			method, path, body := tc.req()
			r := e.do(method, path, body)
			if r.code != tc.wantCode {
				t.Fatalf("code %d, want %d: %s", r.code, tc.wantCode, r.body)
			}
			eb := r.errorBody(t)
			if eb.Status != tc.err.Status || len(eb.Errors) != 1 || eb.Errors[0] != tc.wantDetail {
				t.Fatalf("body %+v, want status %q detail %+v", eb, tc.err.Status, tc.wantDetail)
			}
			if (tc.wantCode == http.StatusServiceUnavailable) != (r.header.Get("Retry-After") == "1") {
				t.Fatalf("Retry-After %q on %d", r.header.Get("Retry-After"), r.code)
			}
			if r.header.Get(HeaderIndex) != "8" {
				t.Fatalf("an fsm error must report the index Apply returned, got %q", r.header.Get(HeaderIndex))
			}
			if tc.wantCode == 500 && !strings.Contains(e.logs.String(), "unknown status") {
				t.Fatalf("unknown status not logged")
			}
		})
	}
}

// TestStoreErrorMapping: infrastructure errors, also wrapped, on writes
// and reads.
func TestStoreErrorMapping(t *testing.T) {
	cases := []struct {
		err        error
		wantCode   int
		wantStatus string
	}{
		{store.ErrNoLeader, 503, StatusNoLeader},
		{store.ErrStaleRead, 503, StatusStaleRead},
		{store.ErrUnknownOutcome, 504, StatusUnknownOutcome},
		{store.ErrShutdown, 503, StatusShuttingDown},
		{fmt.Errorf("stale read: %w", store.ErrReplaying), 503, StatusNotReady},
		{fmt.Errorf("apply: %w", store.ErrNoLeader), 503, StatusNoLeader},
		{errors.New("disk on fire"), 500, StatusInternalError},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Router = nil })
			e.store.ApplyErr = tc.err
			e.store.ReadErr = tc.err
			check := func(r response, code int, status string) {
				t.Helper()
				if r.code != code {
					t.Fatalf("code %d, want %d: %s", r.code, code, r.body)
				}
				if got := r.errorBody(t).Status; got != status {
					t.Fatalf("status %q, want %q", got, status)
				}
				if (code == 503) != (r.header.Get("Retry-After") == "1") {
					t.Fatalf("Retry-After %q on %d", r.header.Get("Retry-After"), code)
				}
				if r.header.Get(HeaderIndex) != "7" || r.header.Get(HeaderMember) != "m1" {
					t.Fatalf("error lacks Store.Meta headers: %v", r.header)
				}
			}
			check(e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", ""), tc.wantCode, tc.wantStatus)
			check(e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", ""), tc.wantCode, tc.wantStatus)
			if tc.wantCode == 500 && !strings.Contains(e.logs.String(), "disk on fire") {
				t.Fatalf("internal error not logged: %s", e.logs)
			}
		})
	}
}

// TestRouting: the Router decides before the body is parsed or anything
// is proposed.
// Writes and membership changes need the leader, default reads the
// leader's state; stale and linearizable reads and the cluster status are
// served anywhere. A relayed request never reaches this member's store, not
// even when it is malformed (the leader parses it). A not-leader answer
// from the store after the Router chose this member is answered, not
// forwarded: leadership moved in between.
func TestRouting(t *testing.T) {
	body := `{"email":"a@b.c","generation":3}`
	t.Run("placement per route", func(t *testing.T) {
		cases := []struct {
			method, path string
			want         store.Placement
			relay        Relay
		}{
			{http.MethodPost, "/v1/services/sync-1.5/users", store.OnLeader, RelayWrite},
			{http.MethodPut, "/v1/services/sync-1.5", store.OnLeader, RelayWrite},
			{http.MethodDelete, "/v1/cluster/members/m2", store.OnLeader, RelayWrite},
			{http.MethodPost, "/v1/cluster/leader", store.OnLeader, RelayWrite},
			{http.MethodPost, "/v1/cluster/members", store.OnLeader, RelayJoin},
			{http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/login", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", store.OnLeaderIfKnown, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=default", store.OnLeaderIfKnown, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=linearizable", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=stale", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=bogus", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=stale&consistency=default", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=%zz", store.AnyMember, RelayRead},
			{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?x=1", store.OnLeaderIfKnown, RelayRead},
			{http.MethodGet, "/v1/cluster", store.AnyMember, RelayRead},
		}
		for _, tc := range cases {
			e := newEnv(t)
			e.do(tc.method, tc.path, "")
			calls := e.router.Calls()
			if len(calls) != 1 || calls[0].Where != tc.want || calls[0].Relay != tc.relay {
				t.Errorf("%s %s: routed %+v, want one decision %v, relay %v", tc.method, tc.path, calls, tc.want, tc.relay)
			}
		}
		e := newEnv(t)
		e.do(http.MethodGet, "/healthz", "")
		if calls := e.router.Calls(); len(calls) != 0 {
			t.Errorf("healthz was routed: %+v", calls)
		}
	})
	t.Run("write relayed with body, nothing proposed here", func(t *testing.T) {
		e := newEnv(t)
		e.router.Follower = true
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", body, "Authorization", "Bearer t", HeaderIdempotencyKey, "k1")
		if r.code != http.StatusOK || r.header.Get("X-Fake-Forwarded") != "1" {
			t.Fatalf("not forwarded: %d %s", r.code, r.body)
		}
		calls := e.router.Relayed()
		if len(calls) != 1 {
			t.Fatalf("%d relays", len(calls))
		}
		c := calls[0]
		if c.Method != http.MethodPost || c.Path != "/v1/services/sync-1.5/users" || string(c.Body) != body ||
			c.Header.Get("Authorization") != "Bearer t" || c.Header.Get(HeaderIdempotencyKey) != "k1" {
			t.Fatalf("forwarded %+v", c)
		}
		if r.header.Get(HeaderIndex) != "" {
			t.Fatalf("the relay must carry the leader's headers only, got local %s=%q", HeaderIndex, r.header.Get(HeaderIndex))
		}
		if cmds := e.store.Commands(); len(cmds) != 0 {
			t.Fatalf("a relayed write was also proposed here: %+v", cmds)
		}
	})
	t.Run("malformed write relayed unparsed", func(t *testing.T) {
		e := newEnv(t)
		e.router.Follower = true
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", `{"email":`)
		if r.header.Get("X-Fake-Forwarded") != "1" || len(e.store.Commands()) != 0 {
			t.Fatalf("code %d %s; commands %d", r.code, r.body, len(e.store.Commands()))
		}
	})
	t.Run("unauthorized is refused before routing", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.APIToken = "secret" })
		e.router.Follower = true
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", body)
		if r.code != http.StatusUnauthorized || len(e.router.Calls()) != 0 {
			t.Fatalf("code %d, routed %d", r.code, len(e.router.Calls()))
		}
	})
	t.Run("default read relayed, stale read served here", func(t *testing.T) {
		e := newEnv(t)
		e.router.Follower = true
		e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", "")
		if len(e.router.Relayed()) != 1 || len(e.store.Reads()) != 0 {
			t.Fatalf("default read: relayed %d, read here %d", len(e.router.Relayed()), len(e.store.Reads()))
		}
		e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c?consistency=stale", "")
		if len(e.router.Relayed()) != 1 || len(e.store.Reads()) != 1 {
			t.Fatalf("stale read: relayed %d, read here %d", len(e.router.Relayed()), len(e.store.Reads()))
		}
	})
	t.Run("leadership moved after routing", func(t *testing.T) {
		e := newEnv(t)
		e.store.ApplyErr = fmt.Errorf("propose: %w", store.ErrNotLeader)
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", body)
		if r.code != http.StatusServiceUnavailable || r.errorBody(t).Status != StatusNotLeader || r.header.Get("Retry-After") != "1" {
			t.Fatalf("code %d: %s", r.code, r.body)
		}
		if len(e.store.Commands()) != 1 || len(e.router.Relayed()) != 0 {
			t.Fatalf("proposed %d times, relayed %d times; want 1 and 0", len(e.store.Commands()), len(e.router.Relayed()))
		}
		e.store.ReadErr = store.ErrNotLeader
		if r := e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", ""); r.code != http.StatusServiceUnavailable || r.errorBody(t).Status != StatusNotLeader {
			t.Fatalf("read: code %d: %s", r.code, r.body)
		}
	})
	t.Run("no router", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Router = nil })
		e.store.ApplyErr = store.ErrNotLeader
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", body)
		if r.code != http.StatusServiceUnavailable || r.errorBody(t).Status != StatusNotLeader {
			t.Fatalf("code %d: %s", r.code, r.body)
		}
	})
}

// TestReadHeaders: reads carry leader knowledge; writes do not claim it.
func TestReadHeaders(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.store.MetaValue = store.Meta{Index: 99, MemberID: "m3", KnownLeader: false, LastContactMs: 1234}
	r := e.do(http.MethodGet, "/v1/services/sync-1.5?consistency=stale", "")
	want := map[string]string{HeaderIndex: "99", HeaderMember: "m3", HeaderKnownLeader: "false", HeaderLastContact: "1234"}
	for h, v := range want {
		if got := r.header.Get(h); got != v {
			t.Fatalf("%s = %q, want %q", h, got, v)
		}
	}
	r = e.do(http.MethodGet, "/v1/services/nope-1?consistency=stale", "")
	if r.code != http.StatusNotFound || r.header.Get(HeaderKnownLeader) != "false" || r.header.Get(HeaderLastContact) != "1234" {
		t.Fatalf("read error lacks read headers: %d %v", r.code, r.header)
	}
	s := sampleService()
	e.store.Result = fsm.Result{Service: &s}
	r = e.do(http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"p"}`)
	if r.header.Get(HeaderIndex) != "100" || r.header.Get(HeaderKnownLeader) != "" {
		t.Fatalf("write headers %v", r.header)
	}
}
