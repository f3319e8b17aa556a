package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// TestOpenAPIDocsCopyIsCurrent: docs/openapi.json is the embedded document,
// byte for byte (fix with: cp httpapi/openapi.json docs/openapi.json).
func TestOpenAPIDocsCopyIsCurrent(t *testing.T) {
	docs, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatalf("read docs copy: %v", err)
	}
	if !bytes.Equal(docs, OpenAPIDocument) {
		t.Fatal("docs/openapi.json differs from httpapi/openapi.json: cp httpapi/openapi.json docs/openapi.json")
	}
}

// pathParam makes templates comparable: the name of a path variable is
// not part of the wire ({member} in the router is {id} in the document).
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

func normalizeTemplate(p string) string { return pathParam.ReplaceAllString(p, "{}") }

// TestOpenAPIMatchesRouter walks the router and fails on a route the
// document lacks, or a documented operation no route serves.
func TestOpenAPIMatchesRouter(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPIDocument, &doc); err != nil {
		t.Fatalf("embedded document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+normalizeTemplate(path)] = true
		}
	}

	// With a token-server configuration and the FxA webhook, so their
	// routes exist too.
	srv := New(Config{Store: fake.NewStore(), Tokens: webhookIssuer{}})
	served := map[string]bool{}
	err := srv.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // a route without a path (none today)
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s has no methods: every route must say which it serves", tpl)
			return nil
		}
		for _, m := range methods {
			if m == http.MethodHead {
				continue // served with GET
			}
			served[m+" "+normalizeTemplate(tpl)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if len(served) < 30 {
		t.Fatalf("walked only %d routes: %v", len(served), served)
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the OpenAPI document lacks: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("documented operations no route serves: %v", extra)
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := New(Config{Store: fake.NewStore(), APIToken: "secret"}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("without token: %d, want 401 like every /v1 route", rec.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer secret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), OpenAPIDocument) {
		t.Fatal("served document differs from the embedded one")
	}
}

// webhookIssuer is a token server with the FxA webhook enabled.
type webhookIssuer struct{ failingIssuer }

func (webhookIssuer) WebhookEnabled() (bool, bool) { return true, false }

func (webhookIssuer) VerifyEvent(context.Context, string) (fxa.SET, error) {
	return fxa.SET{}, fxa.ErrInvalidCredentials
}
