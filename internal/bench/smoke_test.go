package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
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
	bin := testutil.WimmsPath(t)
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
		checkBenchRefuses(t, bin, args)
	}
}

// checkBenchRefuses runs `wimms bench args`, which must exit with status 2
// and say why on stderr.
func checkBenchRefuses(t *testing.T, bin string, args []string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"bench"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("wimms bench %v: %v, want exit status 2 (stderr %q)", args, err, stderr.String())
		return
	}
	if !strings.Contains(stderr.String(), "wimms:") {
		t.Errorf("wimms bench %v: no error message on stderr: %q", args, stderr.String())
	}
}

// A run where every request fails must not look like a result.
func TestSmokeNoSuccessExitsOne(t *testing.T) {
	bin := testutil.WimmsPath(t)
	srv := newFakeAPI("").server(t, "dead")
	dead := hostOf(srv.URL)
	srv.Close()
	cmd := exec.Command(bin, "bench", "--addrs", dead, "--setup=false", "--ops", "3", "--clients", "1", "--quiet", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "no operation succeeded") {
		t.Fatalf("err %v, stderr %q: want exit 1 saying no operation succeeded", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"errors": 3`) {
		t.Fatalf("the summary must still be printed: %q", stdout.String())
	}
}
