// Package workload owns a chaos run's traffic: what the clients send
// (allocations, logins, updates, linearizable and stale reads, node
// changes and the lifecycle writes), over a few shared users that collide
// and a trickle of new ones that keep asking for capacity; how each call
// is made (Clients: one connection per request, no retries, a timeout per
// call); and what each answer means for the history (Outcome ok / fail /
// info from the API's status or the transport error).
//
// It is apart from the runner so that the traffic can be tested without a
// cluster: its tests run the whole workload through the real state
// machine and require the model to accept every answer. It records and
// never judges: it must never retry a write (a retried write hides an
// unknown outcome), never turn an unknown outcome into a success or a
// failure, and never send what the model cannot follow (it deletes only
// records a linearizable read showed superseded).
package workload
