package routing

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// This file is the router: it acts on the placement the HTTP layer's route
// table declared for a request (where it runs, how it is relayed), serving
// it on this member or sending it to the leader before the HTTP layer
// parses its body or anything is proposed to Raft. It also owns what that
// decision brings with it: the forwarding header and the answers a member
// gives when forwarding fails. relay.go holds the relay itself (waiting
// for a leader, retries on dial errors), relaybatch.go the batches of
// writes, readindex.go the remote read index, member.go the
// member-to-member client and its authentication.

// ForwardedHeader marks a request a member relayed to the leader; its value
// is the relaying member's id. A request that carries it is served where it
// arrives, never relayed again: members that disagree about the leader
// cannot bounce it, and a leader that lost leadership since the sender
// looked answers 503 not-leader (its store refuses the proposal).
const ForwardedHeader = wire.HeaderForwarded

// Store is what routing needs of the Raft owner (*store.Store implements
// it; tests use a fake).
type Store interface {
	// RaftStatus is this member's view now: who leads, indexes.
	RaftStatus() store.RaftStatus
	// ReadIndex is the leader's half of a linearizable read.
	ReadIndex(ctx context.Context) (uint64, error)
	// LeaderChanged is closed at the next leader change (a broadcast any
	// number of waiters share): relays wait on it for a leader.
	LeaderChanged() <-chan struct{}
}

// Peers is where the HTTP addresses of other members are known: the
// membership layer's registry (gossip metadata, join requests, /v1/cluster
// answers). Routing only reads it, and tells it what a relayed join taught.
type Peers interface {
	// HTTPAddr is the HTTP address of member id, or, when id is unknown
	// or has none, of the member at raftAddr.
	HTTPAddr(id, raftAddr string) (string, bool)
	// Changed is closed when the registry next learns something (a
	// broadcast any number of waiters share).
	Changed() <-chan struct{}
	// Learn remembers the addresses of a member the leader has just added
	// through this member: it may have to relay to it before gossip has
	// spread its metadata.
	Learn(m wire.Member)
}

// Config configures one member's router.
type Config struct {
	ID       string // this member's id
	HTTPAddr string // this member's advertised HTTP address
	RaftAddr string // this member's advertised Raft address
	Store    Store
	Peers    Peers
	// Members is the member-to-member client (the membership layer uses
	// the same one).
	Members *MemberClient
	// LeaderWait: how long a relay waits for a leader before answering
	// 503 no-leader. ForwardTimeout bounds one relayed exchange. Both are
	// required: cluster passes its own, defaults applied
	// (cluster.DefaultLeaderWait; the apply timeout + cluster.ForwardMargin).
	LeaderWait, ForwardTimeout time.Duration
	Logger                     hclog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Router is one member's request router (wire.Router) and the leader's
// member-to-member endpoints (InternalRoutes).
type Router struct {
	cfg     Config
	st      Store
	peers   Peers
	members *MemberClient
	log     hclog.Logger
	now     func() time.Time
	// ctx is the member's lifetime: batch senders run on it.
	ctx context.Context
	// relays are the writes waiting to be relayed to the leader in a batch.
	relays       relayQueue
	relayMetrics relayMetrics
	// local is this member's API handler, which runs the requests of a
	// batch relayed to it (set by InternalRoutes).
	local http.Handler
}

// New prepares a router; ctx ends the batch senders (the member's
// lifetime), and Close then waits for them.
func New(ctx context.Context, cfg Config) *Router {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Router{cfg: cfg, st: cfg.Store, peers: cfg.Peers, members: cfg.Members, log: cfg.Logger,
		now: cfg.Now, ctx: ctx, relayMetrics: newRelayMetrics()}
}

// Close stops new batch senders and waits for the running ones, which end
// with the context New was given (a batch on its way is then answered
// unknown-outcome, one not yet sent no-leader). Writes that arrive later
// are relayed alone, on their request's context.
func (rt *Router) Close() { rt.relays.close() }

// relayMetrics count the batches of writes this member relayed to the
// leader; writes/batches is the mean batch size.
type relayMetrics struct {
	batches, writes prometheus.Counter
}

func newRelayMetrics() relayMetrics {
	return relayMetrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wimms_forward_batches_total",
			Help: "Batches of writes this member relayed to the leader in one request each.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wimms_forward_batched_writes_total",
			Help: "Writes this member relayed to the leader inside batches.",
		}),
	}
}

