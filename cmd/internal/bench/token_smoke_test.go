package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestSmokeTokenWorkload signs accounts in through a real member's token
// server, spawned with the key and secrets Spawn makes: every sign-in must
// succeed, the first of each account creating its user.
func TestSmokeTokenWorkload(t *testing.T) {
	bin := testutil.WimmsPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := Spawn(ctx, SpawnConfig{Members: 1, Bin: bin, TokenServer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cl.Stop(); err != nil {
			t.Errorf("member did not stop cleanly: %v", err)
		}
	}()
	if cl.TokenKey() == nil {
		t.Fatal("a cluster spawned with TokenServer has no signing key")
	}
	const users, ops = 20, 200
	s, err := Run(ctx, Config{Addrs: cl.HTTPAddrs(), Workload: WorkloadToken, Service: "sync-1.5", Setup: true, Nodes: 2,
		Users: users, Clients: 4, Ops: ops, TokenKey: cl.TokenKey()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != ops || s.OK != ops || s.Errors != 0 {
		t.Fatalf("ops %d ok %d errors %d %v: want %d successful sign-ins", s.Ops, s.OK, s.Errors, s.ErrorsByStatus, ops)
	}
	if s.OpsByKind["token"].OK != ops || len(s.AnsweredBy) == 0 {
		t.Fatalf("ops by kind %+v, answered by %v: want %d token sign-ins answered by the member", s.OpsByKind, s.AnsweredBy, ops)
	}

	// The command against a running cluster: --token-jwks-key names the
	// PEM of the key the members trust.
	pem, err := cl.TokenKey().PEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := testutil.TempFile(t, "bench-key.pem", pem)
	out, stderr, code := testutil.RunSplit(t, testutil.WimmsContext(ctx, t, "bench", "--yes", "--addrs", strings.Join(cl.HTTPAddrs(), ","), "--workload", "token",
		"--token-jwks-key", keyFile, "--service", "sync-1.5", "--nodes", "2", "--users", "5", "--clients", "2",
		"--ops", "50", "--warmup", "0s", "--quiet", "--json"))
	if code != 0 {
		t.Fatalf("wimms bench --token-jwks-key: exit status %d; stderr: %s", code, stderr)
	}
	var got Summary
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if got.Workload != "token" || got.OK != 50 || got.Errors != 0 {
		t.Fatalf("command summary: workload %s ok %d errors %d %v: want 50 token sign-ins, no errors", got.Workload, got.OK, got.Errors, got.ErrorsByStatus)
	}
}
