package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
)

func TestAuth(t *testing.T) {
	const api, admin = "api-token", "admin-token"
	userRead := [2]string{http.MethodGet, "/v1/services/sync-1.5/users/a%40b.c"}
	userWrite := [2]string{http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire"}
	serviceWrite := [2]string{http.MethodDelete, "/v1/services/sync-1.5"}
	clusterWrite := [2]string{http.MethodPost, "/v1/cluster/leader"}
	eventWrite := [2]string{http.MethodPost, "/v1/events"}
	healthz := [2]string{http.MethodGet, "/healthz"}
	metrics := [2]string{http.MethodGet, "/metrics"}
	cases := []struct {
		name          string
		apiTok, admTk string
		route         [2]string
		body          string
		authz         string // Authorization header, "" for none
		wantOK        bool
	}{
		{"no tokens configured: open", "", "", serviceWrite, "", "", true},
		{"api token missing", api, "", userRead, "", "", false},
		{"api token wrong", api, "", userRead, "", "Bearer nope", false},
		{"api token prefix", api, "", userRead, "", "Bearer api-toke", false},
		{"api token wrong scheme", api, "", userRead, "", "Basic " + api, false},
		{"api token ok", api, "", userRead, "", "Bearer " + api, true},
		{"bearer scheme is case-insensitive", api, "", userRead, "", "bearer " + api, true},
		{"api token guards writes", api, "", userWrite, "", "", false},
		{"api token alone also guards admin routes", api, "", serviceWrite, "", "", false},
		{"api token alone opens admin routes", api, "", serviceWrite, "", "Bearer " + api, true},
		{"admin route needs admin token", api, admin, serviceWrite, "", "Bearer " + api, false},
		{"admin route with admin token", api, admin, serviceWrite, "", "Bearer " + admin, true},
		{"cluster route needs admin token", api, admin, clusterWrite, "", "Bearer " + api, false},
		{"event route needs admin token", api, admin, eventWrite, `{"event":"delete","email":"a@b.c"}`, "Bearer " + api, false},
		{"event route with admin token", api, admin, eventWrite, `{"event":"delete","email":"a@b.c"}`, "Bearer " + admin, true},
		{"admin token works on user routes", api, admin, userWrite, "", "Bearer " + admin, true},
		{"user route with api token under admin config", api, admin, userWrite, "", "Bearer " + api, true},
		{"admin token only: user routes open", "", admin, userWrite, "", "", true},
		{"admin token only: admin routes closed", "", admin, serviceWrite, "", "Bearer wrong", false},
		{"healthz stays open", api, admin, healthz, "", "", true},
		{"metrics stays open", api, admin, metrics, "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.APIToken, c.AdminToken = tc.apiTok, tc.admTk })
			u := sampleUser()
			e.store.Result = fsm.Result{User: &u, Count: 1}
			e.seed()
			var hdr []string
			if tc.authz != "" {
				hdr = []string{"Authorization", tc.authz}
			}
			r := e.do(tc.route[0], tc.route[1], tc.body, hdr...)
			if tc.wantOK {
				if r.code >= 300 {
					t.Fatalf("code %d: %s", r.code, r.body)
				}
				return
			}
			if r.code != http.StatusUnauthorized {
				t.Fatalf("code %d, want 401", r.code)
			}
			eb := r.errorBody(t)
			if eb.Status != StatusUnauthorized || eb.Errors[0].Location != LocationHeader || eb.Errors[0].Name != "Authorization" {
				t.Fatalf("body %+v", eb)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without a Bearer challenge")
			}
			if len(e.store.Commands())+len(e.store.Reads()) != 0 {
				t.Fatalf("an unauthorized request reached the store")
			}
		})
	}
}

// TestAuthBeforeValidation: an unauthenticated caller learns nothing about
// what a valid request would look like.
func TestAuthBeforeValidation(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.APIToken = "t" })
	r := e.do(http.MethodPost, "/v1/services/nodash/users", `{"bogus":1}`)
	if r.code != http.StatusUnauthorized {
		t.Fatalf("code %d, want 401", r.code)
	}
}
