package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/internal/launch"
)

// Wimms is the command that runs the shared wimms binary (WimmsPath) with
// args, in the caller's environment without WIMMS_* variables
// (launch.Env): the binary reads every flag from the environment, and a
// stray WIMMS_API_TOKEN in a developer's shell would change what a test
// runs. Append to its Env, or set its Stdin, before running it with Run,
// RunSplit or Start.
func Wimms(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return WimmsContext(context.Background(), t, args...)
}

// WimmsContext is Wimms, killed when ctx is done: for a run that might not
// end on its own, such as a server that should have refused to start.
func WimmsContext(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, WimmsPath(t), args...)
	cmd.Env = launch.Env()
	return cmd
}

// RunWimms runs wimms with args to its end and returns its output and exit
// code, as Run does.
func RunWimms(t testing.TB, args ...string) (out string, code int) {
	t.Helper()
	return Run(t, Wimms(t, args...))
}

// WimmsOK runs wimms with args, which must exit 0, and returns its output.
func WimmsOK(t testing.TB, args ...string) string {
	t.Helper()
	out, code := RunWimms(t, args...)
	if code != 0 {
		t.Fatalf("wimms %s: exit status %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// Run runs cmd to its end and returns what it wrote on stdout and stderr,
// interleaved as written, and its exit code: -1 when a signal ended it, as
// the kill of a done context does. A command that could not run at all
// fails t: a test asserts on how a program ends, not on whether it exists.
func Run(t testing.TB, cmd *exec.Cmd) (out string, code int) {
	t.Helper()
	b, err := cmd.CombinedOutput()
	return string(b), exitCode(t, cmd, err)
}

// RunSplit is Run keeping stdout and stderr apart, for a test of what a
// command prints where: results on stdout, reasons on stderr.
func RunSplit(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), exitCode(t, cmd, err)
}

func exitCode(t testing.TB, cmd *exec.Cmd, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("running %s: %v", strings.Join(cmd.Args, " "), err)
	return -1
}

// Start starts cmd beside the test and kills it when the test ends: for a
// server started other than the way launch.Member starts one.
func Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", strings.Join(cmd.Args, " "), err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// Tool is the path of the first of names found on PATH. With none of them
// there it skips t, naming the Debian package that has it: such a tool is
// an extra check that a machine without it can do without.
func Tool(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (Debian package %s)", names[0], pkg)
	return ""
}

// TempFile writes data to a file called name in a directory of its own,
// removed when the test ends, and returns its path. Only the test's user
// may read it (0o600), as the token, key and secret files most tests write
// require.
func TempFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	return path
}
