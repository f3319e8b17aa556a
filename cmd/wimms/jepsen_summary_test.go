package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/jepsen"
	"github.com/wimms-dev/wimms/jepsen/checker"
)

// The summary tells a first-time reader that fail and info are expected
// under faults, and lists each anomaly where it happened.
func TestJepsenSummarySaysWhatFailAndInfoMean(t *testing.T) {
	var out bytes.Buffer
	printJepsenSummary(&out, jepsen.Summary{
		Verdict: checker.VerdictInvalid, Ops: 10, OpsOK: 6, OpsFail: 3, OpsInfo: 1,
		Anomalies: []checker.Anomaly{{Kind: "capacity", NodeID: 2, Detail: "load 11 above capacity 10"}},
	}, "out/dir")
	got := out.String()
	for _, want := range []string{"(6 ok, 3 fail, 1 info)", "fail: refused with nothing changed", "info: outcome unknown",
		"only anomalies are", "capacity node 2: load 11 above capacity 10", "see out/dir"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}
