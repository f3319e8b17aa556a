package client

import "encoding/json"

// Service is the API's service object.
type Service struct {
	ID            int64       `json:"id"`
	Service       string      `json:"service"`
	Pattern       string      `json:"pattern"`
	ReleaseRate   json.Number `json:"release_rate"` // exact decimal text, e.g. "0.1"
	AllowNewUsers bool        `json:"allow_new_users"`
	Spread        int64       `json:"spread"`
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
	Pattern       string      `json:"pattern"`
	ReleaseRate   json.Number `json:"release_rate,omitempty"` // e.g. "0.1"; "" = default
	AllowNewUsers *bool       `json:"allow_new_users,omitempty"`
	Spread        *int64      `json:"spread,omitempty"`
}

// AddNodeRequest is POST /v1/services/{service}/nodes.
type AddNodeRequest struct {
	Node        string `json:"node"`
	Capacity    int64  `json:"capacity"`
	Available   *int64 `json:"available,omitempty"`
	CurrentLoad *int64 `json:"current_load,omitempty"`
	Downed      *bool  `json:"downed,omitempty"`
	Backoff     *bool  `json:"backoff,omitempty"`
}

// UpdateNodeRequest is PATCH /v1/services/{service}/nodes/{id}; set at
// least one field.
type UpdateNodeRequest struct {
	Capacity    *int64 `json:"capacity,omitempty"`
	Available   *int64 `json:"available,omitempty"`
	CurrentLoad *int64 `json:"current_load,omitempty"`
	Downed      *bool  `json:"downed,omitempty"`
	Backoff     *bool  `json:"backoff,omitempty"`
}

// AllocateRequest is POST /v1/services/{service}/users.
type AllocateRequest struct {
	Email         string  `json:"email"`
	Generation    *int64  `json:"generation,omitempty"`
	ClientState   *string `json:"client_state,omitempty"`
	KeysChangedAt *int64  `json:"keys_changed_at,omitempty"`
	Node          *string `json:"node,omitempty"`
}

// UpdateUserRequest is PATCH /v1/services/{service}/users/{email}; set at
// least one field.
type UpdateUserRequest struct {
	Generation    *int64  `json:"generation,omitempty"`
	KeysChangedAt *int64  `json:"keys_changed_at,omitempty"`
	ClientState   *string `json:"client_state,omitempty"`
	Node          *string `json:"node,omitempty"`
}

// LoginRequest is POST .../users/{email}/login. ClientState is always sent
// ("" means none).
type LoginRequest struct {
	Generation    *int64 `json:"generation,omitempty"`
	KeysChangedAt *int64 `json:"keys_changed_at,omitempty"`
	ClientState   string `json:"client_state"`
}

// OldRecordsQuery is GET .../records/old; zero values take the server's
// defaults (grace 7 days, limit 100, offset 0).
type OldRecordsQuery struct {
	GraceMs *int64
	Limit   int
	Offset  int
}

// EventRequest is POST /v1/events.
type EventRequest struct {
	Event      string `json:"event"` // delete, reset, passwordChange
	Email      string `json:"email"`
	Generation *int64 `json:"generation,omitempty"`
}

// JoinRequest is POST /v1/cluster/members.
type JoinRequest struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	Zone       string `json:"zone,omitempty"`
	Voter      *bool  `json:"voter,omitempty"` // nil = voter
}

// Int64, Bool and String return pointers for optional request fields.
func Int64(v int64) *int64    { return &v }
func Bool(v bool) *bool       { return &v }
func String(v string) *string { return &v }
