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

// TestSeedBugDeleteKeepsLoadIsCaughtByInvariants: deleting one of two
// records leaves the node's load at 2, and the invariant check says so;
// with the bug off the load drops to 1 and nothing is reported.
func TestSeedBugDeleteKeepsLoadIsCaughtByInvariants(t *testing.T) {
	t.Cleanup(func() { SetSeedBugs(SeedBugs{}) })
	for _, on := range []bool{false, true} {
		SetSeedBugs(SeedBugs{DeleteKeepsLoad: on})
		f := New(Options{})
		tr := newTracker()
		ts := t0
		var node, first int64
		for _, cmd := range []Command{
			{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern)},
			{Op: OpAddNode, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(5)},
			{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString("aa")},
			{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("bb")},
			{Op: OpDeleteRecord, Service: svcA},
		} {
			ts++
			cmd.TS = ts
			if cmd.Op == OpDeleteRecord {
				cmd.UID = first
			}
			before := f.Fork()
			res := f.Apply(cmd)
			if res.Err != nil {
				t.Fatalf("bug on=%v: %+v: %v", on, cmd, res.Err)
			}
			tr.observe(before.st, cmd, res)
			switch cmd.Op {
			case OpAddNode:
				node = res.Node.ID
			case OpAllocate:
				first = res.User.UID
			}
		}
		n, err := f.GetNode(svcA, node)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if on {
			want = 2
		}
		if n.CurrentLoad != want {
			t.Fatalf("bug on=%v: current_load %d after deleting one of two records, want %d", on, n.CurrentLoad, want)
		}
		v := invariantViolations(f, tr)
		if on != (len(v) > 0) {
			t.Fatalf("bug on=%v: invariant violations %q", on, v)
		}
	}
}
