package fsm

import (
	"fmt"
	"math"
)

// MaxGeneration marks a retired user (docs/spec.md §1).
const MaxGeneration int64 = math.MaxInt64

// Null is the in-memory encoding of an absent nullable int64
// (keys_changed_at, replaced_at). Valid values are never negative.
const Null int64 = math.MinInt64

// Status values of docs/spec.md §4–5. They are the `status` of API error bodies.
const (
	StatusNotFound             = "not-found"
	StatusConflict             = "conflict"
	StatusBadRequest           = "bad-request"
	StatusNoNodeAvailable      = "no-node-available"
	StatusInvalidClientState   = "invalid-client-state"
	StatusInvalidGeneration    = "invalid-generation"
	StatusInvalidKeysChangedAt = "invalid-keysChangedAt"
	StatusNewUsersDisabled     = "new-users-disabled"
)

// Error is a deterministic, machine-readable failure of a command or read.
// It is part of a command's Result, so it must be encodable (see codec).
type Error struct {
	Status string // one of the Status* constants
	Field  string // the offending field (bad-request, login checks), may be ""
	Reason string // e.g. "stale value" for invalid-client-state; may be ""
	Msg    string // human readable description
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Status, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Status, e.Msg)
}

// Service is one {app}-{version} (docs/spec.md §1).
type Service struct {
	ID            int64
	Name          string
	Pattern       string
	ReleaseRate   string // exact decimal text as the operator wrote it, e.g. "0.1"
	AllowNewUsers bool
	Spread        int64
}

// Node is a storage server of a service (docs/spec.md §1).
type Node struct {
	ID          int64
	Service     string
	URL         string // the `node` field of the API
	Capacity    int64
	Available   int64
	CurrentLoad int64
	Downed      bool
	Backoff     bool
}

// Record is one stored assignment epoch of a user (docs/spec.md §1), as returned by
// reads. NodeURL is "" and NodeDowned false when the node was removed.
type Record struct {
	UID           int64
	Service       string
	Email         string
	NodeID        int64
	NodeURL       string
	NodeDowned    bool
	Generation    int64
	KeysChangedAt int64 // Null when absent
	ClientState   string
	CreatedAt     int64
	ReplacedAt    int64 // Null while current
}

// User is the current record of a user plus derived fields (docs/spec.md §1).
type User struct {
	Record
	APIEndpoint     string   // "" when the node was removed
	OldClientStates []string // newest first, distinct, never equal to ClientState
	FirstSeenAt     int64
}

// Op identifies a command. Values are part of the log encoding: never
// renumber, only append.
type Op uint8

const (
	OpNoop          Op = 1  // barrier / leader's first entry of a term
	OpPutService    Op = 2  // create or update
	OpDeleteService Op = 3  //
	OpAddNode       Op = 4  //
	OpUpdateNode    Op = 5  //
	OpUnassignNode  Op = 6  //
	OpRemoveNode    Op = 7  //
	OpAllocate      Op = 8  //
	OpUpdateUser    Op = 9  //
	OpLogin         Op = 10 //
	OpRetire        Op = 11 //
	OpReplace       Op = 12 //
	OpDeleteRecord  Op = 13 //
	OpAccountEvent  Op = 14 //
	OpImport        Op = 15 // upsert a batch of imported services, nodes and records (import.go)
	// OpImportKeepTimes is OpImport that also takes created_at going down
	// as uids grow. Propose it only once every member runs a binary that
	// knows it (an older one cannot decode it).
	OpImportKeepTimes Op = 16
)

// OptInt64 / OptString / OptBool are optional command fields ("absent" is
// not the same as zero).
type OptInt64 struct {
	Set bool
	V   int64
}
type OptString struct {
	Set bool
	V   string
}
type OptBool struct {
	Set bool
	V   bool
}

func SomeInt64(v int64) OptInt64    { return OptInt64{true, v} }
func SomeString(v string) OptString { return OptString{true, v} }
func SomeBool(v bool) OptBool       { return OptBool{true, v} }

// Command is one state-machine command. It is flat: each Op reads the fields
// it documents and ignores the rest. TS and Seed are stamped by the proposer
// (docs/spec.md §2); the fsm never reads a clock or a random source.
type Command struct {
	Op   Op
	TS   int64  // proposer's wall clock, ms since epoch
	Seed uint64 // for spread > 1

	// Exactly-once writes (docs/spec.md §6): when IdempotencyKey != "", the fsm
	// remembers (key → RequestHash, Result) for a bounded window; a repeat
	// with the same hash returns the stored Result, with another hash a
	// conflict error.
	IdempotencyKey string
	RequestHash    uint64

	Service string // service name; all ops but OpNoop and OpAccountEvent
	Email   string // user ops, account event

	// OpPutService
	Pattern       OptString
	ReleaseRate   OptString // decimal text, 0 < r ≤ 1
	AllowNewUsers OptBool
	Spread        OptInt64

	// OpAddNode (NodeURL), OpUpdateNode/OpUnassignNode/OpRemoveNode (NodeID)
	NodeID      int64
	NodeURL     string
	Capacity    OptInt64
	Available   OptInt64
	CurrentLoad OptInt64
	Downed      OptBool
	Backoff     OptBool

	// OpAllocate, OpUpdateUser, OpLogin, OpAccountEvent
	Generation    OptInt64
	KeysChangedAt OptInt64
	ClientState   OptString
	Node          OptString // node URL for allocate / update

	At    OptInt64 // OpReplace
	UID   int64    // OpDeleteRecord
	Event string   // OpAccountEvent: "delete", "reset", "passwordChange"

	// OpImport: the batch to upsert. A command carrying it is encoded in
	// command format 2 (format 1 has no field for it).
	Import *ImportBatch
}

// Result is the deterministic answer of one applied command. It is stored
// verbatim for idempotent repeats, so it must be fully encodable.
type Result struct {
	Err     *Error
	Created bool     // service/user/node created (201) vs returned/updated (200)
	Service *Service // OpPutService
	Node    *Node    // OpAddNode, OpUpdateNode
	User    *User    // OpAllocate, OpUpdateUser, OpLogin, OpRetire
	FxaKid  string   // OpLogin
	Count   int64    // unassigned / replaced / applied

	// Import is OpImport's answer; encoded in result format 2.
	Import *ImportCounts
	// Repeated is true when this Result was returned from the idempotency
	// table instead of being computed now.
	Repeated bool
}

// OldRecordsQuery is the purge job's listing (docs/spec.md §4 "old records").
type OldRecordsQuery struct {
	Service string
	Now     int64 // caller's clock; reads are not commands
	GraceMs int64 // default 7 days
	Limit   int   // default 100
	Offset  int
}

// Stats is GET /v1/services/{service}/stats.
type Stats struct {
	Users   int64 // live records
	Records int64 // stored records
	Nodes   int64
}

// Reader is every read the API serves. Implementations must be safe for
// concurrent use with Apply.
type Reader interface {
	GetService(name string) (Service, error)
	ListServices() []Service
	ListNodes(service string) ([]Node, error)
	GetNode(service string, id int64) (Node, error)
	GetUser(service, email string) (User, error)
	Records(service, email string) ([]Record, error)
	OldRecords(q OldRecordsQuery) ([]Record, error)
	// CountUsers counts live records created at or before asOf, in one
	// service or (service == "") all.
	CountUsers(service string, asOf int64) (int64, error)
	Stats(service string) (Stats, error)
}
