// Package store provides one member's replicated state: it owns
// hashicorp/raft (the durable log, snapshots, the transport and the adapter
// around the fsm) and offers writes (Apply) and reads at the three levels of
// docs/spec.md §6 (Read). See DESIGN.md in this directory.
package store
