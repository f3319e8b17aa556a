// Package routing decides where a request runs and carries it there: it
// acts on the placement the HTTP layer's route table declared for a
// request (serve here, or relay to the leader, alone or in a batch of
// writes), answers for it when the leader's answer cannot be had, serves
// the leader's member-to-member endpoints (batches, the read index), and
// gives a follower the leader's read index. It imports neither httpapi
// nor cluster: the HTTP layer calls it through httpapi.Router, and the
// membership layer hands it members' addresses through Peers. See
// DESIGN.md in this directory.
package routing
