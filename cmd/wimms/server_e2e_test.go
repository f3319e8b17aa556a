package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

const testEmail = "abc123@accounts.example.com"

func userURL(m *member, service, email string, suffix string) string {
	return m.url("/v1/services/" + service + "/users/" + url.PathEscape(email) + suffix)
}

// TestSingleMemberWalkthrough follows the README's first steps against a
// real process and checks each answer against docs/spec.md and docs/api.md.
func TestSingleMemberWalkthrough(t *testing.T) {
	m := startSolo(t, "solo", "a")

	a := expect(t, call(t, "PUT", m.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/1.5/{uid}"}), 201, "create service")
	if a.str("service") != "sync-1.5" || a.header.Get("X-Wimms-Index") == "" || a.header.Get("X-Wimms-Member") != "solo" {
		t.Fatalf("create service answer: %s headers %v", a.raw, a.header)
	}
	expect(t, call(t, "PUT", m.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/1.5/{uid}", "release_rate": 0.5}), 200, "update service")
	n1 := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 100}), 201, "add node 1")
	if n1.num("available") != 50 {
		t.Fatalf("available = ceil(100 × 0.5) = 50, got %s", n1.raw)
	}
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 100}), 409, "duplicate node")
	n2 := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n2.example.com", "capacity": 100}), 201, "add node 2")

	// Malformed input changes nothing.
	before := call(t, "GET", m.url("/v1/services/sync-1.5/stats"), nil)
	bad := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), `{"email": "x@y", "bogus": 1}`), 400, "unknown field")
	if bad.str("status") != "bad-request" {
		t.Fatalf("error shape: %s", bad.raw)
	}
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), `{"email": "x@y", "generation": 1.5}`), 400, "float generation")
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), `{"email": "x@y", "client_state": "not hex!"}`), 400, "bad client_state")
	after := call(t, "GET", m.url("/v1/services/sync-1.5/stats"), nil)
	if before.raw != after.raw {
		t.Fatalf("bad requests changed state: %s → %s", before.raw, after.raw)
	}

	u := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": testEmail, "generation": 1, "client_state": "aaaa"}), 201, "allocate")
	uid := u.num("uid")
	if u.num("node_id") != n1.num("id") {
		t.Fatalf("allocation picks the lowest load, ties to lowest id: %s", u.raw)
	}
	if want := fmt.Sprintf("https://n1.example.com/1.5/%d", uid); u.str("api_endpoint") != want {
		t.Fatalf("api_endpoint %q, want %q", u.str("api_endpoint"), want)
	}
	again := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": testEmail}), 200, "allocate again")
	if again.num("uid") != uid {
		t.Fatalf("get-or-create returned another record: %s", again.raw)
	}
	expect(t, call(t, "GET", userURL(m, "sync-1.5", testEmail, "?consistency=linearizable"), nil), 200, "get linearizable")
	g := expect(t, call(t, "GET", userURL(m, "sync-1.5", testEmail, "?consistency=stale"), nil), 200, "get stale")
	if g.header.Get("X-Wimms-Known-Leader") != "true" || g.header.Get("X-Wimms-Last-Contact") == "" {
		t.Fatalf("read headers missing: %v", g.header)
	}
	expect(t, call(t, "GET", userURL(m, "sync-1.5", "nobody@example.com", ""), nil), 404, "unknown user")

	// Login: a new client state with generation and keys_changed_at bumps
	// makes a new record; the old state becomes stale.
	l := expect(t, call(t, "POST", userURL(m, "sync-1.5", testEmail, "/login"), map[string]any{"generation": 2, "keys_changed_at": 2, "client_state": "bbbb"}), 200, "login key change")
	if l.num("uid") <= uid || l.str("fxa_kid") != "0000000000002-u7s" {
		t.Fatalf("login answer: %s", l.raw)
	}
	stale := expect(t, call(t, "POST", userURL(m, "sync-1.5", testEmail, "/login"), map[string]any{"generation": 3, "keys_changed_at": 3, "client_state": "aaaa"}), 401, "login stale client state")
	if stale.str("status") != "invalid-client-state" {
		t.Fatalf("stale client state: %s", stale.raw)
	}
	low := expect(t, call(t, "POST", userURL(m, "sync-1.5", testEmail, "/login"), map[string]any{"generation": 1, "keys_changed_at": 2, "client_state": "bbbb"}), 401, "login old generation")
	if low.str("status") != "invalid-generation" {
		t.Fatalf("old generation: %s", low.raw)
	}
	up := expect(t, call(t, "PATCH", userURL(m, "sync-1.5", testEmail, ""), map[string]any{"generation": 5}), 200, "update")
	if up.num("generation") != 5 {
		t.Fatalf("update: %s", up.raw)
	}
	expect(t, call(t, "PATCH", userURL(m, "sync-1.5", testEmail, ""), map[string]any{"client_state": "aaaa"}), 409, "update to old client state")

	rep := expect(t, call(t, "POST", userURL(m, "sync-1.5", testEmail, "/replace"), map[string]any{}), 200, "replace")
	if rep.num("replaced") != 1 {
		t.Fatalf("replace: %s", rep.raw)
	}
	recs := expect(t, call(t, "GET", userURL(m, "sync-1.5", testEmail, "/records"), nil), 200, "records")
	if n := len(recs.body["records"].([]any)); n != 2 {
		t.Fatalf("want 2 records, got %d: %s", n, recs.raw)
	}
	// A record replaced in this very millisecond is not yet older than a
	// zero grace period: ask until the member's clock has moved past it.
	var old answer
	var oldRecs []any
	for deadline := time.Now().Add(5 * time.Second); ; {
		old = expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/records/old?grace_ms=0&limit=10"), nil), 200, "old records")
		if oldRecs = old.body["records"].([]any); len(oldRecs) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if len(oldRecs) != 2 {
		t.Fatalf("want 2 old records: %s", old.raw)
	}
	if first := oldRecs[0].(map[string]any)["uid"]; fmt.Sprint(first) != fmt.Sprint(l.num("uid")) {
		t.Fatalf("old records: newest replaced_at first, want uid %d first: %s", l.num("uid"), old.raw)
	}
	expect(t, call(t, "DELETE", m.url(fmt.Sprintf("/v1/services/sync-1.5/records/%d", uid)), nil), 204, "delete record")
	expect(t, call(t, "DELETE", m.url(fmt.Sprintf("/v1/services/sync-1.5/records/%d", uid)), nil), 404, "delete record twice")

	// Re-allocated after replace, carrying generation 5.
	re := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": testEmail}), 201, "re-allocate")
	if re.num("generation") != 5 {
		t.Fatalf("re-allocation must carry the stored generation: %s", re.raw)
	}

	expect(t, call(t, "PATCH", m.url(fmt.Sprintf("/v1/services/sync-1.5/nodes/%d", n2.num("id"))), map[string]any{"downed": true}), 200, "down node 2")
	expect(t, call(t, "PATCH", m.url(fmt.Sprintf("/v1/services/sync-1.5/nodes/%d", n2.num("id"))), map[string]any{"node": "https://x"}), 400, "patch other field")
	un := expect(t, call(t, "POST", m.url(fmt.Sprintf("/v1/services/sync-1.5/nodes/%d/unassign", n1.num("id"))), nil), 200, "unassign")
	if un.num("unassigned") < 1 {
		t.Fatalf("unassign: %s", un.raw)
	}
	expect(t, call(t, "DELETE", m.url(fmt.Sprintf("/v1/services/sync-1.5/nodes/%d", n2.num("id"))), nil), 200, "remove node")
	expect(t, call(t, "DELETE", m.url("/v1/services/sync-1.5"), nil), 409, "delete service with nodes")

	// The account delete event retires live users; the retired user is never
	// re-allocated.
	const liveEmail = "live@accounts.example.com"
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": liveEmail}), 201, "allocate live user")
	ev := expect(t, call(t, "POST", m.url("/v1/events"), map[string]any{"event": "delete", "email": liveEmail}), 200, "delete event")
	if ev.num("applied") != 1 {
		t.Fatalf("delete event: %s", ev.raw)
	}
	ret := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": liveEmail}), 200, "allocate retired")
	if !strings.Contains(ret.raw, `"generation":9223372036854775807`) {
		t.Fatalf("retired generation must be MAX_GENERATION exactly: %s", ret.raw)
	}
	st := expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/stats"), nil), 200, "stats")
	if st.num("nodes") != 1 || st.num("users") != 0 {
		t.Fatalf("stats: %s", st.raw)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/v1/cluster"} {
		expect(t, call(t, "GET", m.url(p), nil), 200, p)
	}

	if code := m.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
}

