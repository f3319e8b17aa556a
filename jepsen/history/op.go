package history

import "github.com/wimms-dev/wimms/fsm"

// OpKind names one kind of client operation in the history.
type OpKind string

const (
	OpAllocate   OpKind = "allocate"    // POST /users
	OpLogin      OpKind = "login"       // POST /users/{email}/login
	OpUpdate     OpKind = "update"      // PATCH /users/{email}
	OpGet        OpKind = "get"         // GET /users/{email}?consistency=linearizable
	OpGetStale   OpKind = "get-stale"   // GET /users/{email}?consistency=stale
	OpNodeChange OpKind = "node-change" // PATCH /nodes/{id}; not part of the per-user model

	OpRetire       OpKind = "retire"        // POST /users/{email}/retire
	OpReplace      OpKind = "replace"       // POST /users/{email}/replace (at = now)
	OpEvent        OpKind = "account-event" // POST /v1/events (delete, reset, passwordChange)
	OpDeleteRecord OpKind = "delete-record" // DELETE /records/{uid}: only uids a records read showed superseded
	OpRecords      OpKind = "records"       // GET /users/{email}/records?consistency=linearizable; outside the model
	OpAddNode      OpKind = "add-node"      // POST /nodes; outside the model (a new candidate is "any node")
	// Node-wide writes: every user's partition gets a copy (see model.PartitionByEmail).
	OpUnassign   OpKind = "unassign-node" // POST /nodes/{id}/unassign
	OpRemoveNode OpKind = "remove-node"   // DELETE /nodes/{id}
)

// IsWrite reports whether an operation of this kind may change state, and
// so whether an unknown outcome must be kept in the history.
func (k OpKind) IsWrite() bool {
	switch k {
	case OpGet, OpGetStale, OpRecords:
		return false
	}
	return true
}

// InUserModel: the kinds porcupine checks (node-wide ones in every user's
// partition).
func (k OpKind) InUserModel() bool {
	switch k {
	case OpAllocate, OpLogin, OpUpdate, OpGet, OpRetire, OpReplace, OpEvent, OpDeleteRecord, OpUnassign, OpRemoveNode:
		return true
	}
	return false
}

// NodeWide: one operation that changes every user with a record on a node.
func (k OpKind) NodeWide() bool { return k == OpUnassign || k == OpRemoveNode }

// UserInput is what a client asked of one user (the porcupine input). Unset
// optional fields were not sent.
type UserInput struct {
	Kind          OpKind
	Email         string
	Generation    fsm.OptInt64
	KeysChangedAt fsm.OptInt64
	ClientState   fsm.OptString
	// Event is the account event of OpEvent (Generation is its generation).
	Event string
	// UID is the record OpDeleteRecord deletes.
	UID int64
	// NodeID is the node of OpUnassign / OpRemoveNode.
	NodeID int64
}

// UserView is the part of an answered user record the model checks.
// KeysChangedAt is fsm.Null when the API returned null.
type UserView struct {
	UID             int64
	NodeID          int64
	Generation      int64
	KeysChangedAt   int64
	ClientState     string
	OldClientStates []string
	// Replaced: the answered current record has a replaced_at (retired,
	// replaced or unassigned).
	Replaced bool
}

// UserOutput is what the client observed (the porcupine output). Unknown is
// set for a write whose outcome the client cannot know (timeout, connection
// lost after sending, 504): the model lets it have happened or not.
type UserOutput struct {
	Unknown bool
	Status  string // "" on success, else the state machine's error status
	Created bool   // allocate answered 201
	User    UserView
	FxaKid  string // login only
	// Count is the n of {"replaced": n} (replace) or {"applied": n}
	// (account event).
	Count int64
}

// NodeAdd is a POST of a new node. ID is the id answered (0: not seen).
type NodeAdd struct {
	URL       string `json:"node"`
	Capacity  int64  `json:"capacity"`
	Available int64  `json:"available"`
	ID        int64  `json:"id,omitempty"`
}

// NodeView is one node of the final state (GET /nodes).
type NodeView struct {
	ID          int64  `json:"id"`
	URL         string `json:"node"`
	Capacity    int64  `json:"capacity"`
	Available   int64  `json:"available"`
	CurrentLoad int64  `json:"current_load"`
	Downed      bool   `json:"downed"`
	Backoff     bool   `json:"backoff"`
}

// RecordView is one stored record of the final state. KeysChangedAt and
// ReplacedAt are fsm.Null when null.
type RecordView struct {
	UID           int64  `json:"uid"`
	NodeID        int64  `json:"node_id"`
	Generation    int64  `json:"generation"`
	KeysChangedAt int64  `json:"keys_changed_at"`
	ClientState   string `json:"client_state"`
	CreatedAt     int64  `json:"created_at"`
	ReplacedAt    int64  `json:"replaced_at"`
}
