// Package history owns the record of a chaos run: the operation kinds the
// workload sends, what each asked (UserInput) and what it observed
// (UserOutput, RecordView, NodeView), whether the outcome is known
// (Outcome), and the concurrent History they are collected in, with their
// JSON form for history.jsonl.
//
// It is the vocabulary shared by the workload that writes operations and
// the model and checker that judge them, so it sits below all of them and
// imports nothing of the harness. It must never interpret an operation:
// what an answer means for a user's state is the model's business, and
// whether a history is acceptable is the checker's.
package history
