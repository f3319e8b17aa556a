package bench

import (
	"bytes"
	"strings"
	"testing"
)

// Progress written to a file or a pipe is whole lines: no \r redraws that
// turn a log into one unreadable line.
func TestProgressIsPlainLinesOffTerminal(t *testing.T) {
	var out bytes.Buffer
	stop := startProgress(&out, 10, func() (int64, string) { return 5, "5 ops" })
	stop()
	got := out.String()
	if strings.Contains(got, "\r") {
		t.Fatalf("progress off a terminal has \\r: %q", got)
	}
	if got != " 50% 5 ops\n" {
		t.Fatalf("progress = %q, want the final line %q", got, " 50% 5 ops\n")
	}
}
