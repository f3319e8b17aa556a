package workload

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
	"github.com/wimms-dev/wimms/jepsen/history"
)

// The lifecycle part of the workload: every write of docs/spec.md §4 that
// is not allocate, login or update — retire, replace, account events,
// record deletion, and node add / update / unassign / remove. Its calls,
// through the typed API client like every other operation's, are all in
// callLifecycle and lifecycleOutput below.

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

func (s *superseded) remember(email string, recs []history.RecordView) {
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
func (w *Workload) randomChurn(rng *rand.Rand) (string, bool) {
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
func (w *Workload) lifecyclePlan(rng *rand.Rand, x int) (Plan, bool) {
	email := rng.IntN(len(w.emails))
	p := Plan{email: email}
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
			p.kind, p.input = history.OpAllocate, keyed(email, epochSpan)
		case y < 40:
			p.kind, p.input = history.OpLogin, keyed(email, epochSpan+1+rng.Int64N(3))
		case y < 60:
			p.kind = history.OpGet
		case y < 75:
			p.kind = history.OpRetire
		case y < 85:
			p.kind, p.input = history.OpEvent, history.UserInput{Event: fsm.EventDelete}
		default:
			p.kind = history.OpReplace
		}
		p.input.Kind, p.input.Email = p.kind, churn
		return p, true
	case x < 85:
		p.kind = history.OpReplace
	case x < 105:
		p.kind = history.OpEvent
		event := fsm.EventReset
		if rng.IntN(2) == 0 {
			event = fsm.EventPasswordChange
		}
		p.input = history.UserInput{Event: event, Generation: fsm.SomeInt64(w.nextGeneration(rng, email) + 1)}
	case x < 135:
		p.kind = history.OpRecords
	case x < 165:
		e, uid, ok := w.superseded.pop(rng)
		if !ok {
			return p, false
		}
		p.kind, p.input = history.OpDeleteRecord, history.UserInput{Kind: history.OpDeleteRecord, Email: e, UID: uid}
		return p, true
	case x < 195:
		id, ok := w.nodes.pick(rng)
		if !ok {
			return p, false
		}
		p.kind, p.node = history.OpNodeChange, w.nodeChange(rng, id)
		p.input = history.UserInput{Kind: p.kind}
		return p, true
	case x < 205:
		id, ok := w.nodes.pick(rng)
		if !ok {
			return p, false
		}
		p.kind, p.input = history.OpUnassign, history.UserInput{Kind: history.OpUnassign, NodeID: id}
		return p, true
	case x < 211:
		id, ok := w.nodes.take(rng, 2)
		if !ok {
			return p, false
		}
		p.kind, p.input = history.OpRemoveNode, history.UserInput{Kind: history.OpRemoveNode, NodeID: id}
		return p, true
	default:
		p.kind, p.input = history.OpAddNode, history.UserInput{Kind: history.OpAddNode}
		p.add = &history.NodeAdd{URL: w.nodes.nextURL(), Capacity: w.capacity, Available: int64(len(w.emails))}
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
func (w *Workload) callLifecycle(ctx context.Context, c *client.Client, p Plan) (lifecycleAnswer, client.Meta, error) {
	var (
		a    lifecycleAnswer
		meta client.Meta
		err  error
	)
	in := p.input
	switch p.kind {
	case history.OpRetire:
		a.user, meta, err = c.Retire(ctx, w.service, in.Email)
	case history.OpReplace:
		a.count, meta, err = c.Replace(ctx, w.service, in.Email, nil)
	case history.OpEvent:
		a.count, meta, err = c.Event(ctx, wire.EventRequest{Event: in.Event, Email: in.Email,
			Generation: optional(in.Generation.Set, in.Generation.V)})
	case history.OpRecords:
		a.records, meta, err = c.Records(ctx, w.service, in.Email, client.CallOptions{Consistency: "linearizable"})
	case history.OpDeleteRecord:
		meta, err = c.DeleteRecord(ctx, w.service, in.UID)
	case history.OpUnassign:
		a.count, meta, err = c.UnassignNode(ctx, w.service, in.NodeID)
	case history.OpRemoveNode:
		a.count, meta, err = c.RemoveNode(ctx, w.service, in.NodeID)
	case history.OpAddNode:
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
func (w *Workload) lifecycleOutput(op *history.Op, a lifecycleAnswer, meta client.Meta, err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		op.Output = history.UserOutput{Status: ae.Status}
		if op.Kind == history.OpRecords && ae.Status == fsm.StatusNotFound {
			op.Records, op.Output = []history.RecordView{}, history.UserOutput{}
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch op.Kind {
	case history.OpRetire:
		out, err := userOutput(a.user, "", meta, nil)
		op.Output = out
		return err
	case history.OpReplace, history.OpEvent, history.OpUnassign, history.OpRemoveNode:
		op.Output = history.UserOutput{Count: a.count}
	case history.OpRecords:
		op.Records = []history.RecordView{}
		for _, r := range a.records {
			op.Records = append(op.Records, RecordViewOf(r))
		}
		w.superseded.remember(op.Email, op.Records)
	case history.OpAddNode:
		if a.node == nil || a.node.ID == 0 {
			return errors.New("decode node: answer has no id")
		}
		added := *op.NodeAdd
		added.ID = a.node.ID
		op.NodeAdd = &added
		w.nodes.add(a.node.ID)
	case history.OpDeleteRecord:
	}
	return nil
}
