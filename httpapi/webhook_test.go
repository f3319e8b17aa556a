package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/tokenserver"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

const (
	hookClient = "5882386c6d801776"
	hookIssuer = "https://accounts.example.com"
)

func newWebhookEnv(t *testing.T, metricsOnly bool) *tokenEnv {
	t.Helper()
	e := newTokenEnv(t, func(c *tokenserver.Config) {
		c.Webhook = tokenserver.Webhook{ClientID: hookClient, Issuer: hookIssuer, MetricsOnly: metricsOnly}
	})
	if r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 1000)), "1000-qqo"); r.code != 200 {
		t.Fatalf("sign-in: %d %s", r.code, r.body)
	}
	return e
}

// set signs a Security Event Token as FxA does.
func (e *tokenEnv) set(k fxa.SigningKey, claims map[string]any) string {
	e.t.Helper()
	c := map[string]any{"iss": hookIssuer, "aud": hookClient, "sub": "fxa1", "iat": e.clock.Unix(), "jti": "e6a1c6b4-1"}
	for k, v := range claims {
		c[k] = v
	}
	s, err := k.MintWithHeader(map[string]string{"alg": "RS256", "typ": "secevent+jwt", "kid": k.ID}, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *tokenEnv) postEvent(set string) response {
	e.t.Helper()
	return e.do("POST", "/1.0/webhooks/fxa/events", "", "Authorization", "Bearer "+set)
}

func (e *tokenEnv) user(t *testing.T) fsm.User {
	t.Helper()
	r := e.do("GET", "/v1/services/sync-1.5/users/fxa1%40api.accounts.firefox.com?consistency=linearizable", "")
	var u fsm.User
	if r.code != 200 || json.Unmarshal(r.body, &u) != nil {
		t.Fatalf("user: %d %s", r.code, r.body)
	}
	return u
}

func eventOutcomes(t *testing.T, r response) map[string]string {
	t.Helper()
	var body struct {
		Events map[string]string `json:"events"`
	}
	if r.code != http.StatusOK || json.Unmarshal(r.body, &body) != nil {
		t.Fatalf("event answer %d %s", r.code, r.body)
	}
	return body.Events
}

// A signed event delivered twice changes the user once: the second
// delivery is recognised by its jti and applies nothing.
func TestFxAWebhookPasswordChangeOnce(t *testing.T) {
	e := newWebhookEnv(t, false)
	set := e.set(e.trusted, map[string]any{"events": map[string]any{fxa.EventPasswordChange: map[string]any{"changeTime": 5000}}})
	if got := eventOutcomes(t, e.postEvent(set))[fxa.EventPasswordChange]; got != "applied" {
		t.Fatalf("first delivery: %q", got)
	}
	if u := e.user(t); u.Generation != 4999 {
		t.Fatalf("generation %d after the password change, want changeTime-1 = 4999", u.Generation)
	}
	// The user signs in with the new generation, then the event arrives
	// again: it must not act a second time.
	if r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 6000)), "1000-qqo"); r.code != 200 {
		t.Fatalf("sign-in after the change: %d %s", r.code, r.body)
	}
	before := e.records("fxa1@api.accounts.firefox.com")
	if got := eventOutcomes(t, e.postEvent(set))[fxa.EventPasswordChange]; got != "repeated" {
		t.Fatalf("second delivery: %q", got)
	}
	if after := e.records("fxa1@api.accounts.firefox.com"); after != before {
		t.Fatalf("a redelivered event changed the user:\n%s\n%s", before, after)
	}
	m := e.srv.metrics.webhookEvents
	if a, r := promtest.ToFloat64(m.WithLabelValues("password-change", "applied")), promtest.ToFloat64(m.WithLabelValues("password-change", "repeated")); a != 1 || r != 1 {
		t.Fatalf("metrics applied %v repeated %v", a, r)
	}
}

