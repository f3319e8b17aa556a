package testutil

import (
	"os"
	"testing"
)

// SkipUnlessDocker skips t unless tests against Docker are asked for: they
// build an image and run containers, so never under -short, and only with
// WIMMS_DOCKER=1 (CI sets it where a Docker engine runs). what names the
// test in the reason; needs says what it needs.
func SkipUnlessDocker(t testing.TB, what, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: skipped under -short (builds an image and runs containers)", what)
	}
	if os.Getenv("WIMMS_DOCKER") != "1" {
		t.Skipf("%s: set WIMMS_DOCKER=1 to run it (needs %s)", what, needs)
	}
}