// Collectors are the router's Prometheus metrics; the caller registers them.
func (rt *Router) Collectors() []prometheus.Collector {
	return []prometheus.Collector{rt.relayMetrics.batches, rt.relayMetrics.writes}
}

// Route decides where r is served (wire.Router), acting on the
// placement the HTTP layer's route table declared for it (where, relay); nothing here
// works the kind of request out again from its method or path. It returns
// false when this member serves r itself: r may run anywhere, this member
// leads, r was relayed to it already, this member is shutting down (its
// store answers so), or r is a default read and no leader is known (its
// store answers no-leader at once). Otherwise it relays r with body to the
// leader once, as relay says (a write in a batch, anything else alone),
// copies the leader's answer to w and returns true.
//
// The decision is made before the proposal, so a follower never proposes
// a write that is bound to fail. Leadership may still move between this
// decision and the proposal; then the store refuses with ErrNotLeader and
// the client gets 503 not-leader with Retry-After (nothing was appended).
func (rt *Router) Route(w http.ResponseWriter, r *http.Request, body []byte, where store.Placement, relay wire.Relay) bool {
	if where == store.AnyMember || r.Header.Get(ForwardedHeader) != "" {
		return false
	}
	rs := rt.st.RaftStatus()
	switch {
	case rs.Leading(), rs.State == "shutdown":
		return false
	case where == store.OnLeaderIfKnown && !rs.LeaderKnown():
		return false
	}
	if relay == wire.RelayWrite {
		rt.relayBatched(w, r, body)
	} else {
		rt.relay(w, r, body, relay)
	}
	return true
}

// isJoin: a join request (POST wire.MembersPath), which the leader
// refuses inside a batch (it checks what a follower sent it; the follower
// relays joins alone because their placement says so).
func isJoin(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == wire.MembersPath
}

// learnJoined remembers the addresses of a member the leader has just added
// through this member (the leader's answer echoes it): this member may have
// to forward to it before gossip has spread its metadata.
func (rt *Router) learnJoined(answer []byte) {
	var m wire.Member
	if err := json.Unmarshal(answer, &m); err != nil || m.ID == "" || m.ID == rt.cfg.ID {
		return
	}
	rt.peers.Learn(m)
}

// routeError is an answer this member gives itself when it cannot get one
// from the leader, in the API's error shape.
type routeError struct {
	code         int
	status, name string
	desc         string
}

// errNoLeader: no leader could be reached and nothing was sent to one
// (or a read failed on the way); retryable.
func errNoLeader(desc string) routeError {
	return routeError{code: http.StatusServiceUnavailable, status: wire.StatusNoLeader, name: "leader", desc: desc}
}

// errNotLeader: this member was asked for what only the leader does.
func errNotLeader(desc string) routeError {
	return routeError{code: http.StatusServiceUnavailable, status: wire.StatusNotLeader, name: "leader", desc: desc}
}

// errUnknownOutcome: the write may have reached the leader; it is not
// re-sent, only the client may retry (with the same Idempotency-Key).
func errUnknownOutcome(desc string) routeError {
	return routeError{code: http.StatusGatewayTimeout, status: wire.StatusUnknownOutcome, name: "leader", desc: desc}
}

// writeRouteError answers for this member itself, with the X-Wimms-*
// headers every answer carries (read: those of a read too) and
// Retry-After on every 503.
func (rt *Router) writeRouteError(w http.ResponseWriter, e routeError, read bool) {
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	meta := rt.st.RaftStatus().Meta()
	h.Set("Content-Type", "application/json")
	h.Set(wire.HeaderIndex, strconv.FormatUint(meta.Index, 10))
	h.Set(wire.HeaderMember, rt.cfg.ID)
	if read {
		h.Set(wire.HeaderKnownLeader, strconv.FormatBool(meta.KnownLeader))
		h.Set(wire.HeaderLastContact, strconv.FormatInt(meta.LastContactMs, 10))
	}
	if e.code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	b, _ := json.Marshal(wire.ErrorBody{Status: e.status,
		Errors: []wire.ErrorDetail{{Location: wire.LocationHeader, Name: e.name, Description: e.desc}}})
	w.WriteHeader(e.code)
	_, _ = w.Write(append(b, '\n'))
}
