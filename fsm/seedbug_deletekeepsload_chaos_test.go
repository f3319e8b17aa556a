//go:build chaos

package fsm

import "testing"

// The seeded bug must really break invariant 3, and only while it is on.
func TestDeleteKeepsLoadSeededBug(t *testing.T) {
	for _, on := range []bool{false, true} {
		SetDeleteKeepsLoad(on)
		f := New(Options{})
		ts := int64(1_700_000_000_000)
		apply := func(cmd Command) Result {
			ts++
			cmd.TS = ts
			res := f.Apply(cmd)
			if res.Err != nil {
				t.Fatalf("%+v: %v", cmd, res.Err)
			}
			return res
		}
		apply(Command{Op: OpPutService, Service: "sync-1.5", Pattern: SomeString("{node}/{uid}")})
		node := apply(Command{Op: OpAddNode, Service: "sync-1.5", NodeURL: "https://n1", Capacity: SomeInt64(5)}).Node
		first := apply(Command{Op: OpAllocate, Service: "sync-1.5", Email: "a@x", ClientState: SomeString("aa")}).User
		apply(Command{Op: OpUpdateUser, Service: "sync-1.5", Email: "a@x", ClientState: SomeString("bb")})
		apply(Command{Op: OpDeleteRecord, Service: "sync-1.5", UID: first.UID})
		n, err := f.GetNode("sync-1.5", node.ID)
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
	}
	SetDeleteKeepsLoad(false)
}
