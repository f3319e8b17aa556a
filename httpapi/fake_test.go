package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/internal/fake"
)

// testNow is the clock of every test server.
var testNow = time.UnixMilli(1_700_000_000_000)

type testEnv struct {
	t       *testing.T
	store   *fake.Store
	cluster *fake.Cluster
	router  *fakeRouter
	srv     *Server
	logs    *bytes.Buffer
}

// newEnv builds a Server on fakes. edit may change the Config (tokens, nil
// Cluster/Router) before the Server is built.
func newEnv(t *testing.T, edit ...func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, store: fake.NewStore(), cluster: &fake.Cluster{}, router: &fakeRouter{}, logs: &bytes.Buffer{}}
	cfg := Config{
		Store: e.store, Cluster: e.cluster, Router: e.router,
		Logger: hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Debug}),
		Now:    func() time.Time { return testNow },
	}
	for _, f := range edit {
		f(&cfg)
	}
	e.srv = New(cfg)
	return e
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends one request; headers are name, value pairs.
// wantCode fails t unless r has the status code.
func wantCode(t *testing.T, r response, code int) response {
	t.Helper()
	if r.code != code {
		t.Fatalf("code %d, want %d: %s", r.code, code, r.body)
	}
	return r
}

func (e *testEnv) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// errorBody decodes an error answer strictly: the shape is a contract.
func (r response) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	var eb ErrorBody
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q does not have the error shape: %v", r.body, err)
	}
	if eb.Status == "" || len(eb.Errors) == 0 {
		t.Fatalf("error body %q lacks status or errors", r.body)
	}
	return eb
}

// assertJSONEqual compares JSON documents by value, with numbers compared
// as their literal text (never through float64).
func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	g, err := decodeExact(got)
	if err != nil {
		t.Fatalf("answer %q is not JSON: %v", got, err)
	}
	w, err := decodeExact([]byte(want))
	if err != nil {
		t.Fatalf("bad expected JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body mismatch\n got: %s\nwant: %s", bytes.TrimSpace(got), want)
	}
}

func decodeExact(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// Fixtures.

func sampleService() fsm.Service {
	return fsm.Service{ID: 1, Name: "sync-1.5", Pattern: "{node}/1.5/{uid}", ReleaseRate: "0.1", AllowNewUsers: true, Spread: 1}
}

const sampleServiceJSON = `{"id":1,"service":"sync-1.5","pattern":"{node}/1.5/{uid}","release_rate":0.1,"allow_new_users":true,"spread":1}`

func sampleNode(id int64) fsm.Node {
	return fsm.Node{ID: id, Service: "sync-1.5", URL: "https://n1.example.com", Capacity: 100, Available: 10, CurrentLoad: 3, Downed: false, Backoff: true}
}

const sampleNode3JSON = `{"id":3,"service":"sync-1.5","node":"https://n1.example.com","capacity":100,"available":10,"current_load":3,"downed":false,"backoff":true}`

func sampleUser() fsm.User {
	return fsm.User{
		Record: fsm.Record{UID: 42, Service: "sync-1.5", Email: "a@b.c", NodeID: 3, NodeURL: "https://n1.example.com",
			Generation: 5, KeysChangedAt: 4, ClientState: "aabb", CreatedAt: 1000, ReplacedAt: fsm.Null},
		APIEndpoint: "https://n1.example.com/1.5/42", OldClientStates: []string{"1122"}, FirstSeenAt: 900,
	}
}

const sampleUserJSON = `{"uid":42,"service":"sync-1.5","email":"a@b.c","node_id":3,"node":"https://n1.example.com",` +
	`"api_endpoint":"https://n1.example.com/1.5/42","generation":5,"keys_changed_at":4,"client_state":"aabb",` +
	`"old_client_states":["1122"],"created_at":1000,"replaced_at":null,"first_seen_at":900}`

// orphanUser's node was removed and it never had keys_changed_at.
func orphanUser() fsm.User {
	return fsm.User{
		Record: fsm.Record{UID: 43, Service: "sync-1.5", Email: "o@b.c", NodeID: 9, Generation: fsm.MaxGeneration,
			KeysChangedAt: fsm.Null, CreatedAt: 1000, ReplacedAt: 2000},
		FirstSeenAt: 1000,
	}
}

const orphanUserJSON = `{"uid":43,"service":"sync-1.5","email":"o@b.c","node_id":9,"node":null,"api_endpoint":null,` +
	`"generation":9223372036854775807,"keys_changed_at":null,"client_state":"","old_client_states":[],` +
	`"created_at":1000,"replaced_at":2000,"first_seen_at":1000}`

func sampleRecords() []fsm.Record {
	return []fsm.Record{
		{UID: 40, Service: "sync-1.5", Email: "a@b.c", NodeID: 9, Generation: 1, KeysChangedAt: fsm.Null, ClientState: "1122", CreatedAt: 500, ReplacedAt: 1000},
		{UID: 42, Service: "sync-1.5", Email: "a@b.c", NodeID: 3, NodeURL: "https://n1.example.com", NodeDowned: true, Generation: 5, KeysChangedAt: 4, ClientState: "aabb", CreatedAt: 1000, ReplacedAt: fsm.Null},
	}
}

const sampleRecordsJSON = `{"records":[` +
	`{"uid":40,"email":"a@b.c","node_id":9,"node":null,"downed":false,"generation":1,"keys_changed_at":null,"client_state":"1122","created_at":500,"replaced_at":1000},` +
	`{"uid":42,"email":"a@b.c","node_id":3,"node":"https://n1.example.com","downed":true,"generation":5,"keys_changed_at":4,"client_state":"aabb","created_at":1000,"replaced_at":null}]}`

// seed fills the fake reader with the fixtures.
func (e *testEnv) seed() {
	e.store.Set(func(s *fake.Store) {
		r := s.State
		r.Services = []fsm.Service{sampleService()}
		n2 := sampleNode(2)
		n2.URL = "https://n2.example.com"
		r.Nodes = []fsm.Node{sampleNode(3), n2}
		r.Users[fake.UserKey("sync-1.5", "a@b.c")] = sampleUser()
		r.Users[fake.UserKey("sync-1.5", "o@b.c")] = orphanUser()
		r.UserRecords[fake.UserKey("sync-1.5", "a@b.c")] = sampleRecords()
		r.Old = sampleRecords()[:1]
		r.Count = 17
		r.Stat["sync-1.5"] = fsm.Stats{Users: 5, Records: 8, Nodes: 2}
	})
}
