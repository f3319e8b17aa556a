package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// TestSmokeSpawnedCluster runs every workload briefly against a real
// 3-member loopback cluster started by Spawn: requests must succeed, be
// counted, spread over the members, and the cluster must stop cleanly.
func TestSmokeSpawnedCluster(t *testing.T) {
	bin := testutil.WimmsPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := Spawn(ctx, SpawnConfig{Members: 3, Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cl.Stop()
		}
	}()
	addrs := cl.HTTPAddrs()
	if len(addrs) != 3 {
		t.Fatalf("addrs %v", addrs)
	}
	runs := []Config{
		{Workload: WorkloadAlloc, Ops: 150, Setup: true, Nodes: 3},
		{Workload: WorkloadLookup, ReadLevel: ReadStale, Ops: 150, Users: 30},
		{Workload: WorkloadLookup, ReadLevel: ReadLinearizable, Ops: 150, Users: 30},
		{Workload: WorkloadMix, Ops: 150, Users: 30},
	}
	for _, cfg := range runs {
		cfg.Addrs, cfg.Clients = addrs, 6
		s, err := Run(ctx, cfg)
		if err != nil {
			t.Fatalf("%s %s: %v", cfg.Workload, cfg.ReadLevel, err)
		}
		if s.Ops != cfg.Ops || s.Errors != 0 {
			t.Fatalf("%s %s: ops %d errors %d %v", cfg.Workload, cfg.ReadLevel, s.Ops, s.Errors, s.ErrorsByStatus)
		}
		for _, m := range s.PerMember {
			if m.OK == 0 {
				t.Fatalf("%s: member %s served nothing: %+v", cfg.Workload, m.Addr, s.PerMember)
			}
		}
		if len(s.AnsweredBy) == 0 {
			t.Fatalf("%s: no X-Wimms-Member header seen", cfg.Workload)
		}
	}
	dir := cl.dir
	stopped = true
	if err := cl.Stop(); err != nil {
		t.Fatalf("members did not stop cleanly on SIGTERM: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp dir %s not removed: %v", dir, err)
	}
}

// TestSmokeBadFlagsExitTwo checks the command's contract for bad flags.
func TestSmokeBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--workload", "write"},
		{"--clients", "0"},
		{"--workload", "mix", "--mix", "login=x"},
		{"--workload", "alloc", "--read-level", "stale"},
		{"--ops", "10", "--duration", "1s"},
		{"--spawn", "3", "--addrs", "127.0.0.1:1"},
		{"--workload", "token"}, // against --addrs without --token-jwks-key
		{"--workload", "mix", "--token-jwks-key", "key.pem"},
		{"--workload", "token", "--spawn", "1", "--token-jwks-key", "key.pem"},
		{"--workload", "token", "--token-jwks-key", "/nonexistent/key.pem"},
		{"--no-such-flag"},
	} {
		checkBenchRefuses(t, args)
	}
}

// checkBenchRefuses runs `wimms bench args`, which must exit with status 2
// and say why on stderr.
func checkBenchRefuses(t *testing.T, args []string) {
	t.Helper()
	_, stderr, code := testutil.RunSplit(t, testutil.Wimms(t, append([]string{"bench"}, args...)...))
	if code != 2 {
		t.Errorf("wimms bench %v: exit status %d, want 2 (stderr %q)", args, code, stderr)
		return
	}
	if !strings.Contains(stderr, "wimms:") {
		t.Errorf("wimms bench %v: no error message on stderr: %q", args, stderr)
	}
}

// A run where every request fails must not look like a result.
func TestSmokeNoSuccessExitsOne(t *testing.T) {
	srv := newFakeAPI("").server(t, "dead")
	dead := hostOf(srv.URL)
	srv.Close()
	stdout, stderr, code := testutil.RunSplit(t, testutil.Wimms(t, "bench", "--yes", "--addrs", dead, "--setup=false", "--ops", "3", "--clients", "1", "--quiet", "--json"))
	if code != 1 || !strings.Contains(stderr, "no operation succeeded") {
		t.Fatalf("exit status %d, stderr %q: want exit 1 saying no operation succeeded", code, stderr)
	}
	if !strings.Contains(stdout, `"errors": 3`) {
		t.Fatalf("the summary must still be printed: %q", stdout)
	}
}

// Against a cluster it did not start, the bench writes nothing unless told
// it may: without --yes and without a terminal to ask on it refuses.
func TestSmokeRefusesToWriteUnasked(t *testing.T) {
	api := newFakeAPI("")
	srv := api.server(t, "m1")
	cmd := testutil.Wimms(t, "bench", "--addrs", hostOf(srv.URL), "--ops", "3", "--clients", "1", "--quiet")
	cmd.Stdin = strings.NewReader("y\n") // a pipe, not a terminal: nobody to ask
	_, stderr, code := testutil.RunSplit(t, cmd)
	if code != 2 || !strings.Contains(stderr, "give --yes") {
		t.Fatalf("exit status %d, stderr %q: want exit 2 asking for --yes", code, stderr)
	}
	if n := api.count("put-service") + api.count("add-node") + api.count("alloc"); n != 0 {
		t.Fatalf("%d writes reached the member without consent", n)
	}
}
