//go:build chaos

package fsm

// skipCapacityCheck is the seeded bug "alloc-skip-capacity": allocation
// ignores capacity > current_load, and the capacity release keeps handing
// full nodes ceil(capacity × rate), so allocations overfill nodes.
var skipCapacityCheck bool

// SeedBugs are deliberate bugs of the state machine. They exist only in a
// chaos build (go build -tags chaos), so that the chaos harness can prove
// that its checker fails.
type SeedBugs struct {
	SkipCapacityCheck bool
}

// SetSeedBugs switches seeded bugs on or off for every state machine of the
// process. Call it before the first Apply: members of one cluster must all
// run with the same bugs, and a switch during Apply is a data race.
func SetSeedBugs(b SeedBugs) { skipCapacityCheck = b.SkipCapacityCheck }
