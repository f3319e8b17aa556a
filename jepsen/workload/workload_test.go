package workload

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
	"github.com/wimms-dev/wimms/jepsen/model"
)

// The model only covers what the workload sends: every login and allocation
// carries a positive generation and keys_changed_at and a hex client state;
// node changes never lower capacity.
func TestWorkloadStaysInsideTheModel(t *testing.T) {
	w := New(16, false)
	w.nodes.reset([]int64{1, 2, 3})
	w.capacity = 3
	rng := rand.New(rand.NewPCG(7, 7))
	kinds := map[history.OpKind]int{}
	for range 20000 {
		p := w.Next(rng)
		kinds[p.kind]++
		in := p.input
		nodeOp := p.kind == history.OpNodeChange || p.kind == history.OpAddNode || p.kind.NodeWide()
		if in.Kind != p.kind || (!nodeOp && !slices.Contains(w.AllEmails(), in.Email)) {
			t.Fatalf("plan %+v: kind or email wrong", p)
		}
		switch p.kind {
		case history.OpLogin, history.OpAllocate:
			if in.Generation.V <= 0 || in.KeysChangedAt.V <= 0 || !in.ClientState.Set {
				t.Fatalf("%s without generation, keys_changed_at or client state: %+v", p.kind, in)
			}
		case history.OpUpdate:
			if !in.Generation.Set {
				t.Fatalf("update without generation: %+v", in)
			}
		case history.OpEvent:
			if in.Event != fsm.EventDelete && !in.Generation.Set {
				t.Fatalf("%s event without generation: %+v", in.Event, in)
			}
		}
		if in.ClientState.Set {
			if _, err := hex.DecodeString(in.ClientState.V); err != nil || in.ClientState.V == "" {
				t.Fatalf("client state %q is not non-empty hex", in.ClientState.V)
			}
		}
	}
	for _, k := range []history.OpKind{history.OpAllocate, history.OpLogin, history.OpUpdate, history.OpGet, history.OpGetStale, history.OpNodeChange, history.OpRetire, history.OpReplace,
		history.OpEvent, history.OpRecords, history.OpUnassign, history.OpRemoveNode, history.OpAddNode} {
		if kinds[k] == 0 {
			t.Fatalf("workload never generates %s: %v", k, kinds)
		}
	}
}

// commandFor turns a plan into the state machine command the server would
// propose for it.
func commandFor(p Plan, ts int64) fsm.Command {
	cmd := fsm.Command{TS: ts, Service: Service, Email: p.input.Email,
		Generation: p.input.Generation, KeysChangedAt: p.input.KeysChangedAt, ClientState: p.input.ClientState}
	switch p.kind {
	case history.OpAllocate:
		cmd.Op = fsm.OpAllocate
	case history.OpLogin:
		cmd.Op = fsm.OpLogin
	case history.OpUpdate:
		cmd.Op = fsm.OpUpdateUser
	case history.OpNodeChange:
		cmd = fsm.Command{Op: fsm.OpUpdateNode, TS: ts, Service: Service, NodeID: p.node.NodeID,
			Downed: p.node.Downed, Backoff: p.node.Backoff, Capacity: p.node.Capacity, Available: p.node.Available}
	case history.OpRetire:
		cmd.Op = fsm.OpRetire
	case history.OpReplace:
		cmd.Op = fsm.OpReplace
	case history.OpEvent:
		cmd = fsm.Command{Op: fsm.OpAccountEvent, TS: ts, Email: p.input.Email, Event: p.input.Event, Generation: p.input.Generation}
	case history.OpDeleteRecord:
		cmd = fsm.Command{Op: fsm.OpDeleteRecord, TS: ts, Service: Service, UID: p.input.UID}
	case history.OpUnassign:
		cmd = fsm.Command{Op: fsm.OpUnassignNode, TS: ts, Service: Service, NodeID: p.input.NodeID}
	case history.OpRemoveNode:
		cmd = fsm.Command{Op: fsm.OpRemoveNode, TS: ts, Service: Service, NodeID: p.input.NodeID}
	case history.OpAddNode:
		cmd = fsm.Command{Op: fsm.OpAddNode, TS: ts, Service: Service, NodeURL: p.add.URL,
			Capacity: fsm.SomeInt64(p.add.Capacity), Available: fsm.SomeInt64(p.add.Available)}
	}
	return cmd
}

func outputOf(u fsm.User, created bool, fxaKid string, err *fsm.Error) history.UserOutput {
	if err != nil {
		return history.UserOutput{Status: err.Status}
	}
	old := u.OldClientStates
	if len(old) == 0 {
		old = nil
	}
	return history.UserOutput{Created: created, FxaKid: fxaKid, User: history.UserView{UID: u.UID, NodeID: u.NodeID,
		Generation: u.Generation, KeysChangedAt: u.KeysChangedAt, ClientState: u.ClientState, OldClientStates: old,
		Replaced: u.ReplacedAt != fsm.Null}}
}

