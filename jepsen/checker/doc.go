// Package checker judges a chaos run: linearizability of every user's
// history against the model, stale reads (and bounded ones against
// acknowledged writes), docs/spec.md §1's invariants on the final state
// read after healing, and the count of acknowledged writes the final state
// lacks. It turns what it finds into Anomalies and a verdict.
//
// It is apart from the runner so that every judgement can be tested on
// hand-written histories, and apart from the model so that the model's
// tests judge the model alone. It reads a finished history and final
// state and nothing else: it must never talk to a cluster, never call a
// run valid when it could not look (a search timeout or an unread final
// state is an inconclusive anomaly, verdict unknown), and never let an
// unknown outcome count as a success or a failure.
package checker
