package httpapi

import (
	"context"
	"net/http"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// Store is what the handlers need from the replicated state. *store.Store
// implements it; tests use a fake.
type Store interface {
	// Apply proposes cmd (TS and Seed are stamped by the implementation when
	// zero). Errors: store.ErrNotLeader (leadership moved after the Router
	// chose this member: 503 not-leader), store.ErrNoLeader,
	// store.ErrUnknownOutcome, store.ErrShutdown.
	Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error)
	// Read runs fn against the state at the requested level. Errors:
	// store.ErrNotLeader (a default read on a member that no longer leads),
	// store.ErrNoLeader, store.ErrStaleRead, or fn's error.
	Read(ctx context.Context, opts store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error)
	// Meta describes this member's view now (for answers that did not read
	// or write, e.g. errors).
	Meta() store.Meta
	// Ready: knows a leader, can append, and has applied what the leader
	// committed (store.Store.Ready).
	Ready() bool
}

// Cluster is membership and leadership (cluster.Cluster implements it).
type Cluster interface {
	Status(ctx context.Context) (wire.ClusterStatus, error)
	// Join adds a member as a voter (or non-voter). Leader only (the
	// Router sends it there; store.ErrNotLeader if leadership moved since).
	Join(ctx context.Context, m wire.Member) error
	// Remove removes a member by id (store.ErrMemberNotFound).
	Remove(ctx context.Context, id string) error
	// TransferLeadership hands leadership to id, or to any voter if "".
	TransferLeadership(ctx context.Context, id string) error
}

// Router decides, before a request is parsed, whether this member serves
// it or the leader does (cluster.Cluster implements it). So a request is
// parsed, validated and turned into a command once, on the member that
// serves it, and a follower never proposes a write that is bound to fail.
type Router interface {
	// Route returns false when this member serves r. Otherwise it has sent
	// r with body (already read) to the leader and copied the leader's
	// answer to w; it never sends a write twice, and answers itself (503
	// no-leader, 504 unknown-outcome) when the leader's answer cannot be had.
	// where is what r needs (store.OnLeader for a write, the read level's
	// placement for a read).
	Route(w http.ResponseWriter, r *http.Request, body []byte, where store.Placement) bool
}
