package history

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wimms-dev/wimms/fsm"
)

// Outcome classifies what a client knows about one operation (Jepsen's
// :ok / :fail / :info).
type Outcome string

const (
	// OutcomeOK: the operation answered, and the answer (success or a state
	// machine error such as not-found) is definite.
	OutcomeOK Outcome = "ok"
	// OutcomeFail: the operation certainly had no effect (no connection,
	// no-leader, not-leader, a refused read...).
	OutcomeFail Outcome = "fail"
	// OutcomeInfo: a write whose effect is unknown (timeout after sending,
	// 504 unknown-outcome). It stays in the history as maybe-happened.
	OutcomeInfo Outcome = "info"
)

// NodeChange is a PATCH of a node: flags, capacity, available, which never
// move users (docs/spec.md §4), so node changes are outside the per-user
// model; the final state bounds their effect (capacity, loads).
type NodeChange struct {
	NodeID    int64        `json:"node_id"`
	Downed    fsm.OptBool  `json:"downed"`
	Backoff   fsm.OptBool  `json:"backoff"`
	Capacity  fsm.OptInt64 `json:"capacity"`
	Available fsm.OptInt64 `json:"available"`
}

// Op is one client operation as recorded in the history. Call and Return
// are measured on the harness's monotonic clock from the start of the run;
// an info op's Return is when the client gave up waiting.
type Op struct {
	ID         int         `json:"id"`
	Client     int         `json:"client"`
	Member     string      `json:"member"`
	Kind       OpKind      `json:"kind"`
	Email      string      `json:"email,omitempty"`
	Input      UserInput   `json:"input"`
	NodeChange *NodeChange `json:"node_change,omitempty"`
	// NodeAdd is the node an OpAddNode asked for; its id is in Output.Count
	// when answered.
	NodeAdd *NodeAdd `json:"node_add,omitempty"`
	// Records is what an OpRecords read returned (oldest first).
	Records    []RecordView  `json:"records,omitempty"`
	Outcome    Outcome       `json:"outcome"`
	Output     UserOutput    `json:"output"`
	HTTPStatus int           `json:"http_status,omitempty"`
	Error      string        `json:"error,omitempty"`
	Call       time.Duration `json:"call_ns"`
	Return     time.Duration `json:"return_ns"`
	// Final marks the linearizable reads of the final phase, after healing.
	Final bool `json:"final,omitempty"`
	// MaxStaleness is the max_staleness a stale read was sent with.
	MaxStaleness time.Duration `json:"max_staleness_ns,omitempty"`
}

func (o Op) String() string {
	in := DescribeInput(o.Input)
	if o.NodeChange != nil {
		in = fmt.Sprintf("node-change %+v", *o.NodeChange)
	}
	if o.NodeAdd != nil {
		in = fmt.Sprintf("add-node %+v", *o.NodeAdd)
	}
	out := DescribeOutput(o.Output)
	if o.Outcome != OutcomeOK {
		out = string(o.Outcome)
		if o.Error != "" {
			out += " (" + o.Error + ")"
		}
	}
	return fmt.Sprintf("op %d client %d via %s [%s, %s] %s %s -> %s", o.ID, o.Client, o.Member,
		o.Call.Round(time.Millisecond), o.Return.Round(time.Millisecond), o.Email, in, out)
}

// History collects operations from concurrent clients. Counters are kept
// separately so the progress line never takes the lock.
type History struct {
	mu  sync.Mutex
	ops []Op

	ok, fail, info atomic.Int64
}

// Add records a completed operation and assigns its id.
func (h *History) Add(op Op) Op {
	h.mu.Lock()
	op.ID = len(h.ops)
	h.ops = append(h.ops, op)
	h.mu.Unlock()
	switch op.Outcome {
	case OutcomeOK:
		h.ok.Add(1)
	case OutcomeFail:
		h.fail.Add(1)
	case OutcomeInfo:
		h.info.Add(1)
	}
	return op
}

// Ops returns a copy of the recorded operations in completion order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Counts returns how many operations ended ok, fail and info.
func (h *History) Counts() (ok, fail, info int64) {
	return h.ok.Load(), h.fail.Load(), h.info.Load()
}

// WriteJSONLines writes one JSON object per line.
func WriteJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for i, item := range items {
		if err := enc.Encode(item); err != nil {
			return fmt.Errorf("encode item %d: %w", i, err)
		}
	}
	return nil
}

// MarshalJSON writes only the fields that were sent.
func (in UserInput) MarshalJSON() ([]byte, error) {
	m := map[string]any{"kind": in.Kind}
	if in.Email != "" {
		m["email"] = in.Email
	}
	if in.Generation.Set {
		m["generation"] = in.Generation.V
	}
	if in.KeysChangedAt.Set {
		m["keys_changed_at"] = in.KeysChangedAt.V
	}
	if in.ClientState.Set {
		m["client_state"] = in.ClientState.V
	}
	if in.Event != "" {
		m["event"] = in.Event
	}
	if in.UID != 0 {
		m["uid"] = in.UID
	}
	if in.NodeID != 0 {
		m["node_id"] = in.NodeID
	}
	return json.Marshal(m)
}

// MarshalJSON writes the answer in the API's vocabulary (null for an
// absent keys_changed_at).
func (out UserOutput) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	switch {
	case out.Unknown:
		m["unknown"] = true
	case out.Status != "":
		m["status"] = out.Status
	case out.User.UID == 0 && out.Count != 0:
		m["count"] = out.Count
	case out.User.UID == 0:
		return []byte("null"), nil // no answer (a failed or info op), or a count of 0
	default:
		var kca any
		if out.User.KeysChangedAt != fsm.Null {
			kca = out.User.KeysChangedAt
		}
		m["created"] = out.Created
		m["user"] = map[string]any{"uid": out.User.UID, "node_id": out.User.NodeID, "generation": out.User.Generation,
			"keys_changed_at": kca, "client_state": out.User.ClientState, "old_client_states": out.User.OldClientStates,
			"replaced": out.User.Replaced}
		if out.FxaKid != "" {
			m["fxa_kid"] = out.FxaKid
		}
	}
	return json.Marshal(m)
}
