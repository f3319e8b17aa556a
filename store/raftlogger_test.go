package store

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRaftLoggerQuietsNormalJoinWarnings(t *testing.T) {
	var out bytes.Buffer
	l := raftLogger{hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info})}.Named("raft").With("k", "v")
	l.Warn("no known peers, aborting election")
	l.Warn("failed to get previous log", "previous-index", uint64(10), "last-index", uint64(3), "error", "log not found")
	if strings.Contains(out.String(), "[WARN]") {
		t.Fatalf("a normal join logged WARN:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "waiting for the leader to add this member") {
		t.Fatalf("the waiting member says nothing at INFO:\n%s", out.String())
	}
	// Real problems stay WARN: a previous entry missing below the last one
	// (removed), and any other message.
	out.Reset()
	l.Warn("failed to get previous log", "previous-index", uint64(2), "last-index", uint64(3), "error", "log not found")
	l.Log(hclog.Warn, "not part of stable configuration, aborting election")
	if got := strings.Count(out.String(), "[WARN]"); got != 2 {
		t.Fatalf("want 2 WARN lines, got %d:\n%s", got, out.String())
	}
}
