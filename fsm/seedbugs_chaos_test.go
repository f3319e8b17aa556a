//go:build chaos

package fsm

import (
	"strings"
	"testing"
)

// TestSeedBugSkipCapacityIsCaughtByInvariants: the seeded bug overfills a
// node, and the invariant check says so.
func TestSeedBugSkipCapacityIsCaughtByInvariants(t *testing.T) {
	// Correct behaviour: the full node refuses.
	good := newHarness(t, Options{})
	good.service(svcA)
	good.node(svcA, "https://n", 2)
	good.ok(allocate(svcA, "a@x"))
	good.ok(allocate(svcA, "b@x"))
	good.fails(allocate(svcA, "c@x"), StatusNoNodeAvailable, "")

	SetSeedBugs(SeedBugs{SkipCapacityCheck: true})
	t.Cleanup(func() { SetSeedBugs(SeedBugs{}) })
	f := New(Options{})
	tr := newTracker()
	for _, cmd := range []Command{
		{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")},
		{Op: OpAddNode, Service: svcA, NodeURL: "https://n", Capacity: SomeInt64(2)},
		allocate(svcA, "a@x"), allocate(svcA, "b@x"), allocate(svcA, "c@x"),
	} {
		cmd.TS = t0
		before := f.Fork()
		res := f.Apply(cmd)
		if res.Err != nil {
			t.Fatalf("bugged fsm refused %+v: %v", cmd, res.Err)
		}
		tr.observe(before.st, cmd, res)
	}
	v := invariantViolations(f, tr)
	if len(v) != 1 || !strings.Contains(v[0], "over capacity") {
		t.Fatalf("violations: %q", v)
	}
}