// Runs the workload sequentially through the real state machine: the model
// must accept every answer. A disagreement is a bug in the model or in the
// state machine, found without a cluster.
func TestModelAgreesWithStateMachine(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		sm := fsm.New(fsm.Options{})
		ts := int64(1_700_000_000_000)
		apply := func(cmd fsm.Command) fsm.Result {
			ts++
			cmd.TS = ts
			return sm.Apply(cmd)
		}
		if res := apply(fsm.Command{Op: fsm.OpPutService, Service: Service, Pattern: fsm.SomeString(ServicePattern)}); res.Err != nil {
			t.Fatalf("create service: %v", res.Err)
		}
		w := New(6, false)
		w.capacity = 3
		var ids []int64
		for i := range 3 {
			res := apply(fsm.Command{Op: fsm.OpAddNode, Service: Service, NodeURL: "https://n" + string(rune('1'+i)),
				Capacity: fsm.SomeInt64(w.capacity), Available: fsm.SomeInt64(6)})
			if res.Err != nil {
				t.Fatalf("add node: %v", res.Err)
			}
			ids = append(ids, res.Node.ID)
		}
		w.nodes.reset(ids)
		rng := rand.New(rand.NewPCG(seed, 99))
		h := &histtest.Builder{}
		seen := map[string]int{}
		for i := range 4000 {
			p := w.Next(rng)
			var out history.UserOutput
			switch p.kind {
			case history.OpRecords:
				recs, err := sm.Records(Service, p.input.Email)
				var fe *fsm.Error
				if err != nil && !errors.As(err, &fe) {
					t.Fatalf("records: %v", err)
				}
				var views []history.RecordView
				for _, r := range recs {
					views = append(views, history.RecordView{UID: r.UID, NodeID: r.NodeID, Generation: r.Generation,
						KeysChangedAt: r.KeysChangedAt, ClientState: r.ClientState, CreatedAt: r.CreatedAt, ReplacedAt: r.ReplacedAt})
				}
				w.superseded.remember(p.input.Email, views)
				continue
			case history.OpAddNode:
				res := apply(commandFor(p, 0))
				if res.Err != nil {
					t.Fatalf("add node %+v: %v", p.add, res.Err)
				}
				w.nodes.add(res.Node.ID)
				continue
			case history.OpUnassign, history.OpRemoveNode, history.OpReplace, history.OpEvent, history.OpDeleteRecord:
				res := apply(commandFor(p, 0))
				out = history.UserOutput{Count: res.Count}
				if res.Err != nil {
					out = history.UserOutput{Status: res.Err.Status}
				}
				if p.kind == history.OpDeleteRecord && res.Err == nil {
					out = history.UserOutput{}
				}
				seen[string(p.kind)+" "+out.Status]++
				h.OK(p.input, out, 2*i, 2*i+1)
				continue
			case history.OpGet, history.OpGetStale:
				u, err := sm.GetUser(Service, p.input.Email)
				var fe *fsm.Error
				if err != nil && !errors.As(err, &fe) {
					t.Fatalf("get: %v", err)
				}
				out = outputOf(u, false, "", fe)
			case history.OpNodeChange:
				if res := apply(commandFor(p, 0)); res.Err != nil && res.Err.Status != fsm.StatusNotFound {
					t.Fatalf("node change %+v: %v", p.node, res.Err)
				}
				continue
			default:
				res := apply(commandFor(p, 0))
				var u fsm.User
				if res.User != nil {
					u = *res.User
				}
				out = outputOf(u, res.Created, res.FxaKid, res.Err)
			}
			p.input.Kind = history.OpGet // stale or not, a sequential read is linearizable
			if p.kind != history.OpGetStale {
				p.input.Kind = p.kind
			}
			h.OK(p.input, out, 2*i, 2*i+1)
		}
		ops := model.Operations(h.Ops)
		if got := porcupine.CheckOperationsTimeout(model.UserModel(), ops, 30*time.Second); got != porcupine.Ok {
			if why := model.FirstRejected(h.Ops); why != "" {
				t.Fatalf("seed %d: model rejects the state machine's answer\n %s", seed, why)
			}
			t.Fatalf("seed %d: porcupine says %s but every step replays", seed, got)
		}
		// The cross-check is only worth something if it went through the
		// interesting branches of the model.
		for _, op := range h.Ops {
			switch {
			case op.Output.User.Generation == fsm.MaxGeneration:
				seen["retired"]++
			case op.Output.User.Replaced:
				seen["replaced"]++
			case op.Output.Created:
				seen["created"]++
			case op.Output.Status != "":
				seen[op.Output.Status]++
			case len(op.Output.User.OldClientStates) > 0:
				seen["key changed"]++
			}
		}
		for _, want := range []string{"created", "key changed", fsm.StatusNotFound, fsm.StatusInvalidClientState,
			fsm.StatusInvalidGeneration, fsm.StatusInvalidKeysChangedAt, fsm.StatusNoNodeAvailable,
			"retired", "replaced", "delete-record ", "unassign-node ", "remove-node ",
			"replace ", "account-event "} {
			if seen[want] == 0 {
				t.Fatalf("seed %d: never saw %q (saw %v)", seed, want, seen)
			}
		}
	}
}

// The core workload (jepsen.Options.CoreWorkload) plans none of the lifecycle
// writes, so nodes fill up.
func TestCoreWorkloadHasNoLifecycleWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, core := range []bool{true, false} {
		w := New(6, core)
		w.nodes.reset([]int64{1, 2, 3})
		kinds := map[history.OpKind]int{}
		for range 20000 {
			kinds[w.Next(rng).kind]++
		}
		lifecycle := kinds[history.OpRetire] + kinds[history.OpReplace] + kinds[history.OpAddNode] + kinds[history.OpUnassign] + kinds[history.OpRemoveNode]
		if core && lifecycle != 0 {
			t.Fatalf("core workload planned lifecycle writes: %v", kinds)
		}
		if !core && lifecycle == 0 {
			t.Fatalf("full workload planned no lifecycle writes: %v", kinds)
		}
		if kinds[history.OpAllocate] == 0 || kinds[history.OpLogin] == 0 {
			t.Fatalf("core operations missing: %v", kinds)
		}
	}
}
