// Package jepsen provides the chaos harness behind `wimms jepsen`: it runs
// a cluster of real wimms processes, drives concurrent clients against every
// member while a nemesis injects real faults (partitions, kill -9, pauses,
// member replacement), and judges the history for linearizability and the
// invariants of docs/spec.md §1. It keeps the runner, the cluster targets
// and the reports; the record of operations (history), the model, the
// checker, the faults (nemesis) and the traffic (workload) are its
// sub-packages. See DESIGN.md in this directory.
package jepsen
