package wire

// Relay is how a follower sends a request to the leader, and what it
// answers when the leader's answer cannot be had. The HTTP layer's route
// table declares it once per route; the router (cluster/routing) acts on
// it. It is here, not in either of them, because both speak it and
// neither may import the other.
type Relay int

const (
	// RelayRead: alone. It changes nothing, so a failure after it may have
	// reached the leader is 503 no-leader and the client may retry it.
	RelayRead Relay = iota
	// RelayWrite: in a batch with other writes. Once it may have reached
	// the leader it is never sent again; a failure is 504 unknown-outcome.
	RelayWrite
	// RelayAlone: alone, and it may change the state (a token request is
	// a GET that may allocate): a failure is 504 unknown-outcome.
	RelayAlone
	// RelayJoin: a join, alone, 504 like a write; the leader's 2xx answer
	// names the new member, whose addresses the follower learns.
	RelayJoin
)

// MayChange reports whether a request relayed this way may change the
// state, so that its outcome is unknown once it may have reached the
// leader.
func (r Relay) MayChange() bool { return r != RelayRead }

func (r Relay) String() string {
	switch r {
	case RelayWrite:
		return "write"
	case RelayAlone:
		return "alone"
	case RelayJoin:
		return "join"
	}
	return "read"
}
