package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
)

// ListNodesByURL sends the URL as the escaped ?node= parameter and decodes
// the answer's node list.
func TestListNodesByURLSendsTheLookup(t *testing.T) {
	var gotPath, gotQuery, gotNode string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery, gotNode = r.URL.EscapedPath(), r.URL.RawQuery, r.URL.Query().Get("node")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"nodes":[{"id":4,"service":"sync-1.5","node":"https://n2.example.com/a?b","capacity":10,"available":3,"current_load":1,"downed":false,"backoff":true}]}`))
	}))
	defer ts.Close()
	nodes, _, err := client.New(ts.URL).ListNodesByURL(context.Background(), "sync-1.5", "https://n2.example.com/a?b")
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/v1/services/sync-1.5/nodes" || gotNode != "https://n2.example.com/a?b" {
		t.Fatalf("sent path %q query %q", gotPath, gotQuery)
	}
	if gotQuery != "node=https%3A%2F%2Fn2.example.com%2Fa%3Fb" {
		t.Fatalf("query not escaped: %q", gotQuery)
	}
	if len(nodes) != 1 || nodes[0].ID != 4 || !nodes[0].Backoff || nodes[0].Available != 3 {
		t.Fatalf("decoded %+v", nodes)
	}
}

// Against the real handler: a server with the lookup answers only the node
// with that URL; one without it refuses ?node= as an unknown parameter,
// which IsUnknownQueryParameter recognizes (and only that refusal).
func TestListNodesByURLAgainstTheServer(t *testing.T) {
	e := newEnv(t)
	e.store.State.Services = []fsm.Service{{ID: 1, Name: "sync-1.5", Pattern: "p", ReleaseRate: "0.1"}}
	e.store.State.Nodes = []fsm.Node{
		{ID: 3, Service: "sync-1.5", URL: "https://n1.example.com", Capacity: 5},
		{ID: 4, Service: "sync-1.5", URL: "https://n2.example.com", Capacity: 5},
	}
	nodes, _, err := e.c.ListNodesByURL(context.Background(), "sync-1.5", "https://n2.example.com")
	switch {
	case err == nil:
		if len(nodes) != 1 || nodes[0].ID != 4 {
			t.Fatalf("lookup answered %+v, want only node 4", nodes)
		}
	case !client.IsUnknownQueryParameter(err, "node"):
		t.Fatalf("a refused ?node= not recognized: %v", err)
	case client.IsUnknownQueryParameter(err, "limit"):
		t.Fatal("recognized for a parameter it does not name")
	}
	_, _, err = e.c.OldRecords(context.Background(), "sync-1.5", client.OldRecordsQuery{Limit: 5000})
	if err == nil || client.IsUnknownQueryParameter(err, "limit") {
		t.Fatalf("an out-of-range limit taken for an unknown parameter: %v", err)
	}
}
