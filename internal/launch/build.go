package launch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Build compiles this module's ./cmd/wimms into dir and returns the
// binary's path, for tests that run the real server. It finds the module
// from this file's own path, so it works from any package's tests, with
// the go of PATH or else of the toolchain the test was built with. The
// binary is static (CGO_ENABLED=0): the chaos harness copies it into
// containers.
func Build(dir string, tags ...string) (string, error) {
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("build wimms: no source path")
	}
	root := filepath.Join(filepath.Dir(here), "..", "..")
	goBin := GoTool()
	bin := filepath.Join(dir, "wimms")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command(goBin, append(args, "./cmd/wimms")...)
	cmd.Dir = root
	cmd.Env = GoEnv("CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/wimms: %w\n%s", err, out)
	}
	return bin, nil
}

// GoEnv is the environment of a nested go command: this process's, less
// GOFLAGS (flags given to the outer `go test`, such as -run or -count,
// would change what the nested build or test does), plus extra.
func GoEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOFLAGS=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// GoTool is the go command: PATH's, or else the toolchain's that built
// the caller (tests run with a go that may not be on PATH).
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
