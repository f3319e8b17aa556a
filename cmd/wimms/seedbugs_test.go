//go:build !chaos

package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestDefaultBuildHasNoSeedBugs: a release binary has no way to switch a
// seeded bug on: no flag, and WIMMS_SEED_BUG in its environment does
// nothing.
func TestDefaultBuildHasNoSeedBugs(t *testing.T) {
	if seedBugFlags != nil {
		t.Fatal("the default build wires seeded-bug flags")
	}
	fl := newServerCmd().Flags()
	for _, name := range []string{"seed-bug", "list-seed-bugs"} {
		if fl.Lookup(name) != nil {
			t.Errorf("wimms server has --%s in the default build", name)
		}
	}
	// The end-to-end part: it needs the binary, so -short skips it here.
	for _, args := range [][]string{
		{"server", "--seed-bug", "ack-before-commit"},
		{"server", "--list-seed-bugs"},
	} {
		out, code := testutil.RunWimms(t, append(args, "--data-dir", t.TempDir())...)
		if code == 0 || !strings.Contains(out, "unknown flag: "+args[1]) {
			t.Errorf("wimms %s: exit status %d, out=%s; want an unknown flag error", strings.Join(args, " "), code, out)
		}
	}

	// A chaos build would switch the bug on and say so in its log.
	m := newMember(t, "nobug", "z")
	m.Environ = []string{"WIMMS_SEED_BUG=ack-before-commit"}
	m.start()
	m.waitReady(30 * time.Second)
	if code := m.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if log := m.log(t); strings.Contains(log, "SEEDED BUG") || !strings.Contains(log, "serving") {
		t.Fatalf("with WIMMS_SEED_BUG set, the member's log:\n%s", log)
	}
}

// TestSeedBugTestsPassInChaosBuild runs the tests of the seeded bugs
// themselves, which exist only in a chaos build, so that `go test ./...`
// still proves that each bug does what the chaos harness must catch.
func TestSeedBugTestsPassInChaosBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the chaos-build tests of fsm, store and cmd/wimms")
	}
	cmd := exec.Command(launch.GoTool(), "test", "-tags", "chaos", "-count=1", "-run", "^TestSeedBug",
		"./fsm/", "./store/", "./cmd/wimms/")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = launch.GoEnv()
	out, code := testutil.Run(t, cmd)
	t.Logf("go test -tags chaos -run ^TestSeedBug:\n%s", out)
	if code != 0 {
		t.Fatalf("chaos-build seeded-bug tests failed: exit status %d", code)
	}
	for _, pkg := range []string{"fsm", "store", "cmd/wimms"} {
		if !strings.Contains(out, "ok  \tgithub.com/wimms-dev/wimms/"+pkg) {
			t.Errorf("package %s did not pass under -tags chaos", pkg)
		}
	}
}
