package httpapi

import (
	_ "embed"
	"net/http"
)

// OpenAPIDocument is the OpenAPI 3.1 description of every route this
// server registers. It is the one source: docs/openapi.json is a copy that
// a test keeps equal, and another test fails when the router and this
// document disagree about which routes exist.
//
//go:embed openapi.json
var OpenAPIDocument []byte

func (s *Server) serveOpenAPI(rq *request) {
	rq.setMetaHeaders()
	h := rq.w.Header()
	h.Set("Content-Type", "application/json")
	rq.w.WriteHeader(http.StatusOK)
	_, _ = rq.w.Write(OpenAPIDocument)
}
