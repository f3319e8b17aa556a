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
	// zero). Errors: store.ErrNotLeader (forward), store.ErrNoLeader,
	// store.ErrUnknownOutcome, store.ErrShutdown.
	Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error)
	// Read runs fn against the state at the requested level. Errors:
	// store.ErrNotLeader (default reads on a follower: forward),
	// store.ErrNoLeader, store.ErrStaleRead, or fn's error.
	Read(ctx context.Context, opts store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error)
	// Meta describes this member's view now (for answers that did not read
	// or write, e.g. errors).
	Meta() store.Meta
	// Ready: knows a leader and has applied the log it had at start.
	Ready() bool
}

// Cluster is membership and leadership (cluster.Cluster implements it).
type Cluster interface {
	Status(ctx context.Context) (wire.ClusterStatus, error)
	// Join adds a member as a voter (or non-voter). Leader only:
	// store.ErrNotLeader makes the handler forward.
	Join(ctx context.Context, m wire.Member) error
	// Remove removes a member by id (store.ErrMemberNotFound).
	Remove(ctx context.Context, id string) error
	// TransferLeadership hands leadership to id, or to any voter if "".
	TransferLeadership(ctx context.Context, id string) error
}

// Forwarder relays a request to the leader and copies its answer to w
// unchanged. It waits a bounded time for a leader to be known, and answers
// 503 no-leader itself when none is. It never retries a write whose outcome
// is unknown. body is the request body already read by the handler.
type Forwarder interface {
	Forward(w http.ResponseWriter, r *http.Request, body []byte)
}
