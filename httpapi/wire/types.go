// Package wire holds the JSON objects of the wimms HTTP API (docs/api.md):
// the answers httpapi renders, the bodies clients send, the member shape
// cluster reports, and the field rules (validate.go) the server and the
// admin CLI both apply; and the vocabulary below them (vocab.go, relay.go,
// auth.go): header names, statuses, the relay kinds and the bearer-token
// rule that the HTTP layer and the router (cluster/routing) share. It is a
// leaf: it imports nothing of the module, so the client, the server, the
// router and the tools agree on one declaration of each object and each
// rule without importing each other.
package wire

import (
	"encoding/json"
	"fmt"
	"math/big"
)

// Service is the API's service object.
type Service struct {
	ID            int64   `json:"id"`
	Service       string  `json:"service"`
	Pattern       string  `json:"pattern"`
	ReleaseRate   Decimal `json:"release_rate"` // exact decimal text, e.g. "0.1"
	AllowNewUsers bool    `json:"allow_new_users"`
	Spread        int64   `json:"spread"`
}

// Node is the API's node object.
type Node struct {
	ID          int64  `json:"id"`
	Service     string `json:"service"`
	Node        string `json:"node"`
	Capacity    int64  `json:"capacity"`
	Available   int64  `json:"available"`
	CurrentLoad int64  `json:"current_load"`
	Downed      bool   `json:"downed"`
	Backoff     bool   `json:"backoff"`
}

// User is the API's user object. Node and APIEndpoint are nil when the
// record's node was removed.
type User struct {
	UID             int64    `json:"uid"`
	Service         string   `json:"service"`
	Email           string   `json:"email"`
	NodeID          int64    `json:"node_id"`
	Node            *string  `json:"node"`
	APIEndpoint     *string  `json:"api_endpoint"`
	Generation      int64    `json:"generation"`
	KeysChangedAt   *int64   `json:"keys_changed_at"`
	ClientState     string   `json:"client_state"`
	OldClientStates []string `json:"old_client_states"`
	CreatedAt       int64    `json:"created_at"`
	ReplacedAt      *int64   `json:"replaced_at"`
	FirstSeenAt     int64    `json:"first_seen_at"`
}

// LoginResult is the login answer: the user plus fxa_kid.
type LoginResult struct {
	User
	FxaKid string `json:"fxa_kid"`
}

// Record is the API's record object.
type Record struct {
	UID           int64   `json:"uid"`
	Email         string  `json:"email"`
	NodeID        int64   `json:"node_id"`
	Node          *string `json:"node"`
	Downed        bool    `json:"downed"`
	Generation    int64   `json:"generation"`
	KeysChangedAt *int64  `json:"keys_changed_at"`
	ClientState   string  `json:"client_state"`
	CreatedAt     int64   `json:"created_at"`
	ReplacedAt    *int64  `json:"replaced_at"`
}

// Stats is GET /v1/services/{service}/stats.
type Stats struct {
	Users   int64 `json:"users"`
	Records int64 `json:"records"`
	Nodes   int64 `json:"nodes"`
}

// Count is GET /v1/users/count.
type Count struct {
	Count int64 `json:"count"`
	AsOf  int64 `json:"as_of"`
}

// Member is one cluster member as GET /v1/cluster shows it.
type Member struct {
	ID            string `json:"id"`
	RaftAddr      string `json:"raft_addr"`
	HTTPAddr      string `json:"http_addr"`
	GossipAddr    string `json:"gossip_addr,omitempty"`
	Zone          string `json:"zone"`
	Voter         bool   `json:"voter"`
	State         string `json:"state"`
	LastContactMs int64  `json:"last_contact_ms"`
}

