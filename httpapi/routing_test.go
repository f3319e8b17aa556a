package httpapi

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/store"
)

// TestPathGroupOfRequestMatchesItsTemplate: a request path falls in the
// group of the template it matches, so grouping never hides a route.
func TestPathGroupOfRequestMatchesItsTemplate(t *testing.T) {
	s := New(Config{Store: fake.NewStore(), Logger: hclog.NewNullLogger()})
	examples := map[string]string{
		"/v1/services":                   "/v1/services",
		pathService:                      "/v1/services/sync-1.5",
		pathService + "/stats":           "/v1/services/sync-1.5/stats",
		pathNodes:                        "/v1/services/sync-1.5/nodes",
		pathNode:                         "/v1/services/sync-1.5/nodes/3",
		pathNode + "/unassign":           "/v1/services/sync-1.5/nodes/3/unassign",
		pathUsers:                        "/v1/services/sync-1.5/users",
		pathUser:                         "/v1/services/sync-1.5/users/a%2Fb%40c",
		pathUser + "/login":              "/v1/services/sync-1.5/users/a%40b.c/login",
		pathUser + "/records":            "/v1/services/sync-1.5/users/a%40b.c/records",
		pathServiceRecords + "/old":      "/v1/services/sync-1.5/records/old",
		pathServiceRecords + "/{uid}":    "/v1/services/sync-1.5/records/7",
		"/v1/users/count":                "/v1/users/count",
		"/v1/events":                     "/v1/events",
		"/v1/cluster":                    "/v1/cluster",
		pathClusterMembers + "/{member}": "/v1/cluster/members/m1",
		"/healthz":                       "/healthz",
		"/metrics":                       "/metrics",
	}
	seen := 0
	for _, rt := range s.routes() {
		p, ok := examples[rt.path]
		if !ok {
			continue
		}
		seen++
		tg, ts := pathGroup(rt.path)
		pg, ps := pathGroup(p)
		if tg != pg || ts != ps {
			t.Errorf("template %s in group (%s,%s), request %s in (%s,%s)", rt.path, tg, ts, p, pg, ps)
		}
	}
	if seen < len(examples) {
		t.Fatalf("only %d of %d example templates are routes", seen, len(examples))
	}
}

// TestEveryRouteDeclaresItsPlacement: the route table is the one place
// that says where a request runs; a route that forgot to would be served
// wherever it arrives.
func TestEveryRouteDeclaresItsPlacement(t *testing.T) {
	s := New(Config{Store: fake.NewStore(), Logger: hclog.NewNullLogger()})
	for _, rt := range append(s.routes(), s.tokenRoutes()...) {
		if raw := rt.kind == kindRaw; raw != (rt.place == placeNone) {
			t.Errorf("route %s (kind %d) has place %d: raw routes and only they are unplaced", rt.name, rt.kind, rt.place)
		}
		if rt.kind == kindRead && rt.place != placeRead && rt.place != placeHere {
			t.Errorf("read route %s is placed like a write (%d)", rt.name, rt.place)
		}
		if rt.kind == kindWrite && rt.place != placeWrite && rt.place != placeLogin {
			t.Errorf("write route %s is placed like a read (%d)", rt.name, rt.place)
		}
	}
}

// TestTokenRequestIsRelayedAsAChange: a token request is a GET, but it may
// allocate a node on the leader; it is placed there and relayed alone as
// a request that may change the state, so a relay that fails after
// sending it is 504 unknown-outcome, not 503 ("nothing happened").
func TestTokenRequestIsRelayedAsAChange(t *testing.T) {
	te := newTokenEnv(t)
	e := newEnv(t, func(c *Config) { c.Tokens = te.srv.tokens })
	e.router.Follower = true
	e.do("GET", "/1.0/sync/1.5", "", "Authorization", "Bearer x", HeaderKeyID, "1-qqo")
	relayed := e.router.Relayed()
	if len(relayed) != 1 || relayed[0].Where != store.OnLeader || relayed[0].Relay != RelayAlone || !relayed[0].Relay.MayChange() {
		t.Fatalf("relayed %+v, want the token request on the leader, alone, as a change", relayed)
	}
	for _, rt := range e.srv.tokenRoutes() {
		if rt.place != placeLeaderAlone {
			t.Errorf("token route %s placed %d", rt.name, rt.place)
		}
	}
}
