package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/jepsen/history"
)

// Service is the workload's one service (ServicePattern its pattern), with
// a few small nodes, so that capacity runs out while the run is going (and
// alloc-skip-capacity shows).
const (
	Service        = "sync-1.5"
	ServicePattern = "{node}/1.5/{uid}"
	// A generation g belongs to key epoch g/epochSpan, whose
	// keys_changed_at is epoch*epochSpan and whose client state is
	// clientState(email, epoch): crossing an epoch boundary is a key change.
	epochSpan = 1000
)

// Workload generates operations over a small set of emails so that they
// collide. Each email has a generation clock shared by the clients, which
// most writes advance: a write that changes the state is one a stale read
// can miss, so the workload is only as sharp as the share of writes that
// change something. The clock is the clients' belief, never used to judge:
// the model does that.
//
// Besides these shared users, a trickle of new users ("churn"), each
// allocated once, keeps asking for capacity after the nodes are full: that
// is where a server that ignores capacity shows.
type Workload struct {
	service  string
	emails   []string
	nodes    nodePool
	capacity int64 // every node's capacity at setup
	gens     []atomic.Int64

	superseded superseded // uids records reads showed superseded: the ones deleted

	churnMu sync.Mutex
	churn   []string

	// core: no lifecycle writes (jepsen.Options.CoreWorkload).
	core bool

	staleReads atomic.Uint64 // stale reads planned; every other one is bounded
}

// New is a workload over emails shared users; core leaves out the
// lifecycle writes (jepsen.Options.CoreWorkload).
func New(emails int, core bool) *Workload {
	w := &Workload{service: Service, gens: make([]atomic.Int64, emails), core: core}
	for i := range emails {
		w.emails = append(w.emails, fmt.Sprintf("jepsen-%02d@example.com", i))
		w.gens[i].Store(epochSpan)
	}
	return w
}

// clientState is the hex "hash of the sync key" of an email's key epoch.
func clientState(email int, epoch int64) string {
	return fmt.Sprintf("%02x%04x", email, epoch&0xffff)
}

// Plan is one operation before it is sent.
type Plan struct {
	kind  history.OpKind
	email int
	input history.UserInput
	node  *history.NodeChange
	add   *history.NodeAdd
	// maxStaleness bounds a stale read (0: unbounded).
	maxStaleness time.Duration
}

// staleReadBound is the max_staleness of every other stale read: long
// enough that a healthy follower answers, short enough that a member cut
// off or unable to append (a full disk) must refuse within a fault.
const staleReadBound = time.Second

// nextGeneration: mostly the clock advanced by a little (the account moved
// on), sometimes a jump to the next key epoch (a password reset: a key
// change), sometimes an older value (a device that has not caught up).
func (w *Workload) nextGeneration(rng *rand.Rand, email int) int64 {
	clock := &w.gens[email]
	switch p := rng.Float64(); {
	case p < 0.08:
		cur := clock.Load()
		next := (cur/epochSpan+1)*epochSpan + rng.Int64N(10)
		if clock.CompareAndSwap(cur, next) {
			return next
		}
		return clock.Add(1)
	case p < 0.18:
		return max(epochSpan, clock.Load()-1-rng.Int64N(2*epochSpan/3))
	}
	return clock.Add(1 + rng.Int64N(3))
}

// keyed fills generation, keys_changed_at and client state for generation g.
func keyed(email int, g int64) history.UserInput {
	epoch := g / epochSpan
	return history.UserInput{Generation: fsm.SomeInt64(g), KeysChangedAt: fsm.SomeInt64(epoch * epochSpan),
		ClientState: fsm.SomeString(clientState(email, epoch))}
}

// SetNodes tells the workload the nodes set up (ids) and their capacity,
// before any client starts.
func (w *Workload) SetNodes(capacity int64, ids []int64) {
	w.capacity = capacity
	w.nodes.reset(ids)
}

// Emails lists the shared users (not the churn users).
func (w *Workload) Emails() []string { return append([]string(nil), w.emails...) }

