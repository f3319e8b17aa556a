package jepsen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// The lifecycle part of the workload: every write of docs/spec.md §4 that
// is not allocate, login or update — retire, replace, account events,
// record deletion, and node add / update / unassign / remove. Its calls,
// through the typed API client like every other operation's, are all in
// callLifecycle and lifecycleOutput below.

// NodeAdd is a POST of a new node. ID is the id answered (0: not seen).
type NodeAdd struct {
	URL       string `json:"node"`
	Capacity  int64  `json:"capacity"`
	Available int64  `json:"available"`
	ID        int64  `json:"id,omitempty"`
}

// nodePool is the workload's belief about the service's nodes: the ids it
// may target. A node leaves it when a remove is sent (whatever the
// outcome) and joins it when an add is answered.
type nodePool struct {
	mu      sync.Mutex
	ids     []int64
	initial []int64 // the nodes of setup
	added   int     // nodes added so far, for unique URLs
}

func (p *nodePool) reset(ids []int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids, p.initial = slices.Clone(ids), slices.Clone(ids)
}

func (p *nodePool) pick(rng *rand.Rand) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return 0, false
	}
	return p.ids[rng.IntN(len(p.ids))], true
}

// take removes a random node from the pool, keeping at least keep.
func (p *nodePool) take(rng *rand.Rand, keep int) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) <= keep {
		return 0, false
	}
	i := rng.IntN(len(p.ids))
	id := p.ids[i]
	p.ids = slices.Delete(p.ids, i, i+1)
	return id, true
}

func (p *nodePool) add(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.ids, id) {
		p.ids = append(p.ids, id)
	}
}

func (p *nodePool) nextURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.added++
	return fmt.Sprintf("https://added-%d.jepsen.test", p.added)
}

// superseded remembers, per user, uids that a linearizable records read
// showed as not the newest: the only records the workload deletes. Such a
// record never becomes current again (the current record has the highest
// uid, and the highest uid is never one that was seen superseded), which
// is what lets the per-user model treat a delete as touching only older
// records.
type superseded struct {
	mu   sync.Mutex
	uids map[string][]int64
}

func (s *superseded) remember(email string, recs []RecordView) {
	if len(recs) < 2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.uids == nil {
		s.uids = map[string][]int64{}
	}
	for _, r := range recs[:len(recs)-1] {
		if !slices.Contains(s.uids[email], r.UID) {
			s.uids[email] = append(s.uids[email], r.UID)
		}
	}
}

// pop takes a remembered uid of a random user.
func (s *superseded) pop(rng *rand.Rand) (string, int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var emails []string
	for e, uids := range s.uids {
		if len(uids) > 0 {
			emails = append(emails, e)
		}
	}
	if len(emails) == 0 {
		return "", 0, false
	}
	slices.Sort(emails)
	e := emails[rng.IntN(len(emails))]
	i := rng.IntN(len(s.uids[e]))
	uid := s.uids[e][i]
	s.uids[e] = slices.Delete(s.uids[e], i, i+1)
	return e, uid, true
}

// randomChurn returns a churn user used so far, if any.
func (w *workload) randomChurn(rng *rand.Rand) (string, bool) {
	w.churnMu.Lock()
	defer w.churnMu.Unlock()
	if len(w.churn) == 0 {
		return "", false
	}
	return w.churn[rng.IntN(len(w.churn))], true
}

