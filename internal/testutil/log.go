// Package testutil holds helpers shared by the tests of several packages:
// one way to build and run the wimms binary and other programs
// (binary.go, command.go), logs, free ports, waiting and Docker checks.
package testutil

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Logger writes to t.Log at Warn, or at the level WIMMS_TEST_LOG names,
// until the test ends: raft and memberlist goroutines may still log while
// shutting down, when t.Log would panic. Its cleanup is registered when it
// is made, so call it before opening what logs to it: that cleanup then
// runs after theirs.
func Logger(t testing.TB) hclog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := hclog.Warn
	if l := os.Getenv("WIMMS_TEST_LOG"); l != "" {
		level = hclog.LevelFromString(l)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: level, Output: w})
}

type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