// AllocatePlan is the first allocation of shared user i, at its current
// generation.
func (w *Workload) AllocatePlan(i int) Plan {
	in := keyed(i, w.gens[i].Load())
	in.Kind, in.Email = history.OpAllocate, w.emails[i]
	return Plan{kind: history.OpAllocate, input: in}
}

// ReadPlan is a linearizable read of email (the final reads).
func ReadPlan(email string) Plan {
	return Plan{kind: history.OpGet, input: history.UserInput{Kind: history.OpGet, Email: email}}
}

// newChurnEmail names a user that has never been used.
func (w *Workload) newChurnEmail() string {
	w.churnMu.Lock()
	defer w.churnMu.Unlock()
	email := fmt.Sprintf("new-%04d@example.com", len(w.churn))
	w.churn = append(w.churn, email)
	return email
}

// AllEmails lists the shared users and every churn user used so far.
func (w *Workload) AllEmails() []string {
	w.churnMu.Lock()
	defer w.churnMu.Unlock()
	return append(append([]string(nil), w.emails...), w.churn...)
}

// Next plans the next operation of a client.
func (w *Workload) Next(rng *rand.Rand) Plan {
	email := rng.IntN(len(w.emails))
	p := Plan{email: email}
	// Per mille: the lifecycle writes take 22 %, the rest is the core of
	// allocations, sign-ins, updates and reads on the shared users.
	switch x := rng.IntN(1000); {
	case x < 30:
		p.kind = history.OpAllocate
		p.input = keyed(email, epochSpan)
		p.input.Kind, p.input.Email = p.kind, w.newChurnEmail()
		return p
	case x < 250:
		if w.core {
			p.kind = history.OpGet
			break
		}
		if lp, ok := w.lifecyclePlan(rng, x-30); ok {
			return lp
		}
		p.kind = history.OpGet
	case x < 350:
		p.kind = history.OpAllocate
		p.input = keyed(email, w.gens[email].Load())
	case x < 560:
		p.kind = history.OpLogin
		g := w.nextGeneration(rng, email)
		p.input = keyed(email, g)
		if rng.IntN(20) == 0 {
			// Below its own keys_changed_at: login checks a and f.
			p.input.Generation = fsm.SomeInt64(p.input.KeysChangedAt.V - 1)
		}
	case x < 690:
		p.kind = history.OpUpdate
		full := keyed(email, w.nextGeneration(rng, email))
		switch rng.IntN(3) {
		case 0:
			p.input = history.UserInput{Generation: full.Generation}
		case 1:
			p.input = history.UserInput{Generation: full.Generation, KeysChangedAt: full.KeysChangedAt}
		default:
			p.input = full
		}
	case x < 870:
		p.kind = history.OpGet
	default:
		p.kind = history.OpGetStale
		// Alternating rather than drawn: the random stream, and with it
		// every seed's run, stays as it was.
		if w.staleReads.Add(1)%2 == 0 {
			p.maxStaleness = staleReadBound
		}
	}
	p.input.Kind, p.input.Email = p.kind, w.emails[email]
	return p
}

// nodeChange flips downed/backoff, moves capacity a little (down as well
// as up) or sets available: node updates never move a user.
func (w *Workload) nodeChange(rng *rand.Rand, id int64) *history.NodeChange {
	c := &history.NodeChange{NodeID: id}
	switch rng.IntN(4) {
	case 0:
		c.Downed = fsm.SomeBool(rng.IntN(4) == 0)
	case 1:
		c.Backoff = fsm.SomeBool(rng.IntN(4) == 0)
	case 2:
		c.Capacity = fsm.SomeInt64(max(0, w.capacity-1+rng.Int64N(6)))
	default:
		c.Available = fsm.SomeInt64(rng.Int64N(int64(len(w.emails)) + 1))
	}
	return c
}

// MaxCapacity is the most each node may have been asked to hold.
func (w *Workload) MaxCapacity(ops []history.Op) map[int64]int64 {
	out := map[int64]int64{}
	w.nodes.mu.Lock()
	for _, id := range w.nodes.initial {
		out[id] = w.capacity
	}
	w.nodes.mu.Unlock()
	for _, op := range ops {
		if op.NodeChange != nil && op.NodeChange.Capacity.Set && op.Outcome != history.OutcomeFail {
			out[op.NodeChange.NodeID] = max(out[op.NodeChange.NodeID], op.NodeChange.Capacity.V)
		}
		if op.NodeAdd != nil && op.NodeAdd.ID != 0 {
			out[op.NodeAdd.ID] = max(out[op.NodeAdd.ID], op.NodeAdd.Capacity)
		}
	}
	return out
}

