package httpapi

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
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
