// Package netguard keeps a member's listeners alive under connection
// floods: accept loops that back off instead of exiting, a cap on
// unfinished handshakes (in total and per client address), counters for
// what was refused and a logger that says so at most once per interval.
// The Raft transport (store) and the HTTPS listener (httpapi) share it.
package netguard