// TestAcknowledgedWritesSurviveKill9: every allocation acknowledged before
// kill -9 is there after a restart from the same data directory, and the
// restart does not bootstrap a second cluster.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	m := newMember(t, "durable", "a")
	m.Flags = append(m.Flags, "--snapshot-threshold", "64") // restart goes through a snapshot and a log tail
	m.start()
	m.waitReady(20 * time.Second)
	seedService(t, m, 100000)

	writers := testutil.StartWriters(8, -1, func(w, i int) (string, int64, bool, bool) {
		email := fmt.Sprintf("user-%d-%d@example.com", w, i)
		a, err := tryCall("POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": email})
		if err != nil {
			return email, 0, false, false // the process died mid-request: outcome unknown, not acknowledged
		}
		return email, a.num("uid"), a.code == 201, true
	})
	time.Sleep(1500 * time.Millisecond)
	m.kill9()
	acked := writers.Stop()
	if len(acked) < 50 {
		t.Fatalf("only %d acknowledged writes before kill -9; the test proves little", len(acked))
	}

	m.start()
	m.waitReady(30 * time.Second)
	for email, uid := range acked {
		a := expect(t, call(t, "GET", userURL(m, "sync-1.5", email, "?consistency=linearizable"), nil), 200, "acknowledged user after restart")
		if a.num("uid") != uid {
			t.Fatalf("%s: uid %d after restart, acknowledged %d", email, a.num("uid"), uid)
		}
	}
	cl := expect(t, call(t, "GET", m.url("/v1/cluster"), nil), 200, "cluster")
	if n := len(cl.body["members"].([]any)); n != 1 {
		t.Fatalf("restart must not bootstrap anew: %s", cl.raw)
	}
	nodes := expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/nodes"), nil), 200, "nodes")
	load := nodes.body["nodes"].([]any)[0].(map[string]any)["current_load"]
	t.Logf("%d acknowledged allocations survived kill -9; node current_load %v", len(acked), load)
}

