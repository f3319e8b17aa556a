//go:build chaos

package fsm

var (
	// skipCapacityCheck is the seeded bug "alloc-skip-capacity": allocation
	// ignores capacity > current_load, and the capacity release keeps
	// handing full nodes ceil(capacity × rate), so allocations overfill
	// nodes.
	skipCapacityCheck bool
	// deleteKeepsLoad is the seeded bug "delete-keeps-load": deleting a
	// record leaves its node's current_load and available as they were, so
	// the load counts records that are gone (docs/spec.md §1 invariant 3).
	deleteKeepsLoad bool
)

// SeedBugs are deliberate bugs of the state machine. They exist only in a
// chaos build (go build -tags chaos), so that the chaos harness can prove
// that its checker fails.
type SeedBugs struct {
	SkipCapacityCheck bool
	DeleteKeepsLoad   bool
}

// SetSeedBugs switches seeded bugs on or off for every state machine of the
// process. Call it before the first Apply: members of one cluster must all
// run with the same bugs, and a switch during Apply is a data race.
func SetSeedBugs(b SeedBugs) {
	skipCapacityCheck = b.SkipCapacityCheck
	deleteKeepsLoad = b.DeleteKeepsLoad
}
