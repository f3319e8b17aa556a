package client_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

type env struct {
	store   *fake.Store
	cluster *fake.Cluster
	c       *client.Client
}

func newEnv(t *testing.T, opts ...client.Option) *env {
	t.Helper()
	e := &env{store: fake.NewStore(), cluster: &fake.Cluster{}}
	srv := httpapi.New(httpapi.Config{Store: e.store, Cluster: e.cluster, APIToken: "tok",
		Logger: hclog.NewNullLogger(), Now: func() time.Time { return time.UnixMilli(5000) }})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e.c = client.New(ts.URL+"/", append([]client.Option{client.WithToken("tok"), client.WithHTTPClient(ts.Client())}, opts...)...)
	return e
}

func sampleUser() fsm.User {
	return fsm.User{
		Record: fsm.Record{UID: 42, Service: "sync-1.5", Email: "a@b.c", NodeID: 3, NodeURL: "https://n1",
			Generation: fsm.MaxGeneration, KeysChangedAt: fsm.Null, ClientState: "aa", CreatedAt: 10, ReplacedAt: 20},
		APIEndpoint: "https://n1/42", OldClientStates: []string{"bb"}, FirstSeenAt: 5,
	}
}

func wantUser() wire.User {
	return wire.User{UID: 42, Service: "sync-1.5", Email: "a@b.c", NodeID: 3, Node: wire.String("https://n1"),
		APIEndpoint: wire.String("https://n1/42"), Generation: math.MaxInt64, KeysChangedAt: nil, ClientState: "aa",
		OldClientStates: []string{"bb"}, CreatedAt: 10, ReplacedAt: wire.Int64(20), FirstSeenAt: 5}
}

