package httpapi

import (
	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// The API's objects are declared once, in package wire; these functions
// render the state machine's values into them. Nullable values are pointers
// so that null is explicit, never omitted.

func nullableInt64(v int64) *int64 {
	if v == fsm.Null {
		return nil
	}
	return &v
}

func toServiceJSON(s fsm.Service) wire.Service {
	return wire.Service{
		ID: s.ID, Service: s.Name, Pattern: s.Pattern, ReleaseRate: wire.Decimal(s.ReleaseRate),
		AllowNewUsers: s.AllowNewUsers, Spread: s.Spread,
	}
}

func toNodeJSON(n fsm.Node) wire.Node {
	return wire.Node{
		ID: n.ID, Service: n.Service, Node: n.URL, Capacity: n.Capacity, Available: n.Available,
		CurrentLoad: n.CurrentLoad, Downed: n.Downed, Backoff: n.Backoff,
	}
}

func toUserJSON(u fsm.User) wire.User {
	out := wire.User{
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

func toRecordJSON(r fsm.Record) wire.Record {
	out := wire.Record{
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

func toRecordsJSON(rs []fsm.Record) []wire.Record {
	out := make([]wire.Record, 0, len(rs))
	for _, r := range rs {
		out = append(out, toRecordJSON(r))
	}
	return out
}
