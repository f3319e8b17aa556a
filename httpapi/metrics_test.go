package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "wimms_test_extra_total", Help: "registered by the caller"})
	reg.MustRegister(extra)
	e := newEnv(t, func(c *Config) { c.Registry = reg; c.APIToken = "t" })
	e.seed()
	e.do(http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c", "", "Authorization", "Bearer t")
	e.do(http.MethodGet, "/v1/services/sync-1.5/users/nobody", "", "Authorization", "Bearer t")
	e.do(http.MethodGet, "/v1/nowhere", "")
	r := e.do(http.MethodGet, "/metrics", "")
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %q", r.code, r.header.Get("Content-Type"))
	}
	body := string(r.body)
	for _, want := range []string{
		`wimms_http_requests_total{code="200",method="GET",route="/v1/services/{service}/users/{email}"} 1`,
		`wimms_http_requests_total{code="404",method="GET",route="/v1/services/{service}/users/{email}"} 1`,
		`wimms_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`wimms_http_request_duration_seconds_count{method="GET",route="/v1/services/{service}/users/{email}"} 2`,
		`wimms_test_extra_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "a@b.c") || strings.Contains(body, "nobody") {
		t.Errorf("metrics leak path values")
	}
}

// TestSharedRegistry: a second Server on the same Registry reuses the
// collectors instead of panicking.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newEnv(t, func(c *Config) { c.Registry = reg })
	b := newEnv(t, func(c *Config) { c.Registry = reg })
	a.do(http.MethodGet, "/healthz", "")
	b.do(http.MethodGet, "/healthz", "")
	r := b.do(http.MethodGet, "/metrics", "")
	if !strings.Contains(string(r.body), `wimms_http_requests_total{code="200",method="GET",route="/healthz"} 2`) {
		t.Fatalf("shared registry does not count both servers:\n%s", r.body)
	}
}

// TestMetricsToken: with a metrics token, /metrics answers 401 without it
// (and with the API token), 200 with it or the admin token.
func TestMetricsToken(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.APIToken = "api"; c.AdminToken = "admin"; c.MetricsToken = "scrape" })
	for tok, want := range map[string]int{"": 401, "api": 401, "wrong": 401, "scrape": 200, "admin": 200} {
		var h []string
		if tok != "" {
			h = []string{"Authorization", "Bearer " + tok}
		}
		r := e.do(http.MethodGet, "/metrics", "", h...)
		if r.code != want {
			t.Fatalf("token %q: %d, want %d", tok, r.code, want)
		}
		if want == 401 && (strings.Contains(string(r.body), "wimms_") || r.header.Get("WWW-Authenticate") == "") {
			t.Fatalf("token %q: refused answer leaks metrics or lacks WWW-Authenticate: %s", tok, r.body)
		}
	}
	// Without a metrics token /metrics stays open, as before.
	if r := newEnv(t, func(c *Config) { c.APIToken = "api" }).do(http.MethodGet, "/metrics", ""); r.code != 200 {
		t.Fatalf("open /metrics: %d", r.code)
	}
}
