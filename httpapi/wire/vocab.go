package wire

// The API's words below the JSON objects: header names, the statuses the
// HTTP layer adds to the state machine's, where an error was found, the
// body limit. The server, the members' router (cluster/routing) and the
// clients name them from here, so a member's own answers and the API's
// cannot drift apart.

// Headers of the API.
const (
	HeaderIndex          = "X-Wimms-Index"
	HeaderMember         = "X-Wimms-Member"
	HeaderKnownLeader    = "X-Wimms-Known-Leader"
	HeaderLastContact    = "X-Wimms-Last-Contact"
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderForwarded marks a request a member relayed to the leader; its
	// value is the relaying member's id (the router sets it).
	HeaderForwarded = "X-Wimms-Forwarded"
	// HeaderReplayed is "true" on an answer that the state machine returned
	// from its idempotency table instead of acting again.
	HeaderReplayed = "X-Wimms-Idempotent-Replay"
)

// Statuses the HTTP layer adds to the state machine's (fsm.Status*). They
// appear as "status" in error bodies.
const (
	StatusUnauthorized     = "unauthorized"
	StatusNotLeader        = "not-leader"
	StatusNoLeader         = "no-leader"
	StatusStaleRead        = "stale-read"
	StatusUnknownOutcome   = "unknown-outcome"
	StatusShuttingDown     = "shutting-down"
	StatusInternalError    = "internal-error"
	StatusNotReady         = "not-ready"
	StatusNoCluster        = "no-cluster"
	StatusMethodNotAllowed = "method-not-allowed"
	StatusTimeout          = "timeout"
)

// Locations of an ErrorDetail (the token server's vocabulary).
const (
	LocationBody        = "body"
	LocationPath        = "path"
	LocationQuerystring = "querystring"
	LocationHeader      = "header"
)

// MembersPath is the cluster's member list: POST joins a member, DELETE
// MembersPath/{id} removes one. Members call it on each other, and the
// router tells a relayed join by it.
const MembersPath = "/v1/cluster/members"

// MaxBodyBytes is the largest request body accepted (docs/api.md: over 64
// KiB is 400 bad-request); a batch of relayed requests is bounded by it too.
const MaxBodyBytes = 64 << 10

// MemberActivity is GET /v1/member/activity: this member's sign-in and
// allocation counters, summed over services. Sign-ins are counted by the
// member that decided them (wimms_logins_total), so the cluster's are the
// sum over members; allocations are counted as the log applies
// (wimms_allocations_total), so any member's are the cluster's.
type MemberActivity struct {
	Member      string           `json:"member"`
	Logins      map[string]int64 `json:"logins"`      // by outcome
	Allocations map[string]int64 `json:"allocations"` // by result
}
