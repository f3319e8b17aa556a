//go:build !chaos

package fsm

// skipCapacityCheck is the seeded bug "alloc-skip-capacity", which only a
// chaos build can switch on (seedbugs_chaos.go). Here it is a constant, so
// the allocation path compiles to the correct code alone.
const skipCapacityCheck = false
