package httpapi

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
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