// lifecyclePlan plans one of the lifecycle operations; x in [0, 1000) picks
// which. It returns false when the pick does not apply now (no churn user
// yet, no superseded record known, too few nodes).
func (w *workload) lifecyclePlan(rng *rand.Rand, x int) (plan, bool) {
	email := rng.IntN(len(w.emails))
	p := plan{email: email}
	switch {
	case x < 60:
		// Churn users live a whole life: allocated once, then retired,
		// deleted, replaced, and still asked for.
		churn, ok := w.randomChurn(rng)
		if !ok {
			return p, false
		}
		switch y := rng.IntN(100); {
		case y < 20:
			p.kind, p.input = OpAllocate, keyed(email, epochSpan)
		case y < 40:
			p.kind, p.input = OpLogin, keyed(email, epochSpan+1+rng.Int64N(3))
		case y < 60:
			p.kind = OpGet
		case y < 75:
			p.kind = OpRetire
		case y < 85:
			p.kind, p.input = OpEvent, UserInput{Event: fsm.EventDelete}
		default:
			p.kind = OpReplace
		}
		p.input.Kind, p.input.Email = p.kind, churn
		return p, true
	case x < 85:
		p.kind = OpReplace
	case x < 105:
		p.kind = OpEvent
		event := fsm.EventReset
		if rng.IntN(2) == 0 {
			event = fsm.EventPasswordChange
		}
		p.input = UserInput{Event: event, Generation: fsm.SomeInt64(w.nextGeneration(rng, email) + 1)}
	case x < 135:
		p.kind = OpRecords
	case x < 165:
		e, uid, ok := w.superseded.pop(rng)
		if !ok {
			return p, false
		}
		p.kind, p.input = OpDeleteRecord, UserInput{Kind: OpDeleteRecord, Email: e, UID: uid}
		return p, true
	case x < 195:
		id, ok := w.nodes.pick(rng)
		if !ok {
			return p, false
		}
		p.kind, p.node = OpNodeChange, w.nodeChange(rng, id)
		p.input = UserInput{Kind: p.kind}
		return p, true
	case x < 205:
		id, ok := w.nodes.pick(rng)
		if !ok {
			return p, false
		}
		p.kind, p.input = OpUnassign, UserInput{Kind: OpUnassign, NodeID: id}
		return p, true
	case x < 211:
		id, ok := w.nodes.take(rng, 2)
		if !ok {
			return p, false
		}
		p.kind, p.input = OpRemoveNode, UserInput{Kind: OpRemoveNode, NodeID: id}
		return p, true
	default:
		p.kind, p.input = OpAddNode, UserInput{Kind: OpAddNode}
		p.add = &NodeAdd{URL: w.nodes.nextURL(), Capacity: w.capacity, Available: int64(len(w.emails))}
		return p, true
	}
	p.input.Kind, p.input.Email = p.kind, w.emails[email]
	return p, true
}

// lifecycleAnswer is what a lifecycle call answered, before it is judged:
// the one of its fields the operation fills.
type lifecycleAnswer struct {
	user    *wire.User
	count   int64
	records []wire.Record
	node    *wire.Node
}

// callLifecycle sends a lifecycle operation through the API client
// (docs/api.md).
func (w *workload) callLifecycle(ctx context.Context, c *client.Client, p plan) (lifecycleAnswer, client.Meta, error) {
	var (
		a    lifecycleAnswer
		meta client.Meta
		err  error
	)
	in := p.input
	switch p.kind {
	case OpRetire:
		a.user, meta, err = c.Retire(ctx, w.service, in.Email)
	case OpReplace:
		a.count, meta, err = c.Replace(ctx, w.service, in.Email, nil)
	case OpEvent:
		a.count, meta, err = c.Event(ctx, wire.EventRequest{Event: in.Event, Email: in.Email,
			Generation: optional(in.Generation.Set, in.Generation.V)})
	case OpRecords:
		a.records, meta, err = c.Records(ctx, w.service, in.Email, client.CallOptions{Consistency: "linearizable"})
	case OpDeleteRecord:
		meta, err = c.DeleteRecord(ctx, w.service, in.UID)
	case OpUnassign:
		a.count, meta, err = c.UnassignNode(ctx, w.service, in.NodeID)
	case OpRemoveNode:
		a.count, meta, err = c.RemoveNode(ctx, w.service, in.NodeID)
	case OpAddNode:
		a.node, meta, err = c.AddNode(ctx, w.service, wire.AddNodeRequest{Node: p.add.URL, Capacity: p.add.Capacity,
			NodeState: wire.NodeState{Available: &p.add.Available}})
	default:
		panic(fmt.Sprintf("jepsen: no call for %q", p.kind))
	}
	return a, meta, err
}

// lifecycleOutput records a definite answer to a lifecycle operation (err
// is nil or the state machine's refusal) in op. It returns an error when
// the answer cannot be understood.
func (w *workload) lifecycleOutput(op *Op, a lifecycleAnswer, meta client.Meta, err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		op.Output = UserOutput{Status: ae.Status}
		if op.Kind == OpRecords && ae.Status == fsm.StatusNotFound {
			op.Records, op.Output = []RecordView{}, UserOutput{}
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch op.Kind {
	case OpRetire:
		out, err := userOutput(a.user, "", meta, nil)
		op.Output = out
		return err
	case OpReplace, OpEvent, OpUnassign, OpRemoveNode:
		op.Output = UserOutput{Count: a.count}
	case OpRecords:
		op.Records = []RecordView{}
		for _, r := range a.records {
			op.Records = append(op.Records, recordView(r))
		}
		w.superseded.remember(op.Email, op.Records)
	case OpAddNode:
		if a.node == nil || a.node.ID == 0 {
			return errors.New("decode node: answer has no id")
		}
		added := *op.NodeAdd
		added.ID = a.node.ID
		op.NodeAdd = &added
		w.nodes.add(a.node.ID)
	case OpDeleteRecord:
	}
	return nil
}
