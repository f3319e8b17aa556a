package jepsen

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestSeedBugsAgreeWithChaosBuild: the harness knows how to catch exactly
// the seeded bugs a chaos build has, and a default build has none.
func TestSeedBugsAgreeWithChaosBuild(t *testing.T) {
	ctx := context.Background()
	chaos := chaosServerBin.Path(t)
	built, err := SeedBugsOf(ctx, chaos)
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, b := range SeedBugs() {
		known = append(known, b.Name)
	}
	slices.Sort(built)
	slices.Sort(known)
	if !slices.Equal(built, known) {
		t.Fatalf("the chaos build has seeded bugs %v, the harness knows %v", built, known)
	}

	if got, err := chaosBinary(ctx, chaos, known[0], t.TempDir(), t.Logf); err != nil || got != chaos {
		t.Errorf("chaosBinary(chaos build) = %q, %v; want it used as it is", got, err)
	}
	if _, err := chaosBinary(ctx, chaos, "nope", t.TempDir(), t.Logf); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("chaosBinary with an unknown bug: err = %v", err)
	}
	if names, err := SeedBugsOf(ctx, testutil.WimmsPath(t)); err == nil {
		t.Errorf("the default build lists seeded bugs %v", names)
	}
}

// TestSeedBugOptions: a seeded-bug run may leave the binary to the harness,
// but not hide it in an image, and only names a bug the harness can catch.
func TestSeedBugOptions(t *testing.T) {
	out := t.TempDir()
	if _, err := (Options{OutDir: out, SeedBug: "ack-before-commit"}).withDefaults(); err != nil {
		t.Errorf("seed bug without --bin: %v; want the harness to build one", err)
	}
	if _, err := (Options{OutDir: out}).withDefaults(); err == nil {
		t.Error("no binary and no seed bug: accepted")
	}
	if _, err := (Options{OutDir: out, SeedBug: "nope"}).withDefaults(); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown seed bug: err = %v", err)
	}
	docker := &DockerOptions{Image: "wimms:latest"}
	if _, err := (Options{OutDir: out, SeedBug: "ack-before-commit", Docker: docker}).withDefaults(); !errors.Is(err, errSeedBugWithImage) {
		t.Errorf("seed bug with --image: err = %v, want %v", err, errSeedBugWithImage)
	}
}
