package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

// TestSmokeCompareAlternates runs --compare's engine with the same binary
// on both sides against one-member clusters: rounds alternate which binary
// goes first, every run is counted, and the medians and ratios come from
// the runs.
func TestSmokeCompareAlternates(t *testing.T) {
	bin := testutil.WimmsPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	res, err := Compare(ctx, CompareConfig{
		Old: bin, New: bin, Rounds: 2, Members: 1, Target: TargetLeader,
		// Enough operations that the members' CPU time (counted in 10 ms
		// ticks) is above zero in every run.
		Run: Config{Workload: WorkloadAlloc, Ops: 300, Clients: 2, Setup: true, Nodes: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range res.Runs {
		order = append(order, r.Binary)
		if r.Summary.Ops != 300 || r.Summary.Errors != 0 || len(r.Targets) != 1 {
			t.Fatalf("run %+v: ops %d errors %d targets %v", r, r.Summary.Ops, r.Summary.Errors, r.Targets)
		}
	}
	if got := strings.Join(order, ","); got != "old,new,new,old" {
		t.Fatalf("run order %s, want old,new,new,old", got)
	}
	if res.OldStats.Throughput <= 0 || res.NewStats.Throughput <= 0 || res.ThroughputRatio <= 0 {
		t.Fatalf("medians %+v %+v ratio %v", res.OldStats, res.NewStats, res.ThroughputRatio)
	}
	if res.OldStats.MembersMicrosPerOp <= 0 || res.NewStats.MembersMicrosPerOp <= 0 || res.MembersCPURatio <= 0 {
		t.Fatalf("members' cpu per op: old %+v new %+v ratio %v", res.OldStats, res.NewStats, res.MembersCPURatio)
	}
	var out bytes.Buffer
	if err := res.WriteText(&out); err != nil || !strings.Contains(out.String(), "ratio new/old: throughput") ||
		!strings.Contains(out.String(), "members' CPU per op new/old") {
		t.Fatalf("text %q (%v)", out.String(), err)
	}
}

// TestSmokeCompareBadFlagsExitTwo: flags that make no sense with (or
// without) --compare are refused before anything is spawned.
func TestSmokeCompareBadFlagsExitTwo(t *testing.T) {
	bin := testutil.WimmsPath(t)
	for _, args := range [][]string{
		{"--compare", bin},
		{"--compare", bin + ",/no/such/wimms"},
		{"--compare", bin + "," + bin, "--addrs", "127.0.0.1:1"},
		{"--compare", bin + "," + bin, "--rounds", "0"},
		{"--rounds", "2"},
		{"--target", "leader"},
		{"--spawn", "3", "--target", "everyone"},
	} {
		checkBenchRefuses(t, args)
	}
}
