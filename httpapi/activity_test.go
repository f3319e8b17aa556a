package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
)

// Every login the member decides is counted once in wimms_logins_total,
// whether it changed something (proposed) or not (decided from a read),
// and /v1/member/activity reports those counts; without a cluster the
// cluster's activity is this member's.
func TestActivityCountsEveryLoginOnce(t *testing.T) {
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	srv := New(Config{Store: st, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`, 201},
		{"POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":100}`, 201},
		{"POST", "/v1/services/sync-1.5/users/a@example.com/login", `{"generation":5,"client_state":""}`, 200}, // creates a: proposed
		{"POST", "/v1/services/sync-1.5/users/a@example.com/login", `{"generation":5,"client_state":""}`, 200}, // changes nothing: read
		{"POST", "/v1/services/sync-1.5/users/a@example.com/login", `{"generation":3,"client_state":""}`, 401}, // rejected: read
	} {
		if r := e.do(c.method, c.path, c.body); r.code != c.code {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, r.code, r.body, c.code)
		}
	}
	for _, path := range []string{"/v1/member/activity", "/v1/cluster/activity"} {
		r := e.do("GET", path, "")
		if r.code != 200 {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		var a struct {
			Logins      map[string]int64 `json:"logins"`
			Allocations map[string]int64 `json:"allocations"`
		}
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if a.Logins["ok"] != 2 || a.Logins["invalid-generation"] != 1 || len(a.Logins) != 2 {
			t.Errorf("GET %s: logins %v, want ok 2 and invalid-generation 1", path, a.Logins)
		}
	}
}

// A login names its service in the path; one whose service does not exist
// is counted under one "(unknown)" label, so made-up names cannot add
// series to /metrics without bound.
func TestLoginsOfMadeUpServicesShareOneLabel(t *testing.T) {
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	srv := New(Config{Store: st, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	for i := range 20 {
		r := e.do("POST", fmt.Sprintf("/v1/services/made-up%d-1.0/users/a@example.com/login", i), `{"generation":1,"client_state":""}`)
		if r.code != 404 {
			t.Fatalf("login to a made-up service: %d %s", r.code, r.body)
		}
	}
	fams, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != metricLogins {
			continue
		}
		if n := len(f.GetMetric()); n != 1 {
			t.Fatalf("%d wimms_logins_total series for 20 made-up services, want 1", n)
		}
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() == "service" && l.GetValue() != unknownService {
				t.Fatalf("service label %q, want %q", l.GetValue(), unknownService)
			}
		}
		return
	}
	t.Fatal("no wimms_logins_total series")
}
