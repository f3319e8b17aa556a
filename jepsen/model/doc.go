// Package model owns the porcupine model of docs/spec.md §4 that a chaos
// run's history is judged against: one nondeterministic state per
// (service, email), symbolic where the server chose something the client
// did not see, node-wide writes copied into every user's partition, and
// the oracles it needs (ExpectedFxaKid).
//
// It is a re-statement of the spec, kept apart from the checker so that
// its own tests (histories a correct server can never produce must be
// rejected; the real state machine's answers must be accepted) judge it
// alone. It must never call into fsm's state machine to decide an answer
// (only fsm's constants and option types are shared), and never accept an
// answer it cannot explain: a model that accepts everything makes every
// run valid.
package model
