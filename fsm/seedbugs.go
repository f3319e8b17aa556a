//go:build !chaos

package fsm

// The seeded bugs "alloc-skip-capacity" and "delete-keeps-load", which
// only a chaos build can switch on (seedbugs_chaos.go). Here they are
// constants, so allocation and record deletion compile to the correct code
// alone.
const (
	skipCapacityCheck = false
	deleteKeepsLoad   = false
)
