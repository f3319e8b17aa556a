package jepsen

import (
	"testing"

	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// Tail damage on a majority: the run is valid only if each damaged member
// refused to start (exit 3, expected) or came back with every acknowledged
// write intact.
func TestChaosTailDamageKeepsAcknowledgedWrites(t *testing.T) {
	skipUnlessChaos(t)
	sum := validHealthyRun(t, "tail-damage", 21)
	if sum.NemesisKinds[nemesis.FaultTailDamage] == 0 {
		t.Fatalf("no tail damage injected: %+v", sum.Events)
	}
	if sum.LostAcknowledgedWrites != 0 {
		t.Fatalf("valid run with %d lost acknowledged writes", sum.LostAcknowledgedWrites)
	}
}

// A full disk on a member while bounded stale reads go to it: a member
// that answers one must hold every write acknowledged longer than the
// bound ago (stale-read-beyond-bound); refusing is fine. (In a short run
// the filled member usually keeps appending into raft-wal's preallocated
// segment; docs/chaos.md.)
func TestChaosDiskFullWithBoundedStaleReads(t *testing.T) {
	skipUnlessChaos(t)
	if err := nemesis.CheckDiskFull(); err != nil {
		t.Skip(err)
	}
	sum := validHealthyRun(t, "disk-full", 22)
	if sum.NemesisKinds[nemesis.FaultDiskFull] == 0 {
		t.Fatalf("no disk filled: %+v", sum.Events)
	}
	if sum.OpsByKind[history.OpGetStale][history.OutcomeOK] == 0 {
		t.Fatalf("no stale read answered: %v", sum.OpsByKind[history.OpGetStale])
	}
}
