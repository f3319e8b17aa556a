package httpapi

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/store"
)

// mux matches a request against its routes one by one, each with a
// regular expression over the (escaped) path. With every route on one
// router a user lookup tried a dozen expressions before its own; the
// routes are therefore mounted on subrouters by path group, chosen by a
// few string comparisons, and a request tries only its group's routes (at
// most 7). Route order inside a group is the order of routes(), which
// matters only where templates overlap (/records/old before /records/{uid}).

// pathGroup names the group of a path or a route template: for
// /v1/services/{service}/X/... it is ("services", "X"), for
// /v1/services/{service} ("services", ""), otherwise the first segment or
// two (("v1", "cluster"), ("1.0", "")). Both are substrings of p or
// constants, so matching a request allocates nothing. A template's
// variables never contain '/', so a request path and the template it
// matches fall in the same group.
func pathGroup(p string) (group, sub string) {
	if rest, ok := strings.CutPrefix(p, "/v1/services/"); ok {
		_, after, _ := strings.Cut(rest, "/") // skip the service segment
		sub, _, _ = strings.Cut(after, "/")
		return "services", sub
	}
	p = strings.TrimPrefix(p, "/")
	group, rest, _ := strings.Cut(p, "/")
	if group == "v1" {
		sub, _, _ = strings.Cut(rest, "/")
	}
	return group, sub
}

// requestPath is the path as mux matches it (UseEncodedPath): the raw
// path when the request's encoding differs from the default one.
func requestPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// mount registers routes on r, grouped into subrouters by pathGroup; the
// groups are tried in the order their first route appears.
func (s *Server) mount(r *mux.Router, routes []route) {
	groups := map[[2]string]*mux.Router{}
	for _, rt := range routes {
		group, subGroup := pathGroup(rt.path)
		key := [2]string{group, subGroup}
		sub := groups[key]
		if sub == nil {
			sub = r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
				g, s := pathGroup(requestPath(req))
				return g == group && s == subGroup
			}).Subrouter()
			groups[key] = sub
		}
		h := s.serve(rt)
		if rt.name == routeToken {
			h = s.tokenAnswers(h)
		}
		sub.Handle(rt.path, h).Methods(rt.method).Name(rt.name)
	}
}

// place is where a route runs, as the route table declares it (routes.go):
// the one place that decides it. request.placement turns it into the
// Placement of one request, which the Router acts on.
type place int

const (
	// placeNone: not routed (health, readiness, metrics: kindRaw).
	placeNone place = iota
	// placeHere: any member answers for itself (the cluster status).
	placeHere
	// placeRead: a read, where its ?consistency says (store.ReadLevel's
	// Placement: default on the leader if one is known, stale and
	// linearizable on any member); relayed alone.
	placeRead
	// placeWrite: on the leader, relayed in a batch with other writes.
	placeWrite
	// placeLogin: on any member, answered from a read when it changes
	// nothing (login_read.go); with an Idempotency-Key a plain write.
	placeLogin
	// placeJoin: on the leader, relayed alone (the answer names the new
	// member, which the relaying member learns).
	placeJoin
	// placeLeaderAlone: on the leader, relayed alone, and it may change
	// the state although it is a GET (a token request may allocate).
	placeLeaderAlone
)

// placement is where this request runs: its route's place, with the read
// level (parsed once, by parseQuery) and the Idempotency-Key filled in.
func (rq *request) placement() Placement {
	switch rq.rt.place {
	case placeRead:
		if rq.levelBad {
			return Placement{Where: store.AnyMember} // answered 400 here
		}
		return Placement{Where: rq.readOpts.Level.Placement(), Relay: RelayRead}
	case placeWrite:
		return Placement{Where: store.OnLeader, Relay: RelayWrite}
	case placeLogin:
		return loginPlacement(rq.r)
	case placeJoin:
		return Placement{Where: store.OnLeader, Relay: RelayJoin}
	case placeLeaderAlone:
		return Placement{Where: store.OnLeader, Relay: RelayAlone}
	}
	return Placement{Where: store.AnyMember}
}
