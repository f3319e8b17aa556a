package main

import (
	"fmt"
	"testing"
	"time"
)

// TestClusterWithTokens: members started with API and admin tokens join
// each other (join needs the admin token), forward writes with the
// client's Authorization unchanged, and serve linearizable reads on a
// follower (the internal read-index call carries the member token).
func TestClusterWithTokens(t *testing.T) {
	const api, admin = "client-secret", "operator-secret"
	ms := launchMembers(t, 3, membersSpec{idPrefix: "t", zones: []string{"zone"}, flags: []string{"--api-token", api, "--admin-token", admin}})
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	eventually(t, 45*time.Second, "three voters with tokens", func() error {
		for _, m := range ms {
			a, err := tryCall("GET", m.url("/v1/cluster"), nil, bearer(api)...)
			if err != nil {
				return err
			}
			if a.code != 200 {
				return fmt.Errorf("%s: %d %s", m.ID, a.code, a.raw)
			}
			if n := len(a.body["members"].([]any)); n != 3 {
				return fmt.Errorf("%s sees %d members", m.ID, n)
			}
		}
		return nil
	})

	expect(t, call(t, "GET", ms[1].url("/v1/services"), nil), 401, "no token")
	expect(t, call(t, "GET", ms[1].url("/v1/services"), nil, bearer("wrong")...), 401, "wrong token")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		expect(t, call(t, "GET", ms[2].url(p), nil), 200, p+" stays open")
	}
	// Mutating service/node endpoints need the admin token, also when a
	// follower forwards them.
	for _, m := range ms {
		expect(t, call(t, "PUT", m.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}, bearer(api)...), 401, "service write with the API token via "+m.ID)
	}
	expect(t, call(t, "PUT", ms[2].url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}, bearer(admin)...), 201, "service write with the admin token")
	expect(t, call(t, "POST", ms[1].url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n.example.com", "capacity": 100}, bearer(admin)...), 201, "node via follower")
	for i, m := range ms {
		email := fmt.Sprintf("tok-%d@example.com", i)
		a := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": email}, bearer(api)...), 201, "allocate via "+m.ID)
		r := ms[(i+1)%3]
		g := expect(t, call(t, "GET", userURL(r, "sync-1.5", email, "?consistency=linearizable"), nil, bearer(api)...), 200, "linearizable read via "+r.ID)
		if g.num("uid") != a.num("uid") {
			t.Fatalf("read %s after write %s", g.raw, a.raw)
		}
	}
}
