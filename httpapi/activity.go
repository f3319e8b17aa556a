package httpapi

import (
	"context"
	"net/http"

	dto "github.com/prometheus/client_model/go"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

const (
	routeMemberActivity  = "member-activity"
	routeClusterActivity = "cluster-activity"
)

// MemberActivity is GET /v1/member/activity, declared in package wire
// (the member that asks another decodes it).
type MemberActivity = wire.MemberActivity

// ActivityProber asks another member for its MemberActivity, with the
// Authorization of the request being answered. cluster.Cluster implements
// it.
type ActivityProber interface {
	ProbeActivity(ctx context.Context, httpAddr, authorization string) (MemberActivity, error)
}

// ClusterActivity is GET /v1/cluster/activity: every member's counters and
// the cluster's totals, for the dashboard's rates.
type ClusterActivity struct {
	// Logins sums the members that answered; Allocations is the answering
	// member's (every member applies every allocation).
	Logins      map[string]int64        `json:"logins"`
	Allocations map[string]int64        `json:"allocations"`
	Members     []MemberActivityOrError `json:"members"`
}

// MemberActivityOrError is one member of ClusterActivity; Error is set
// when it did not answer, and its counters are then missing from Logins.
type MemberActivityOrError struct {
	ID    string `json:"id"`
	Error string `json:"error,omitempty"`
	*MemberActivity
}

func (s *Server) activityRoutes() []route {
	return []route{
		{name: routeMemberActivity, method: http.MethodGet, path: "/v1/member/activity", access: accessAPI, kind: kindRaw, handle: s.memberActivity},
		{name: routeClusterActivity, method: http.MethodGet, path: "/v1/cluster/activity", access: accessAPI, kind: kindRaw, handle: s.clusterActivity},
	}
}

func (s *Server) memberActivity(rq *request) {
	rq.writeJSON(http.StatusOK, s.ownActivity())
}

// ownActivity reads this member's counters from its metrics registry: the
// numbers /metrics shows, so the two never disagree.
func (s *Server) ownActivity() MemberActivity {
	a := MemberActivity{Member: s.store.Meta().MemberID, Logins: map[string]int64{}, Allocations: map[string]int64{}}
	fams, err := s.registry.Gather()
	if err != nil {
		s.log.Warn("gathering metrics for activity", "error", err)
	}
	for _, f := range fams {
		switch f.GetName() {
		case metricLogins:
			sumByLabel(f, "outcome", a.Logins)
		case metricAllocations:
			sumByLabel(f, "result", a.Allocations)
		}
	}
	return a
}

// The counter families ownActivity reads.
const (
	metricLogins      = "wimms_logins_total"
	metricAllocations = "wimms_allocations_total"
)

func sumByLabel(f *dto.MetricFamily, label string, into map[string]int64) {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				into[l.GetValue()] += int64(m.GetCounter().GetValue())
			}
		}
	}
}

func (s *Server) clusterActivity(rq *request) {
	self := s.ownActivity()
	out := ClusterActivity{Logins: map[string]int64{}, Allocations: self.Allocations}
	st, ok := s.clusterMembers(rq)
	if !ok {
		return
	}
	prober, _ := s.cluster.(ActivityProber)
	out.Members = make([]MemberActivityOrError, len(st.Members))
	for i, m := range st.Members {
		out.Members[i].ID = m.ID
	}
	probeMembers(rq, st.Members, self.Member, prober != nil, func(i int) {
		out.Members[i].MemberActivity = &self
	}, func(ctx context.Context, i int, addr string) error {
		a, err := prober.ProbeActivity(ctx, addr, rq.r.Header.Get("Authorization"))
		if err == nil {
			out.Members[i].MemberActivity = &a
		}
		return err
	}, func(i int, why string) { out.Members[i].Error = why })
	for _, m := range out.Members {
		if m.MemberActivity == nil {
			continue
		}
		for k, v := range m.Logins {
			out.Logins[k] += v
		}
	}
	rq.writeJSON(http.StatusOK, out)
}
