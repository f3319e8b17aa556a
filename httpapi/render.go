package httpapi

import (
	"fmt"
	"math/big"

	"github.com/wimms-dev/wimms/fsm"
)

// The JSON objects of docs/api.md "Objects". Field order follows the contract;
// nullable values are pointers so that null is explicit, never omitted.

// ServiceJSON is the API's service object.
type ServiceJSON struct {
	ID            int64       `json:"id"`
	Service       string      `json:"service"`
	Pattern       string      `json:"pattern"`
	ReleaseRate   DecimalText `json:"release_rate"`
	AllowNewUsers bool        `json:"allow_new_users"`
	Spread        int64       `json:"spread"`
}

// NodeJSON is the API's node object.
type NodeJSON struct {
	ID          int64  `json:"id"`
	Service     string `json:"service"`
	Node        string `json:"node"`
	Capacity    int64  `json:"capacity"`
	Available   int64  `json:"available"`
	CurrentLoad int64  `json:"current_load"`
	Downed      bool   `json:"downed"`
	Backoff     bool   `json:"backoff"`
}

// UserJSON is the API's user object (current record plus derived fields).
type UserJSON struct {
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

// LoginJSON is the login answer: the user plus fxa_kid.
type LoginJSON struct {
	UserJSON
	FxaKid string `json:"fxa_kid"`
}

// RecordJSON is the API's record object.
type RecordJSON struct {
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

// DecimalText is an exact decimal rendered as a JSON number with the digits
// as stored (release_rate "0.1" is written 0.1, never 0.1000000000000000055).
type DecimalText string

// MarshalJSON refuses anything that is not a plain decimal, so a corrupt
// value becomes a logged 500 rather than a silently different number.
func (d DecimalText) MarshalJSON() ([]byte, error) {
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

func nullableInt64(v int64) *int64 {
	if v == fsm.Null {
		return nil
	}
	return &v
}

func toServiceJSON(s fsm.Service) ServiceJSON {
	return ServiceJSON{
		ID: s.ID, Service: s.Name, Pattern: s.Pattern, ReleaseRate: DecimalText(s.ReleaseRate),
		AllowNewUsers: s.AllowNewUsers, Spread: s.Spread,
	}
}

func toNodeJSON(n fsm.Node) NodeJSON {
	return NodeJSON{
		ID: n.ID, Service: n.Service, Node: n.URL, Capacity: n.Capacity, Available: n.Available,
		CurrentLoad: n.CurrentLoad, Downed: n.Downed, Backoff: n.Backoff,
	}
}

func toUserJSON(u fsm.User) UserJSON {
	out := UserJSON{
		UID: u.UID, Service: u.Service, Email: u.Email, NodeID: u.NodeID,
		Generation: u.Generation, KeysChangedAt: nullableInt64(u.KeysChangedAt),
		ClientState: u.ClientState, OldClientStates: u.OldClientStates,
		CreatedAt: u.CreatedAt, ReplacedAt: nullableInt64(u.ReplacedAt), FirstSeenAt: u.FirstSeenAt,
	}
	// NodeURL "" is the fsm's "node was removed"; then there is no endpoint
	// to fill in either.
	if u.NodeURL != "" {
		node, endpoint := u.NodeURL, u.APIEndpoint
		out.Node, out.APIEndpoint = &node, &endpoint
	}
	if out.OldClientStates == nil {
		out.OldClientStates = []string{}
	}
	return out
}

func toRecordJSON(r fsm.Record) RecordJSON {
	out := RecordJSON{
		UID: r.UID, Email: r.Email, NodeID: r.NodeID, Downed: r.NodeDowned,
		Generation: r.Generation, KeysChangedAt: nullableInt64(r.KeysChangedAt),
		ClientState: r.ClientState, CreatedAt: r.CreatedAt, ReplacedAt: nullableInt64(r.ReplacedAt),
	}
	if r.NodeURL != "" {
		node := r.NodeURL
		out.Node = &node
	}
	return out
}

func toRecordsJSON(rs []fsm.Record) []RecordJSON {
	out := make([]RecordJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, toRecordJSON(r))
	}
	return out
}
