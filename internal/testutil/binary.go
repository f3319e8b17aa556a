package testutil

import (
	"os"
	"sync"
	"testing"

	"github.com/wimms-dev/wimms/internal/launch"
)

// Binary is a program that the tests of a package build at most once per
// test process, on first use, in a temporary directory of its own:
// building wimms takes long, and every test that runs it can share one
// copy.
type Binary struct {
	// Build builds the program into dir and returns its path.
	Build func(dir string) (string, error)

	once sync.Once
	path string
	err  error
}

// builtDirs are the directories of the binaries this test process built,
// for Main to remove.
var builtDirs struct {
	sync.Mutex
	list []string
}

// Path returns the program's path, building it first if no test has yet.
// Under -short it skips t instead: building and running the real binary
// is what -short leaves out. A failed build fails t.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real wimms binary: not with -short")
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "wimms-test-bin-")
		if err != nil {
			b.err = err
			return
		}
		builtDirs.Lock()
		builtDirs.list = append(builtDirs.list, dir)
		builtDirs.Unlock()
		b.path, b.err = b.Build(dir)
	})
	if b.err != nil {
		t.Fatalf("building the binary under test: %v", b.err)
	}
	return b.path
}

// wimms is this module's ./cmd/wimms as launch.Build builds it.
var wimms = &Binary{Build: func(dir string) (string, error) { return launch.Build(dir) }}

// WimmsPath is the path of this module's ./cmd/wimms, built once per test
// process and shared by its tests; under -short it skips t (see Path).
func WimmsPath(t testing.TB) string {
	t.Helper()
	return wimms.Path(t)
}

// Main is the TestMain of a package whose tests build binaries: it runs
// the tests, removes every binary they built, and exits with their status.
func Main(m *testing.M) {
	code := m.Run()
	for _, dir := range builtDirs.list {
		_ = os.RemoveAll(dir) // best effort: a temporary directory left behind fails nothing
	}
	os.Exit(code)
}
