package jepsen

import (
	"testing"
	"time"

	"github.com/wimms-dev/wimms/jepsen/history"
)

// minOKOpsPerSecond is the floor of judged successful operations per
// second actually run for a chaos test to count as having exercised the
// cluster. It is a floor on how much history the checker saw, not a
// performance claim: it scales with the time the run really took, so a
// loaded machine that runs slower still passes, and it is low enough that
// only a run whose clients mostly failed or stalled misses it.
const minOKOpsPerSecond = 5

// checkExercised fails a run too thin to prove anything: fewer faults than
// minFaults, no successful allocation or lookup, or fewer successful
// operations than minOKOpsPerSecond per second of the run.
func checkExercised(t *testing.T, sum Summary, minFaults int) {
	t.Helper()
	if sum.NemesisEvents < minFaults {
		t.Errorf("too little exercised: %d faults, want at least %d", sum.NemesisEvents, minFaults)
	}
	elapsed, err := time.ParseDuration(sum.Elapsed)
	if err != nil {
		t.Errorf("summary elapsed %q: %v", sum.Elapsed, err)
		return
	}
	floor := int(elapsed.Seconds() * minOKOpsPerSecond)
	if sum.OpsOK < floor || sum.OpsByKind[history.OpAllocate][history.OutcomeOK] == 0 || sum.OpsByKind[history.OpGet][history.OutcomeOK] == 0 {
		t.Errorf("too little work checked: %d ok ops in %s (floor %d), %v", sum.OpsOK, elapsed, floor, sum.OpsByKind)
	}
}

func TestCheckExercisedScalesWithTimeRun(t *testing.T) {
	kinds := map[history.OpKind]map[history.Outcome]int{history.OpAllocate: {history.OutcomeOK: 1}, history.OpGet: {history.OutcomeOK: 1}}
	for _, c := range []struct {
		name   string
		sum    Summary
		passes bool
	}{
		{"slow but enough for its time", Summary{NemesisEvents: 3, OpsOK: 498, Elapsed: "31.2s", OpsByKind: kinds}, true},
		{"too few for its time", Summary{NemesisEvents: 3, OpsOK: 100, Elapsed: "31.2s", OpsByKind: kinds}, false},
		{"too few faults", Summary{NemesisEvents: 2, OpsOK: 498, Elapsed: "31.2s", OpsByKind: kinds}, false},
		{"no lookup succeeded", Summary{NemesisEvents: 3, OpsOK: 498, Elapsed: "31.2s", OpsByKind: map[history.OpKind]map[history.Outcome]int{history.OpAllocate: {history.OutcomeOK: 498}}}, false},
	} {
		inner := &testing.T{}
		ran := make(chan struct{})
		go func() { defer close(ran); checkExercised(inner, c.sum, 3) }()
		<-ran
		if inner.Failed() == c.passes {
			t.Errorf("%s: failed=%v, want passes=%v", c.name, inner.Failed(), c.passes)
		}
	}
}
