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

// Router decides, before a request's body is parsed, whether this member
// serves it or the leader does (cluster.Cluster implements it). So a request is
// parsed, validated and turned into a command once, on the member that
// serves it, and a follower never proposes a write that is bound to fail.
type Router interface {
	// Route returns false when this member serves r. Otherwise it has sent
	// r with body (already read) to the leader and copied the leader's
	// answer to w; it never sends a write twice, and answers itself (503
	// no-leader, 504 unknown-outcome) when the leader's answer cannot be had.
	// where and relay are what the route table declared for r (its
	// Placement); the Router works nothing out again from r's method or
	// path. They come apart because the Router's package may import
	// neither this one nor anything that holds both.
	Route(w http.ResponseWriter, r *http.Request, body []byte, where store.Placement, relay wire.Relay) bool
}

// Placement is where one request runs and how a follower sends it to the
// leader. The route table declares it once per route (route.place in
// routes.go); request.placement fills in what depends on the request
// (?consistency, Idempotency-Key), and the Router acts on it.
type Placement struct {
	// Where: any member, the leader, or the leader if one is known.
	Where store.Placement
	// Relay: how it travels to the leader (when Where asks for it) and
	// what the follower answers when the leader's answer cannot be had.
	Relay Relay
}

// Relay is how a follower sends a request to the leader, declared in
// package wire (the Router acts on it and may not import this package).
type Relay = wire.Relay

// The Relay kinds (see wire.Relay).
const (
	RelayRead  = wire.RelayRead
	RelayWrite = wire.RelayWrite
	RelayAlone = wire.RelayAlone
	RelayJoin  = wire.RelayJoin
)
