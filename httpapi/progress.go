package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

const (
	routeClusterProgress = "cluster-progress"
	routeOpenAPI         = "openapi"
)

// MemberProber asks another member how far it has applied the log. A
// Cluster that implements it (cluster.Cluster does) makes
// GET /v1/cluster/progress report every member, not only this one.
type MemberProber interface {
	ProbeMember(ctx context.Context, httpAddr string) (appliedIndex uint64, err error)
}

// probeTimeout bounds one member's probe: a dead member must not stall the
// dashboard that asks.
const probeTimeout = time.Second

// MemberProgressJSON is one member in GET /v1/cluster/progress.
type MemberProgressJSON struct {
	ID   string `json:"id"`
	Zone string `json:"zone"`
	// AppliedIndex and Lag are null when the member did not answer.
	AppliedIndex *uint64 `json:"applied_index"`
	Lag          *uint64 `json:"lag"`
	Error        string  `json:"error,omitempty"`
}

// ProgressJSON is GET /v1/cluster/progress: how far behind the most
// advanced index known each member is.
type ProgressJSON struct {
	// CommitIndex is the highest of this member's commit index and every
	// applied index reported: lag is measured against it.
	CommitIndex uint64               `json:"commit_index"`
	Members     []MemberProgressJSON `json:"members"`
}

func (s *Server) clusterProgress(rq *request) {
	if rq.invalid() {
		return
	}
	st, ok := s.clusterMembers(rq)
	if !ok {
		return
	}
	self := s.store.Meta()
	prober, _ := s.cluster.(MemberProber)
	out := ProgressJSON{CommitIndex: st.CommitIndex, Members: make([]MemberProgressJSON, len(st.Members))}
	for i, m := range st.Members {
		out.Members[i] = MemberProgressJSON{ID: m.ID, Zone: m.Zone}
	}
	probeMembers(rq, st.Members, self.MemberID, prober != nil, func(i int) {
		idx := self.Index
		out.Members[i].AppliedIndex = &idx
	}, func(ctx context.Context, i int, addr string) error {
		idx, err := prober.ProbeMember(ctx, addr)
		if err == nil {
			out.Members[i].AppliedIndex = &idx
		}
		return err
	}, func(i int, why string) { out.Members[i].Error = why })
	for _, m := range out.Members {
		if m.AppliedIndex != nil && *m.AppliedIndex > out.CommitIndex {
			out.CommitIndex = *m.AppliedIndex
		}
	}
	for i := range out.Members {
		if a := out.Members[i].AppliedIndex; a != nil {
			lag := out.CommitIndex - *a
			out.Members[i].Lag = &lag
		}
	}
	rq.writeJSON(http.StatusOK, out)
}

// opsRoutes are the operator endpoints besides Dockerflow.
func (s *Server) opsRoutes() []route {
	return []route{
		{name: routeClusterProgress, method: http.MethodGet, path: "/v1/cluster/progress", access: accessAPI, kind: kindRead, handle: s.clusterProgress},
		{name: routeOpenAPI, method: http.MethodGet, path: "/v1/openapi.json", access: accessAPI, kind: kindRaw, handle: s.serveOpenAPI},
	}
}

// clusterMembers is the cluster as this member sees it (itself alone
// without a cluster); false when it answered an error already.
func (s *Server) clusterMembers(rq *request) (wire.ClusterStatus, bool) {
	if s.cluster == nil {
		return s.selfStatus(), true
	}
	st, err := s.cluster.Status(rq.r.Context())
	if err != nil {
		rq.storeError(err)
		return st, false
	}
	return st, true
}

// probeMembers fills in one answer per member for an endpoint that reports
// every member: local for this member, probe (in parallel, probeTimeout
// each) for the others when canProbe, and fail with the reason for a
// member that cannot be asked or did not answer. It returns when all are
// in.
func probeMembers(rq *request, members []wire.Member, self string, canProbe bool,
	local func(i int), probe func(ctx context.Context, i int, httpAddr string) error, fail func(i int, why string)) {
	var wg sync.WaitGroup
	for i, m := range members {
		switch {
		case m.ID == self:
			local(i)
		case !canProbe:
			fail(i, "this member cannot probe others")
		case m.HTTPAddr == "":
			fail(i, "HTTP address unknown")
		default:
			wg.Add(1)
			go func(i int, addr string) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(rq.r.Context(), probeTimeout)
				defer cancel()
				if err := probe(ctx, i, addr); err != nil {
					fail(i, err.Error())
				}
			}(i, m.HTTPAddr)
		}
	}
	wg.Wait()
}
