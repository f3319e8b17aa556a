package httpapi

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// fsmStore runs the real state machine in-process, without Raft: enough to
// check that the HTTP layer and the state machine agree on fields, statuses
// and Created flags.
type fsmStore struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
	clock int64
}

func (s *fsmStore) Apply(_ context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock += 1000
	cmd.TS = s.clock
	res := s.f.Apply(cmd)
	s.index++
	return res, store.Meta{Index: s.index, MemberID: "solo", KnownLeader: true}, nil
}

func (s *fsmStore) Read(_ context.Context, _ store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error) {
	m := s.Meta()
	return m, fn(s.f)
}

func (s *fsmStore) Meta() store.Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return store.Meta{Index: s.index, MemberID: "solo", KnownLeader: true}
}

func (s *fsmStore) Ready() bool { return true }

func (s *fsmStore) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.UnixMilli(s.clock)
}

// TestAgainstRealFSM walks a user's life through the HTTP layer and the
// real state machine.
func TestAgainstRealFSM(t *testing.T) {
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	srv := New(Config{Store: st, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	// Logins decode fxa_kid too; the other answers leave it empty.
	type user = wire.LoginResult
	step := func(name, method, path, body string, wantCode int, out any, headers ...string) response {
		t.Helper()
		r := e.do(method, path, body, headers...)
		if r.code != wantCode {
			t.Fatalf("%s: %s %s answered %d, want %d: %s", name, method, path, r.code, wantCode, r.body)
		}
		if out != nil {
			if err := json.Unmarshal(r.body, out); err != nil {
				t.Fatalf("%s: decode %s: %v", name, r.body, err)
			}
		}
		return r
	}
	status := func(r response) string { return r.errorBody(t).Status }

	step("create service", "PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`, 201, nil)
	r := step("update service", "PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}","release_rate":0.250}`, 200, nil)
	if !strings.Contains(string(r.body), `"release_rate":0.25`) {
		t.Fatalf("release rate rendered as %s", r.body)
	}
	var node wire.Node
	step("add node", "POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":100}`, 201, &node)
	if node.Available != 25 {
		t.Fatalf("new node available %d, want ceil(100 × 0.25) = 25", node.Available)
	}
	if r := step("duplicate node", "POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":1}`, 409, nil); status(r) != fsm.StatusConflict {
		t.Fatalf("duplicate node status %s", status(r))
	}
	if r := step("unknown node id", "GET", "/v1/services/sync-1.5/nodes/999", "", 404, nil); r.errorBody(t).Errors[0] != (ErrorDetail{Location: LocationPath, Name: "id", Description: r.errorBody(t).Errors[0].Description}) {
		t.Fatalf("unknown node id error %s", r.body)
	}

	var u1, u2 user
	first := step("allocate", "POST", "/v1/services/sync-1.5/users", `{"email":"a@b.c","generation":5,"client_state":"aa"}`, 201, &u1,
		HeaderIdempotencyKey, "alloc-1")
	if u1.Node == nil || *u1.Node != "https://n1" || u1.APIEndpoint == nil || !strings.HasPrefix(*u1.APIEndpoint, "https://n1/1.5/") {
		t.Fatalf("allocated %+v", u1)
	}
	replay := step("allocate replay", "POST", "/v1/services/sync-1.5/users", `{"client_state":"aa","generation":5,"email":"a@b.c"}`, 201, nil,
		HeaderIdempotencyKey, "alloc-1")
	if string(replay.body) != string(first.body) || replay.header.Get(HeaderReplayed) != "true" {
		t.Fatalf("replay answered %s (replayed %q), first %s", replay.body, replay.header.Get(HeaderReplayed), first.body)
	}
	step("allocate again", "POST", "/v1/services/sync-1.5/users", `{"email":"a@b.c"}`, 200, &u2)
	if u2.UID != u1.UID {
		t.Fatalf("allocate again moved the user: %d → %d", u1.UID, u2.UID)
	}

	r = step("login without generation change", "POST", "/v1/services/sync-1.5/users/a%40b.c/login", `{"client_state":"bb","generation":5}`, 401, nil)
	if eb := r.errorBody(t); eb.Status != fsm.StatusInvalidClientState || !strings.Contains(eb.Errors[0].Description, "new value with no generation change") {
		t.Fatalf("login error %s", r.body)
	}
	var lu user
	step("login with new key", "POST", "/v1/services/sync-1.5/users/a%40b.c/login", `{"client_state":"bb","generation":6,"keys_changed_at":6}`, 200, &lu)
	if lu.UID == u1.UID || lu.ClientState != "bb" || len(lu.OldClientStates) != 1 || lu.OldClientStates[0] != "aa" || !strings.HasPrefix(lu.FxaKid, "0000000000006-") {
		t.Fatalf("login answered %+v", lu)
	}
	r = step("patch back to a stale state", "PATCH", "/v1/services/sync-1.5/users/a%40b.c", `{"client_state":"aa"}`, 409, nil)
	if status(r) != fsm.StatusInvalidClientState {
		t.Fatalf("patch error %s", r.body)
	}
	var recs struct{ Records []wire.Record }
	step("records", "GET", "/v1/services/sync-1.5/users/a%40b.c/records", "", 200, &recs)
	if len(recs.Records) != 2 || recs.Records[0].ReplacedAt == nil || recs.Records[1].ReplacedAt != nil {
		t.Fatalf("records %+v", recs.Records)
	}

	var retired user
	step("retire", "POST", "/v1/services/sync-1.5/users/a%40b.c/retire", "", 200, &retired)
	if retired.Generation != fsm.MaxGeneration {
		t.Fatalf("retired generation %d", retired.Generation)
	}
	r = step("get retired", "GET", "/v1/services/sync-1.5/users/a%40b.c?consistency=linearizable", "", 200, nil)
	if !strings.Contains(string(r.body), `"generation":9223372036854775807`) {
		t.Fatalf("retired user %s", r.body)
	}
	r = step("login of retired user with a generation", "POST", "/v1/services/sync-1.5/users/a%40b.c/login", `{"client_state":"bb","generation":7}`, 401, nil)
	if status(r) != fsm.StatusInvalidGeneration {
		t.Fatalf("retired login error %s", r.body)
	}

	var old struct{ Records []wire.Record }
	step("old records now", "GET", "/v1/services/sync-1.5/records/old?grace_ms=0", "", 200, &old)
	if len(old.Records) != 2 {
		t.Fatalf("old records with grace 0: %+v", old.Records)
	}
	step("old records with default grace", "GET", "/v1/services/sync-1.5/records/old", "", 200, &old)
	if len(old.Records) != 0 {
		t.Fatalf("old records within a week of replacement: %+v", old.Records)
	}
	var count struct{ Count int64 }
	step("count", "GET", "/v1/users/count", "", 200, &count)
	if count.Count != 0 {
		t.Fatalf("live records after retire: %d", count.Count)
	}
	step("delete service with records", "DELETE", "/v1/services/sync-1.5", "", 409, nil)
	step("purge", "DELETE", "/v1/services/sync-1.5/records/"+itoa(u1.UID), "", 204, nil)
	step("purge twice", "DELETE", "/v1/services/sync-1.5/records/"+itoa(u1.UID), "", 404, nil)
	var stats map[string]int64
	step("stats", "GET", "/v1/services/sync-1.5/stats", "", 200, &stats)
	if stats["records"] != 1 || stats["nodes"] != 1 || stats["users"] != 0 {
		t.Fatalf("stats %v", stats)
	}

	var orphan user
	step("allocate second user", "POST", "/v1/services/sync-1.5/users", `{"email":"o@b.c"}`, 201, nil)
	var removed map[string]int64
	step("remove node", "DELETE", "/v1/services/sync-1.5/nodes/"+itoa(node.ID), "", 200, &removed)
	if removed["unassigned"] < 1 {
		t.Fatalf("remove node unassigned %v", removed)
	}
	step("user of removed node", "GET", "/v1/services/sync-1.5/users/o%40b.c", "", 200, &orphan)
	if orphan.Node != nil || orphan.APIEndpoint != nil || orphan.ReplacedAt == nil {
		t.Fatalf("user of a removed node %+v", orphan)
	}
	r = step("allocate without nodes", "POST", "/v1/services/sync-1.5/users", `{"email":"o@b.c"}`, 503, nil)
	if status(r) != fsm.StatusNoNodeAvailable || r.header.Get("Retry-After") != "1" {
		t.Fatalf("no node error %s", r.body)
	}
	var applied map[string]int64
	step("delete event", "POST", "/v1/events", `{"event":"delete","email":"o@b.c"}`, 200, &applied)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
