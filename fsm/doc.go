// Package fsm provides the WIMMS state machine: services, nodes and user
// records, every operation of docs/spec.md as one deterministic command
// (Apply), the reads the API serves (Reader), and the binary encodings of
// commands, results and snapshots.
//
// It is pure: no I/O beyond the reader and writer it is handed, no clock,
// no randomness, no goroutines, so every member applying the same log ends
// in the same state. See DESIGN.md in this directory.
package fsm
