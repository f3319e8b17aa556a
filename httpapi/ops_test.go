package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

func TestListNodesLooksUpByURL(t *testing.T) {
	st := fake.NewStore()
	st.State.Services = []fsm.Service{{ID: 1, Name: "sync-1.5"}}
	n1, n2 := sampleNode(3), sampleNode(4)
	n2.URL = "https://n2.example.com"
	st.State.Nodes = []fsm.Node{n1, n2}
	h := New(Config{Store: st}).Handler()

	var got struct{ Nodes []wire.Node }
	if code := getJSON(t, h, "/v1/services/sync-1.5/nodes?node=https%3A%2F%2Fn2.example.com", &got); code != http.StatusOK {
		t.Fatalf("lookup: %d", code)
	}
	if len(got.Nodes) != 1 || got.Nodes[0].ID != 4 {
		t.Fatalf("lookup by URL: %+v, want only node 4", got.Nodes)
	}
	if code := getJSON(t, h, "/v1/services/sync-1.5/nodes?node=https://none.example.com", &got); code != http.StatusOK || len(got.Nodes) != 0 {
		t.Fatalf("unknown URL: %d %+v, want 200 with no nodes", code, got.Nodes)
	}
	if code := getJSON(t, h, "/v1/services/sync-1.5/nodes", &got); code != http.StatusOK || len(got.Nodes) != 2 {
		t.Fatalf("no filter: %d %+v, want both nodes", code, got.Nodes)
	}

	reads := len(st.Reads())
	var bad wire.ErrorBody
	if code := getJSON(t, h, "/v1/services/sync-1.5/nodes?node=not-a-url", &bad); code != http.StatusBadRequest {
		t.Fatalf("bad URL: %d, want 400", code)
	}
	if len(bad.Errors) != 1 || bad.Errors[0].Location != LocationQuerystring || bad.Errors[0].Name != "node" {
		t.Fatalf("bad URL error: %+v", bad)
	}
	if len(st.Reads()) != reads {
		t.Fatal("a malformed lookup reached the store")
	}
}

// probingCluster is the fake cluster plus MemberProber.
type probingCluster struct {
	*fake.Cluster
	applied map[string]uint64 // by HTTP address; absent: the probe fails
}

func (p probingCluster) ProbeMember(ctx context.Context, addr string) (uint64, error) {
	if idx, ok := p.applied[addr]; ok {
		return idx, nil
	}
	return 0, errors.New("connection refused")
}

func TestClusterProgress(t *testing.T) {
	st := fake.NewStore()
	st.MetaValue = store.Meta{MemberID: "m1", Index: 90, KnownLeader: true}
	cl := probingCluster{
		Cluster: &fake.Cluster{StatusValue: wire.ClusterStatus{CommitIndex: 95, Members: []wire.Member{
			{ID: "m1", HTTPAddr: "h1", Zone: "a", State: "follower"},
			{ID: "m2", HTTPAddr: "h2", Zone: "b", State: "leader"},
			{ID: "m3", HTTPAddr: "h3", Zone: "c", State: "failed"},
		}}},
		applied: map[string]uint64{"h2": 100},
	}
	h := New(Config{Store: st, Cluster: cl}).Handler()
	var got ProgressJSON
	if code := getJSON(t, h, "/v1/cluster/progress", &got); code != http.StatusOK {
		t.Fatalf("code %d", code)
	}
	if got.CommitIndex != 100 {
		t.Errorf("commit_index %d, want 100 (the highest applied index reported)", got.CommitIndex)
	}
	want := map[string][2]int64{"m1": {90, 10}, "m2": {100, 0}}
	for _, m := range got.Members {
		w, ok := want[m.ID]
		if !ok {
			if m.AppliedIndex != nil || m.Lag != nil || !strings.Contains(m.Error, "refused") {
				t.Errorf("unreachable %s: %+v, want null index and lag with the error", m.ID, m)
			}
			continue
		}
		if m.AppliedIndex == nil || m.Lag == nil || int64(*m.AppliedIndex) != w[0] || int64(*m.Lag) != w[1] {
			t.Errorf("%s: %+v, want applied %d lag %d", m.ID, m, w[0], w[1])
		}
	}
	if len(got.Members) != 3 {
		t.Fatalf("members %+v", got.Members)
	}
}

func TestForwardedRequestsCounted(t *testing.T) {
	st := fake.NewStore()
	reg := prometheus.NewRegistry()
	h := New(Config{Store: st, Router: &fakeRouter{Follower: true}, Registry: reg}).Handler()
	req := httptest.NewRequest(http.MethodPost, "/v1/services/sync-1.5/users", strings.NewReader(`{"email":"a@b.c"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("X-Fake-Forwarded") != "1" {
		t.Fatalf("not forwarded: %d %s", rec.Code, rec.Body)
	}
	want := `
# HELP wimms_http_forwarded_requests_total Requests this member relayed to the leader, by route template and the status code answered.
# TYPE wimms_http_forwarded_requests_total counter
wimms_http_forwarded_requests_total{code="200",route="/v1/services/{service}/users"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wimms_http_forwarded_requests_total"); err != nil {
		t.Fatal(err)
	}
}
