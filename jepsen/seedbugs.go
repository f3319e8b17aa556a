package jepsen

// SeedBug is a bug the server can be started with (--seed-bug) to prove
// that the checker can fail. Nemesis is the fault list that exposes it.
type SeedBug struct {
	Name        string
	Description string
	Nemesis     string
	// CaughtBy names the anomalies expected when it is caught.
	CaughtBy []string
}

// SeedBugs lists the server's seeded bugs.
func SeedBugs() []SeedBug {
	return []SeedBug{
		{
			Name:        "stale-linearizable-read",
			Description: "linearizable reads are served from the member's local state, without ReadIndex",
			Nemesis:     string(FaultPartitionLeader),
			CaughtBy:    []string{AnomalyNotLinearizable},
		},
		{
			Name:        "ack-before-commit",
			Description: "the leader acknowledges a write from a dry run, without waiting for it to commit",
			Nemesis:     string(FaultPartitionLeader),
			CaughtBy:    []string{AnomalyNotLinearizable, AnomalyLostWrite, AnomalyUIDReused},
		},
		{
			Name:        "alloc-skip-capacity",
			Description: "allocation ignores capacity > current_load when choosing a node",
			Nemesis:     string(FaultPause),
			CaughtBy:    []string{AnomalyOverCapacity},
		},
		{
			Name:        "delete-keeps-load",
			Description: "deleting a record leaves its node's current_load as it was (chaos build only)",
			Nemesis:     string(FaultKill),
			CaughtBy:    []string{AnomalyLoadMismatch},
		},
	}
}

func knownSeedBug(name string) bool {
	for _, b := range SeedBugs() {
		if b.Name == name {
			return true
		}
	}
	return false
}
