package jepsen

import (
	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// SeedBug is a deliberate bug that a chaos build of the server can be
// started with (--seed-bug), to prove that the checker can fail. What the
// bug does is the chaos build's business (`wimms server --list-seed-bugs`);
// the harness knows how to expose it and how it must be caught.
// TestSeedBugsAgreeWithChaosBuild keeps both lists of names equal.
type SeedBug struct {
	Name string
	// Nemesis is the fault list that exposes it.
	Nemesis string
	// CaughtBy names the anomalies expected when it is caught.
	CaughtBy []string
	// CoreWorkload runs it without the lifecycle writes (node adds and
	// changes, retire, replace, deletes, events): a bug that shows only
	// once the nodes are full is hidden by a workload that keeps adding
	// nodes and freeing capacity.
	CoreWorkload bool
}

// SeedBugs lists the seeded bugs the harness knows how to catch.
func SeedBugs() []SeedBug {
	return []SeedBug{
		{
			Name:     "stale-linearizable-read",
			Nemesis:  string(nemesis.FaultPartitionLeader),
			CaughtBy: []string{checker.AnomalyNotLinearizable},
		},
		{
			Name:     "ack-before-commit",
			Nemesis:  string(nemesis.FaultPartitionLeader),
			CaughtBy: []string{checker.AnomalyNotLinearizable, checker.AnomalyLostWrite, checker.AnomalyUIDReused},
		},
		{
			Name:         "alloc-skip-capacity",
			Nemesis:      string(nemesis.FaultPause),
			CaughtBy:     []string{checker.AnomalyOverCapacity},
			CoreWorkload: true,
		},
		{
			// Every member of a restart-all drops the newest entries, the
			// acknowledged writes among them: only counting what the final
			// read lacks catches all of it.
			Name:     "drop-tail-on-open",
			Nemesis:  string(nemesis.FaultRestartAll),
			CaughtBy: []string{checker.AnomalyLostAckWrite},
		},
		{
			Name:     "delete-keeps-load",
			Nemesis:  string(nemesis.FaultKill),
			CaughtBy: []string{checker.AnomalyLoadMismatch},
		},
	}
}

func knownSeedBug(name string) bool {
	_, ok := seedBugNamed(name)
	return ok
}

func seedBugNamed(name string) (SeedBug, bool) {
	for _, b := range SeedBugs() {
		if b.Name == name {
			return b, true
		}
	}
	return SeedBug{}, false
}