// TestWrites: each write method sends the command its endpoint means and
// decodes the answer into the typed result.
func TestWrites(t *testing.T) {
	ctx := context.Background()
	svc := fsm.Service{ID: 1, Name: "sync-1.5", Pattern: "p", ReleaseRate: "0.25", AllowNewUsers: true, Spread: 2}
	node := fsm.Node{ID: 3, Service: "sync-1.5", URL: "https://n1", Capacity: 10, Available: 1, CurrentLoad: 2, Downed: true}
	wantNode := &wire.Node{ID: 3, Service: "sync-1.5", Node: "https://n1", Capacity: 10, Available: 1, CurrentLoad: 2, Downed: true}
	u := sampleUser()
	wu := wantUser()
	cases := []struct {
		name    string
		result  fsm.Result
		call    func(c *client.Client) (any, client.Meta, error)
		wantCmd fsm.Command
		want    any
		code    int
	}{
		{"PutService", fsm.Result{Created: true, Service: &svc},
			func(c *client.Client) (any, client.Meta, error) {
				return c.PutService(ctx, "sync-1.5", wire.PutServiceRequest{Pattern: "p", ReleaseRate: "0.25", AllowNewUsers: wire.Bool(true), Spread: wire.Int64(2)})
			},
			fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("p"), ReleaseRate: fsm.SomeString("0.25"),
				AllowNewUsers: fsm.SomeBool(true), Spread: fsm.SomeInt64(2)},
			&wire.Service{ID: 1, Service: "sync-1.5", Pattern: "p", ReleaseRate: "0.25", AllowNewUsers: true, Spread: 2}, 201},
		{"DeleteService", fsm.Result{},
			func(c *client.Client) (any, client.Meta, error) {
				m, err := c.DeleteService(ctx, "sync-1.5")
				return nil, m, err
			},
			fsm.Command{Op: fsm.OpDeleteService, Service: "sync-1.5"}, nil, 204},
		{"AddNode", fsm.Result{Created: true, Node: &node},
			func(c *client.Client) (any, client.Meta, error) {
				return c.AddNode(ctx, "sync-1.5", wire.AddNodeRequest{Node: "https://n1", Capacity: 10, NodeState: wire.NodeState{Downed: wire.Bool(true)}})
			},
			fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1", Capacity: fsm.SomeInt64(10), Downed: fsm.SomeBool(true)},
			wantNode, 201},
		{"UpdateNode", fsm.Result{Node: &node},
			func(c *client.Client) (any, client.Meta, error) {
				return c.UpdateNode(ctx, "sync-1.5", 3, wire.UpdateNodeRequest{NodeState: wire.NodeState{Available: wire.Int64(0)}})
			},
			fsm.Command{Op: fsm.OpUpdateNode, Service: "sync-1.5", NodeID: 3, Available: fsm.SomeInt64(0)}, wantNode, 200},
		{"UnassignNode", fsm.Result{Count: 4},
			func(c *client.Client) (any, client.Meta, error) { return c.UnassignNode(ctx, "sync-1.5", 3) },
			fsm.Command{Op: fsm.OpUnassignNode, Service: "sync-1.5", NodeID: 3}, int64(4), 200},
		{"RemoveNode", fsm.Result{Count: 5},
			func(c *client.Client) (any, client.Meta, error) { return c.RemoveNode(ctx, "sync-1.5", 3) },
			fsm.Command{Op: fsm.OpRemoveNode, Service: "sync-1.5", NodeID: 3}, int64(5), 200},
		{"Allocate", fsm.Result{Created: true, User: &u},
			func(c *client.Client) (any, client.Meta, error) {
				return c.Allocate(ctx, "sync-1.5", wire.AllocateRequest{Email: "a@b.c", UserFields: wire.UserFields{
					Generation: wire.Int64(math.MaxInt64), ClientState: wire.String(""), Node: wire.String("https://n1")}})
			},
			fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: "a@b.c", Generation: fsm.SomeInt64(math.MaxInt64),
				ClientState: fsm.SomeString(""), Node: fsm.SomeString("https://n1")}, &wu, 201},
		{"UpdateUser", fsm.Result{User: &u},
			func(c *client.Client) (any, client.Meta, error) {
				return c.UpdateUser(ctx, "sync-1.5", "a@b.c", wire.UpdateUserRequest{KeysChangedAt: wire.Int64(7)})
			},
			fsm.Command{Op: fsm.OpUpdateUser, Service: "sync-1.5", Email: "a@b.c", KeysChangedAt: fsm.SomeInt64(7)}, &wu, 200},
		{"Login", fsm.Result{User: &u, FxaKid: "kid"},
			func(c *client.Client) (any, client.Meta, error) {
				return c.Login(ctx, "sync-1.5", "a@b.c", wire.LoginRequest{Generation: wire.Int64(3), ClientState: ""})
			},
			fsm.Command{Op: fsm.OpLogin, Service: "sync-1.5", Email: "a@b.c", Generation: fsm.SomeInt64(3), ClientState: fsm.SomeString("")},
			&wire.LoginResult{User: wu, FxaKid: "kid"}, 200},
		{"Retire", fsm.Result{User: &u},
			func(c *client.Client) (any, client.Meta, error) { return c.Retire(ctx, "sync-1.5", "a@b.c") },
			fsm.Command{Op: fsm.OpRetire, Service: "sync-1.5", Email: "a@b.c"}, &wu, 200},
		{"Replace now", fsm.Result{Count: 1},
			func(c *client.Client) (any, client.Meta, error) { return c.Replace(ctx, "sync-1.5", "a@b.c", nil) },
			fsm.Command{Op: fsm.OpReplace, Service: "sync-1.5", Email: "a@b.c"}, int64(1), 200},
		{"Replace at", fsm.Result{Count: 2},
			func(c *client.Client) (any, client.Meta, error) {
				return c.Replace(ctx, "sync-1.5", "a@b.c", wire.Int64(99))
			},
			fsm.Command{Op: fsm.OpReplace, Service: "sync-1.5", Email: "a@b.c", At: fsm.SomeInt64(99)}, int64(2), 200},
		{"DeleteRecord", fsm.Result{},
			func(c *client.Client) (any, client.Meta, error) {
				m, err := c.DeleteRecord(ctx, "sync-1.5", 42)
				return nil, m, err
			},
			fsm.Command{Op: fsm.OpDeleteRecord, Service: "sync-1.5", UID: 42}, nil, 204},
		{"Event", fsm.Result{Count: 3},
			func(c *client.Client) (any, client.Meta, error) {
				return c.Event(ctx, wire.EventRequest{Event: "delete", Email: "a@b.c"})
			},
			fsm.Command{Op: fsm.OpAccountEvent, Event: "delete", Email: "a@b.c"}, int64(3), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.Result = tc.result
			got, meta, err := tc.call(e.c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if meta.HTTPStatus != tc.code || meta.Created() != (tc.code == 201) || meta.Member != "m1" || meta.Index != 8 {
				t.Fatalf("meta %+v, want status %d from m1 at index 8", meta, tc.code)
			}
			if cmds := e.store.Commands(); len(cmds) != 1 || !reflect.DeepEqual(cmds[0], tc.wantCmd) {
				t.Fatalf("commands %+v, want %+v", cmds, tc.wantCmd)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("result %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestReads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r := e.store.State
	r.Services = []fsm.Service{{ID: 1, Name: "sync-1.5", Pattern: "p", ReleaseRate: "1", Spread: 1}}
	r.Nodes = []fsm.Node{{ID: 3, Service: "sync-1.5", URL: "https://n1", Capacity: 10}}
	r.Users[fake.UserKey("sync-1.5", "a@b.c")] = sampleUser()
	r.UserRecords[fake.UserKey("sync-1.5", "a@b.c")] = []fsm.Record{sampleUser().Record}
	r.Old = []fsm.Record{sampleUser().Record}
	r.Stat["sync-1.5"] = fsm.Stats{Users: 1, Records: 2, Nodes: 3}
	r.Count = 9
	wantSvc := wire.Service{ID: 1, Service: "sync-1.5", Pattern: "p", ReleaseRate: "1", Spread: 1}
	wantNode := wire.Node{ID: 3, Service: "sync-1.5", Node: "https://n1", Capacity: 10}
	wu := wantUser()
	wantRec := wire.Record{UID: 42, Email: "a@b.c", NodeID: 3, Node: wire.String("https://n1"), Generation: math.MaxInt64,
		ClientState: "aa", CreatedAt: 10, ReplacedAt: wire.Int64(20)}
	stale := client.CallOptions{Consistency: "stale", MaxStaleness: 1500 * time.Millisecond}

	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s = %#v, want %#v", name, got, want)
		}
	}
	svcs, _, err := e.c.ListServices(ctx)
	check("ListServices", svcs, []wire.Service{wantSvc}, err)
	svc, _, err := e.c.GetService(ctx, "sync-1.5")
	check("GetService", svc, &wantSvc, err)
	nodes, _, err := e.c.ListNodes(ctx, "sync-1.5")
	check("ListNodes", nodes, []wire.Node{wantNode}, err)
	node, _, err := e.c.GetNode(ctx, "sync-1.5", 3)
	check("GetNode", node, &wantNode, err)
	user, meta, err := e.c.GetUser(ctx, "sync-1.5", "a@b.c", stale)
	check("GetUser", user, &wu, err)
	if !meta.KnownLeader || meta.Member != "m1" || meta.Index != 7 {
		t.Fatalf("read meta %+v", meta)
	}
	recs, _, err := e.c.Records(ctx, "sync-1.5", "a@b.c")
	check("Records", recs, []wire.Record{wantRec}, err)
	old, _, err := e.c.OldRecords(ctx, "sync-1.5", client.OldRecordsQuery{GraceMs: wire.Int64(0), Limit: 5, Offset: 2})
	check("OldRecords", old, []wire.Record{wantRec}, err)
	if q := r.LastOldQuery; q.Now-q.GraceMs != 5000 || q.Limit != 5 || q.Offset != 2 {
		t.Fatalf("old records query %+v", q)
	}
	st, _, err := e.c.Stats(ctx, "sync-1.5")
	check("Stats", st, &wire.Stats{Users: 1, Records: 2, Nodes: 3}, err)
	cnt, _, err := e.c.CountUsers(ctx, "sync-1.5", wire.Int64(77))
	check("CountUsers", cnt, &wire.Count{Count: 9, AsOf: 77}, err)
	if r.LastCountService != "sync-1.5" || r.LastCountAsOf != 77 {
		t.Fatalf("count args %q %d", r.LastCountService, r.LastCountAsOf)
	}
	reads := e.store.Reads()
	if reads[4] != (store.ReadOptions{Level: store.ReadStale, MaxStaleness: 1500 * time.Millisecond}) {
		t.Fatalf("GetUser read with %+v", reads[4])
	}
	if reads[0] != (store.ReadOptions{}) {
		t.Fatalf("ListServices read with %+v", reads[0])
	}
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	leader := wire.Member{ID: "m1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", Voter: true, State: "leader"}
	e.cluster.StatusValue = wire.ClusterStatus{Leader: &leader, Term: 2, CommitIndex: 5, AppliedIndex: 5, Members: []wire.Member{leader}}
	st, _, err := e.c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wl := wire.Member{ID: "m1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", Voter: true, State: "leader"}
	if want := (&wire.ClusterStatus{Leader: &wl, Term: 2, CommitIndex: 5, AppliedIndex: 5, Members: []wire.Member{wl}}); !reflect.DeepEqual(st, want) {
		t.Fatalf("status %+v", st)
	}
	if _, err := e.c.Join(ctx, wire.JoinRequest{ID: "m2", RaftAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4", Voter: wire.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.RemoveMember(ctx, "m/../2"); !client.IsStatus(err, "bad-request") {
		t.Fatalf("member id with '/' answered %v", err)
	}
	if _, err := e.c.RemoveMember(ctx, "m3"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.TransferLeadership(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.TransferLeadership(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	joined, removed, transfers := e.cluster.Calls()
	if len(joined) != 1 || joined[0] != (wire.Member{ID: "m2", RaftAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4"}) {
		t.Fatalf("joined %+v", joined)
	}
	if !reflect.DeepEqual(removed, []string{"m3"}) || !reflect.DeepEqual(transfers, []string{"", "m2"}) {
		t.Fatalf("removed %v transfers %q", removed, transfers)
	}
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Readyz(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Set(func(s *fake.Store) { s.ReadyFlag = false })
	m, err := e.c.Readyz(ctx)
	if !client.IsStatus(err, "not-ready") || m.HTTPStatus != 503 {
		t.Fatalf("readyz while not ready: %v %+v", err, m)
	}
}

// TestAPIError: non-2xx answers become *APIError with status, details and
// headers, and the Meta is still filled.
func TestAPIError(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.store.Result = fsm.Result{Err: &fsm.Error{Status: fsm.StatusInvalidClientState, Field: "client_state", Reason: "stale value"}}
	u, meta, err := e.c.Login(ctx, "sync-1.5", "a@b.c", wire.LoginRequest{ClientState: "aa"})
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %T %v, want *APIError", err, err)
	}
	if u != nil || ae.HTTPStatus != 401 || ae.Status != "invalid-client-state" || len(ae.Errors) != 1 ||
		ae.Errors[0].Name != "client_state" || ae.Header.Get("X-Wimms-Member") != "m1" || meta.HTTPStatus != 401 || meta.Member != "m1" {
		t.Fatalf("user %v error %+v meta %+v", u, ae, meta)
	}
	if ae.Error() == "" {
		t.Fatal("empty error text")
	}
}

func TestNonAPIErrorBody(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>proxy down</html>")
	}))
	defer ts.Close()
	_, _, err := client.New(ts.URL).GetService(context.Background(), "sync-1.5")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 502 || ae.Status != "" || ae.Errors[0].Description != "<html>proxy down</html>" {
		t.Fatalf("error %#v", err)
	}
}

func TestTokenIsSent(t *testing.T) {
	e := newEnv(t, client.WithToken("wrong"))
	_, _, err := e.c.GetService(context.Background(), "sync-1.5")
	if !client.IsStatus(err, "unauthorized") {
		t.Fatalf("wrong token answered %v", err)
	}
}

// TestIdempotencyKeyIsSent: a repeated write with the same key reports the
// replay.
func TestIdempotencyKeyIsSent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	u := sampleUser()
	e.store.Result = fsm.Result{Created: true, User: &u}
	opt := client.CallOptions{IdempotencyKey: "op-1"}
	_, m1, err := e.c.Allocate(ctx, "sync-1.5", wire.AllocateRequest{Email: "a@b.c"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	_, m2, err := e.c.Allocate(ctx, "sync-1.5", wire.AllocateRequest{Email: "a@b.c"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Replayed || !m2.Replayed || !m2.Created() {
		t.Fatalf("first %+v second %+v", m1, m2)
	}
	if cmds := e.store.Commands(); cmds[0].IdempotencyKey != "op-1" {
		t.Fatalf("key not sent: %+v", cmds[0])
	}
}

// TestEmailEscaping: emails with path-special characters address the same
// user on the server.
func TestEmailEscaping(t *testing.T) {
	ctx := context.Background()
	for _, email := range []string{"a@b.c", "..", ".", "a%2Fb", "a?b#c", "a b+c"} {
		t.Run(email, func(t *testing.T) {
			e := newEnv(t)
			u := sampleUser()
			e.store.Result = fsm.Result{User: &u}
			if _, _, err := e.c.Retire(ctx, "sync-1.5", email); err != nil {
				t.Fatal(err)
			}
			if cmds := e.store.Commands(); len(cmds) != 1 || cmds[0].Email != email {
				t.Fatalf("commands %+v, want email %q", cmds, email)
			}
		})
	}
}

// TestTimeout: a call that the server does not answer in time fails with
// a transport error (not an *APIError): its outcome is unknown.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, client.WithTimeout(50*time.Millisecond))
	defer close(release)
	e.store.ApplyFunc = func(fsm.Command) (fsm.Result, error) {
		<-release
		return fsm.Result{}, nil
	}
	_, _, err := e.c.Retire(context.Background(), "sync-1.5", "a@b.c")
	var ae *client.APIError
	if err == nil || errors.As(err, &ae) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline transport error", err)
	}
}
