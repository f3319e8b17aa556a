//go:build chaos

package fsm

// deleteKeepsLoad is the seeded bug "delete-keeps-load": deleting a record
// leaves its node's current_load and available as they were, so the load
// counts records that are gone (docs/spec.md §1 invariant 3).
var deleteKeepsLoad bool

// SetDeleteKeepsLoad switches the seeded bug "delete-keeps-load" on or off
// for every state machine of the process. Call it before the first Apply:
// members of one cluster must all run with the same bugs.
func SetDeleteKeepsLoad(on bool) { deleteKeepsLoad = on }
