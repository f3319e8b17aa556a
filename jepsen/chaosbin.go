package jepsen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/internal/launch"
)

// Seeded bugs exist only in a chaos build of wimms (go build -tags chaos).
// A chaos binary lists its bugs with `wimms server --list-seed-bugs`; a
// default build has no such flag and refuses it.

const modulePath = "github.com/wimms-dev/wimms"

// SeedBugsOf returns the seeded bugs bin was built with; an error means it
// is not a chaos build (or cannot be run).
func SeedBugsOf(ctx context.Context, bin string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "server", "--list-seed-bugs")
	cmd.Env = launch.Env()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s is not a chaos build (server --list-seed-bugs: %w)", bin, err)
	}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s lists no seeded bugs", bin)
	}
	return names, nil
}

// BuildChaosBinary builds a static chaos binary of ./cmd/wimms from the
// source tree that contains dir into out.
func BuildChaosBinary(ctx context.Context, dir, out string) error {
	root, err := moduleRoot(dir)
	if err != nil {
		return err
	}
	gobin := launch.GoTool()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-tags", "chaos", "-trimpath", "-o", out, "./cmd/wimms")
	cmd.Dir = root
	cmd.Env = launch.GoEnv("CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags chaos ./cmd/wimms in %s: %w: %s", root, err, lastLines(b, 5))
	}
	return nil
}

// moduleRoot is dir or the nearest parent holding wimms's go.mod.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+modulePath {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no wimms source tree (go.mod of %s) at or above %s: build one with `make chaos-build` and pass --bin bin/wimms-chaos", modulePath, dir)
		}
	}
}

// chaosBinary returns a binary that has the seeded bug: bin when it is a
// chaos build that knows bug, otherwise one built into tmpDir from the
// source tree around the working directory.
func chaosBinary(ctx context.Context, bin, bug, tmpDir string, progress func(string, ...any)) (string, error) {
	if bin != "" {
		names, err := SeedBugsOf(ctx, bin)
		switch {
		case err == nil && slices.Contains(names, bug):
			return bin, nil
		case err == nil:
			return "", fmt.Errorf("seed bug %q: chaos binary %s has only %s", bug, bin, strings.Join(names, ", "))
		}
		progress("%v; building one with go build -tags chaos", err)
	}
	out := filepath.Join(tmpDir, "wimms-chaos")
	if err := BuildChaosBinary(ctx, ".", out); err != nil {
		return "", fmt.Errorf("seed bug %q needs a chaos build of wimms: %w", bug, err)
	}
	names, err := SeedBugsOf(ctx, out)
	if err != nil {
		return "", err
	}
	if !slices.Contains(names, bug) {
		return "", fmt.Errorf("unknown seed bug %q: the chaos build has %s", bug, strings.Join(names, ", "))
	}
	return out, nil
}

var errSeedBugWithImage = errors.New("--seed-bug with --image: the harness cannot tell whether the image holds a chaos build; give --bin a chaos binary (make chaos-build) to build the image from")
