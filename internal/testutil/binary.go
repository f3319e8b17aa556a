package testutil

import (
	"os"
	"sync"
	"testing"

	"github.com/wimms-dev/wimms/internal/launch"
)

// Binary is a program that the tests of a package build at most once per
// test process, on first use, in a temporary directory of their own:
// building wimms takes long, and every test that runs it can share one
// copy.
type Binary struct {
	// Build builds the program into dir and returns its path.
	Build func(dir string) (string, error)

	once sync.Once
	dir  string
	path string
	err  error
}

// Wimms is this module's ./cmd/wimms, built by launch.Build with tags.
func Wimms(tags ...string) *Binary {
	return &Binary{Build: func(dir string) (string, error) { return launch.Build(dir, tags...) }}
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
		b.dir, b.err = os.MkdirTemp("", "wimms-test-bin-")
		if b.err == nil {
			b.path, b.err = b.Build(b.dir)
		}
	})
	if b.err != nil {
		t.Fatalf("building the binary under test: %v", b.err)
	}
	return b.path
}

// Main is the TestMain of a package whose tests build binaries: it runs
// the tests, removes what they built, and exits with their status.
func Main(m *testing.M, bins ...*Binary) {
	code := m.Run()
	for _, b := range bins {
		if b.dir != "" {
			_ = os.RemoveAll(b.dir) // best effort: a temporary directory left behind fails nothing
		}
	}
	os.Exit(code)
}