// userFields are the planned values of a user operation, as sent.
func userFields(in history.UserInput) wire.UserFields {
	return wire.UserFields{
		Generation:    optional(in.Generation.Set, in.Generation.V),
		KeysChangedAt: optional(in.KeysChangedAt.Set, in.KeysChangedAt.V),
		ClientState:   optional(in.ClientState.Set, in.ClientState.V),
	}
}

// Execute sends one planned operation to a member and records what the
// client learned. clock gives the run's monotonic time.
func (w *Workload) Execute(ctx context.Context, clients *Clients, httpAddr, memberID string, clientID int, p Plan,
	clock func() time.Duration) history.Op {
	op := history.Op{Client: clientID, Member: memberID, Kind: p.kind, Email: p.input.Email, Input: p.input, NodeChange: p.node,
		NodeAdd: p.add, MaxStaleness: p.maxStaleness}
	c, in := clients.Of(httpAddr), p.input
	var (
		user   *wire.User
		fxaKid string
		life   lifecycleAnswer
		meta   client.Meta
		err    error
	)
	op.Call = clock()
	switch p.kind {
	case history.OpAllocate:
		user, meta, err = c.Allocate(ctx, w.service, wire.AllocateRequest{Email: in.Email, UserFields: userFields(in)})
	case history.OpLogin:
		var login *wire.LoginResult
		f := userFields(in)
		login, meta, err = c.Login(ctx, w.service, in.Email,
			wire.LoginRequest{Generation: f.Generation, KeysChangedAt: f.KeysChangedAt, ClientState: in.ClientState.V})
		if login != nil {
			user, fxaKid = &login.User, login.FxaKid
		}
	case history.OpUpdate:
		user, meta, err = c.UpdateUser(ctx, w.service, in.Email, wire.UpdateUserRequest(userFields(in)))
	case history.OpGet:
		user, meta, err = c.GetUser(ctx, w.service, in.Email, client.CallOptions{Consistency: "linearizable"})
	case history.OpGetStale:
		user, meta, err = c.GetUser(ctx, w.service, in.Email, client.CallOptions{Consistency: "stale", MaxStaleness: p.maxStaleness})
	case history.OpNodeChange:
		op.Email, op.Input = "", history.UserInput{Kind: history.OpNodeChange}
		n := p.node
		_, meta, err = c.UpdateNode(ctx, w.service, n.NodeID, wire.UpdateNodeRequest{
			Capacity: optional(n.Capacity.Set, n.Capacity.V),
			NodeState: wire.NodeState{
				Available: optional(n.Available.Set, n.Available.V),
				Downed:    optional(n.Downed.Set, n.Downed.V),
				Backoff:   optional(n.Backoff.Set, n.Backoff.V)}})
	default:
		life, meta, err = w.callLifecycle(ctx, c, p)
		if p.kind.NodeWide() || p.kind == history.OpAddNode {
			op.Email = ""
		}
	}
	op.Return = clock()
	op.HTTPStatus = meta.HTTPStatus
	op.Outcome = classify(p.kind.IsWrite(), err)
	if op.Outcome != history.OutcomeOK {
		op.Error = Describe(meta, err)
		return op
	}
	var out history.UserOutput
	switch p.kind {
	case history.OpNodeChange:
		return op
	case history.OpAllocate, history.OpLogin, history.OpUpdate, history.OpGet, history.OpGetStale:
		out, err = userOutput(user, fxaKid, meta, err)
	default:
		err = w.lifecycleOutput(&op, life, meta, err)
		out = op.Output
	}
	if err != nil {
		// The server answered but we cannot tell what: as good as unseen.
		op.Error = err.Error()
		op.Outcome = history.OutcomeFail
		if p.kind.IsWrite() {
			op.Outcome = history.OutcomeInfo
		}
		return op
	}
	op.Output = out
	return op
}