// TestServerFlagsAndEnvironment: WIMMS_<FLAG> configures the server, and bad
// flags fail fast with a clear message.
func TestServerFlagsAndEnvironment(t *testing.T) {
	m := newMember(t, "envmember", "z")
	cmd := testutil.Wimms(t, "server")
	cmd.Env = append(cmd.Env,
		"WIMMS_ID=fromenv", "WIMMS_DATA_DIR="+m.DataDir, "WIMMS_HTTP_ADDR="+m.HTTPAddr,
		"WIMMS_RAFT_ADDR="+m.RaftAddr, "WIMMS_GOSSIP_ADDR="+m.GossipAddr, "WIMMS_ZONE=zone-env")
	logf, _ := os.Create(m.LogPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	testutil.Start(t, cmd)
	eventually(t, 20*time.Second, "env-configured member ready", func() error {
		a, err := tryCall("GET", m.url("/v1/cluster"), nil)
		if err != nil {
			return err
		}
		if !strings.Contains(a.raw, `"fromenv"`) || !strings.Contains(a.raw, `"zone-env"`) {
			return fmt.Errorf("cluster view %s", a.raw)
		}
		return nil
	})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--raft-addr", "nonsense"}, "--raft-addr"},
		{[]string{"server", "--log-level", "loud"}, "--log-level"},
		{[]string{"server", "--http-addr", "0.0.0.0:1"}, "--http-advertise"},
		{[]string{"server", "--http-addr", "8080"}, `--http-addr "8080": want HOST:PORT`},
		{[]string{"server", "--gossip-addr", "127.0.0.1:99999"}, `--gossip-addr "127.0.0.1:99999": want HOST:PORT`},
	} {
		out, code := testutil.RunWimms(t, append(tc.args, "--data-dir", t.TempDir())...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit status %d, out=%s; want a failure naming %s", tc.args, code, out, tc.want)
		}
	}
}