func TestFxAWebhookDeleteUser(t *testing.T) {
	e := newWebhookEnv(t, false)
	set := e.set(e.trusted, map[string]any{"jti": "del-1", "events": map[string]any{fxa.EventDeleteUser: map[string]any{}}})
	if got := eventOutcomes(t, e.postEvent(set))[fxa.EventDeleteUser]; got != "applied" {
		t.Fatalf("delete: %q", got)
	}
	if u := e.user(t); u.Generation != fsm.MaxGeneration {
		t.Fatalf("generation %d, want the retired mark", u.Generation)
	}
	// The retired user's sign-in is refused.
	if r := e.signin(e.jwt(e.trusted, e.claims("fxa1", 2000)), "1000-qqo"); r.code != 401 {
		t.Fatalf("sign-in of a deleted account: %d %s", r.code, r.body)
	}
	if got := eventOutcomes(t, e.postEvent(set))[fxa.EventDeleteUser]; got != "repeated" {
		t.Fatalf("redelivered delete: %q", got)
	}
}

// Refused tokens and events Mozilla's server does not act on change nothing.
func TestFxAWebhookRefusesAndDrops(t *testing.T) {
	e := newWebhookEnv(t, false)
	del := map[string]any{fxa.EventDeleteUser: map[string]any{}}
	before := e.records("fxa1@api.accounts.firefox.com")
	idx := e.st.Meta().Index
	for name, set := range map[string]string{
		"foreign key":    e.set(e.foreign, map[string]any{"events": del}),
		"other audience": e.set(e.trusted, map[string]any{"aud": "another-client", "events": del}),
		"other issuer":   e.set(e.trusted, map[string]any{"iss": "https://evil.example", "events": del}),
		"expired":        e.set(e.trusted, map[string]any{"exp": e.clock.Unix() - 1, "events": del}),
		"not a JWT":      "opaque",
	} {
		r := e.postEvent(set)
		want := `{"status":"invalid-credentials","errors":[{"location":"body","name":"","description":"Unauthorized"}]}`
		if r.code != 401 || strings.TrimSpace(string(r.body)) != want {
			t.Errorf("%s: %d %s", name, r.code, r.body)
		}
	}
	for name, ev := range map[string]map[string]any{
		"unhandled event":           {"https://schemas.accounts.firefox.com/event/profile-change": map[string]any{}},
		"password change, no time":  {fxa.EventPasswordChange: map[string]any{}},
		"password change, bad time": {fxa.EventPasswordChange: map[string]any{"changeTime": "soon"}},
	} {
		out := eventOutcomes(t, e.postEvent(e.set(e.trusted, map[string]any{"jti": name, "events": ev})))
		for typ, o := range out {
			if o != "dropped" {
				t.Errorf("%s: %s %s, want dropped", name, typ, o)
			}
		}
	}
	if e.st.Meta().Index != idx {
		t.Fatalf("a refused or dropped event was proposed")
	}
	if after := e.records("fxa1@api.accounts.firefox.com"); after != before {
		t.Fatalf("records changed:\n%s\n%s", before, after)
	}
}

func TestFxAWebhookMetricsOnly(t *testing.T) {
	e := newWebhookEnv(t, true)
	before := e.records("fxa1@api.accounts.firefox.com")
	set := e.set(e.trusted, map[string]any{"events": map[string]any{fxa.EventDeleteUser: map[string]any{}}})
	if got := eventOutcomes(t, e.postEvent(set))[fxa.EventDeleteUser]; got != "counted" {
		t.Fatalf("metrics-only: %q", got)
	}
	if after := e.records("fxa1@api.accounts.firefox.com"); after != before {
		t.Fatalf("metrics-only changed the user")
	}
	if n := promtest.ToFloat64(e.srv.metrics.webhookEvents.WithLabelValues("delete-user", "counted")); n != 1 {
		t.Fatalf("counted %v", n)
	}
}

func TestFxAWebhookDisabledIs404(t *testing.T) {
	e := newTokenEnv(t)
	if r := e.do("POST", "/1.0/webhooks/fxa/events", "", "Authorization", "Bearer x"); r.code != http.StatusNotFound {
		t.Fatalf("webhook without configuration: %d %s", r.code, r.body)
	}
}
