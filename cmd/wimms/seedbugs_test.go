//go:build !chaos

package main

import (
	"os"
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
	// The end-to-end part: testutil.WimmsPath skips it under -short.
	bin := testutil.WimmsPath(t)
	for _, args := range [][]string{
		{"server", "--seed-bug", "ack-before-commit"},
		{"server", "--list-seed-bugs"},
	} {
		out, err := exec.Command(bin, append(args, "--data-dir", t.TempDir())...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unknown flag: "+args[1]) {
			t.Errorf("wimms %s: err=%v out=%s; want an unknown flag error", strings.Join(args, " "), err, out)
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
	log, err := os.ReadFile(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "SEEDED BUG") || !strings.Contains(string(log), "serving") {
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
	out, err := cmd.CombinedOutput()
	t.Logf("go test -tags chaos -run ^TestSeedBug:\n%s", out)
	if err != nil {
		t.Fatalf("chaos-build seeded-bug tests failed: %v", err)
	}
	for _, pkg := range []string{"fsm", "store", "cmd/wimms"} {
		if !strings.Contains(string(out), "ok  \tgithub.com/wimms-dev/wimms/"+pkg) {
			t.Errorf("package %s did not pass under -tags chaos", pkg)
		}
	}
}