// ClusterStatus is GET /v1/cluster.
type ClusterStatus struct {
	Leader       *Member  `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Members      []Member `json:"members"`
}

// Request bodies. Pointer fields are optional: nil is omitted.

// PutServiceRequest is PUT /v1/services/{service}.
type PutServiceRequest struct {
	Pattern       string  `json:"pattern"`
	ReleaseRate   Decimal `json:"release_rate,omitempty"` // e.g. "0.1"; "" = default
	AllowNewUsers *bool   `json:"allow_new_users,omitempty"`
	Spread        *int64  `json:"spread,omitempty"`
}

// NodeState is a node's settable state besides capacity: what POST
// .../nodes may set and PATCH .../nodes/{id} may change (nil: the default,
// or unchanged).
type NodeState struct {
	Available   *int64 `json:"available,omitempty"`
	CurrentLoad *int64 `json:"current_load,omitempty"`
	Downed      *bool  `json:"downed,omitempty"`
	Backoff     *bool  `json:"backoff,omitempty"`
}

// AddNodeRequest is POST /v1/services/{service}/nodes.
type AddNodeRequest struct {
	Node     string `json:"node"`
	Capacity int64  `json:"capacity"`
	NodeState
}

// UpdateNodeRequest is PATCH /v1/services/{service}/nodes/{id}; set at
// least one field.
type UpdateNodeRequest struct {
	Capacity *int64 `json:"capacity,omitempty"`
	NodeState
}

// UserFields are the optional fields of a user that allocation may give
// and PATCH .../users/{email} may change (nil: not sent).
type UserFields struct {
	Generation    *int64  `json:"generation,omitempty"`
	KeysChangedAt *int64  `json:"keys_changed_at,omitempty"`
	ClientState   *string `json:"client_state,omitempty"`
	Node          *string `json:"node,omitempty"`
}

// AllocateRequest is POST /v1/services/{service}/users.
type AllocateRequest struct {
	Email string `json:"email"`
	UserFields
}

// UpdateUserRequest is PATCH /v1/services/{service}/users/{email}; set at
// least one field.
type UpdateUserRequest UserFields

// LoginRequest is POST .../users/{email}/login. ClientState is always sent
// ("" means none).
type LoginRequest struct {
	Generation    *int64 `json:"generation,omitempty"`
	KeysChangedAt *int64 `json:"keys_changed_at,omitempty"`
	ClientState   string `json:"client_state"`
}

// EventRequest is POST /v1/events.
type EventRequest struct {
	Event      string `json:"event"` // delete, reset, passwordChange
	Email      string `json:"email"`
	Generation *int64 `json:"generation,omitempty"`
}

// JoinRequest is POST /v1/cluster/members, and (with Voter set) its answer:
// the member as it was added.
type JoinRequest struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	Zone       string `json:"zone"`
	Voter      *bool  `json:"voter,omitempty"` // nil = voter
}

// Applied is the answer of writes that count what they changed
// (unassign, remove node, replace, events).
type Applied struct {
	Applied int64 `json:"applied"`
}

// ErrorDetail is one entry of an error body's "errors" list.
type ErrorDetail struct {
	Location    string `json:"location"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ErrorBody is the body of every non-2xx answer. It has the token server's
// shape so that a front end can relay it unchanged.
type ErrorBody struct {
	Status string        `json:"status"`
	Errors []ErrorDetail `json:"errors"`
}

// Decimal is an exact decimal carried as a JSON number with the digits as
// stored (release_rate "0.1" is written 0.1, never 0.1000000000000000055),
// and read back as the same text.
type Decimal string

// MarshalJSON refuses anything that is not a plain decimal, so a corrupt
// value becomes a logged 500 rather than a silently different number.
func (d Decimal) MarshalJSON() ([]byte, error) {
	s := string(d)
	if s == "" {
		return nil, fmt.Errorf("decimal text is empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9') && c != '.' && !(c == '-' && i == 0) {
			return nil, fmt.Errorf("decimal text %q is not a plain decimal", s)
		}
	}
	if _, ok := new(big.Rat).SetString(s); !ok {
		return nil, fmt.Errorf("decimal text %q is not a number", s)
	}
	return []byte(s), nil
}

// UnmarshalJSON keeps a JSON number's text as it was written.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("decimal: %w", err)
	}
	*d = Decimal(n)
	return nil
}

// Int64, Bool and String return pointers for optional request fields.
func Int64(v int64) *int64    { return &v }
func Bool(v bool) *bool       { return &v }
func String(v string) *string { return &v }
