package jepsen

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
)

// OpKind names one kind of client operation in the history.
type OpKind string

const (
	OpAllocate   OpKind = "allocate"    // POST /users
	OpLogin      OpKind = "login"       // POST /users/{email}/login
	OpUpdate     OpKind = "update"      // PATCH /users/{email}
	OpGet        OpKind = "get"         // GET /users/{email}?consistency=linearizable
	OpGetStale   OpKind = "get-stale"   // GET /users/{email}?consistency=stale
	OpNodeChange OpKind = "node-change" // PATCH /nodes/{id}; not part of the per-user model
)

// isWrite reports whether an operation of this kind may change state, and
// so whether an unknown outcome must be kept in the history.
func (k OpKind) isWrite() bool {
	return k == OpAllocate || k == OpLogin || k == OpUpdate || k == OpNodeChange
}

// UserInput is what a client asked of one user (the porcupine input). Unset
// optional fields were not sent.
type UserInput struct {
	Kind          OpKind
	Email         string
	Generation    fsm.OptInt64
	KeysChangedAt fsm.OptInt64
	ClientState   fsm.OptString
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
}

// userState is the model's state of one (service, email). It is a value type
// compared with ==, so the old client states are joined into one string (a
// client state never contains a comma). A uid or node id of 0 is symbolic:
// a write with an unknown outcome created a record we have not seen yet; the
// first observation pins it, subject to UIDFloor (fresh uids only grow).
type userState struct {
	Exists          bool
	UID             int64
	UIDFloor        int64
	NodeID          int64
	Generation      int64
	KeysChangedAt   int64 // fsm.Null when absent
	ClientState     string
	OldClientStates string // comma-joined, newest first
}

func (s userState) oldStates() []string {
	if s.OldClientStates == "" {
		return nil
	}
	return strings.Split(s.OldClientStates, ",")
}

func (s userState) hasOldState(cs string) bool {
	return slices.Contains(s.oldStates(), cs)
}

// pushOld returns the old client states after the current one is replaced
// by next: the current one first, distinct, never equal to next.
func (s userState) pushOld(next string) string {
	out := []string{}
	for _, cs := range append([]string{s.ClientState}, s.oldStates()...) {
		if cs != next && !slices.Contains(out, cs) {
			out = append(out, cs)
		}
	}
	return strings.Join(out, ",")
}

// decision is what docs/spec.md §4 says an operation does to a user state. It is
// computed without looking at the output, so that a definite output can be
// matched against it and an unknown one can be applied symbolically.
type decision struct {
	status    string // the op fails with this status and changes nothing
	mayNoNode bool   // creating a user may also fail with no-node-available
	create    bool   // no record yet: a fresh uid on any node
	newRecord bool   // client-state change: a fresh uid above the current one, same node
	created   bool   // allocate must answer 201
	login     bool   // the answer carries fxa_kid
	next      userState
}

func present(o fsm.OptInt64) (int64, bool) {
	if o.Set && o.V > 0 {
		return o.V, true
	}
	return 0, false
}

func maxKCA(stored int64, given fsm.OptInt64) int64 {
	if !given.Set {
		return stored
	}
	if stored == fsm.Null || given.V > stored {
		return given.V
	}
	return stored
}

// decide applies docs/spec.md §4 to one user for the operations the workload sends
// (no explicit node, no retire/replace/unassign, allow_new_users true).
func decide(s userState, in UserInput) decision {
	switch in.Kind {
	case OpGet, OpGetStale:
		if !s.Exists {
			return decision{status: fsm.StatusNotFound}
		}
		return decision{next: s}

	case OpAllocate:
		if s.Exists {
			return decision{next: s}
		}
		kca := fsm.Null
		if in.KeysChangedAt.Set {
			kca = in.KeysChangedAt.V
		}
		return decision{create: true, created: true, mayNoNode: true, next: userState{
			Exists: true, Generation: in.Generation.V, KeysChangedAt: kca, ClientState: in.ClientState.V,
		}}

	case OpUpdate:
		if !s.Exists {
			return decision{status: fsm.StatusNotFound}
		}
		next := s
		next.Generation = max(s.Generation, in.Generation.V)
		next.KeysChangedAt = maxKCA(s.KeysChangedAt, in.KeysChangedAt)
		if !in.ClientState.Set || in.ClientState.V == s.ClientState {
			return decision{next: next}
		}
		if s.hasOldState(in.ClientState.V) {
			return decision{status: fsm.StatusInvalidClientState}
		}
		next.ClientState = in.ClientState.V
		next.OldClientStates = s.pushOld(in.ClientState.V)
		return decision{newRecord: true, next: next}

	case OpLogin:
		return decideLogin(s, in)
	}
	panic(fmt.Sprintf("jepsen: model has no rule for %q", in.Kind))
}

func decideLogin(s userState, in UserInput) decision {
	gen, hasGen := present(in.Generation)
	kca, hasKCA := present(in.KeysChangedAt)
	cs := in.ClientState.V
	if !s.Exists {
		next := userState{Exists: true, Generation: gen, KeysChangedAt: fsm.Null, ClientState: cs}
		if hasKCA {
			next.KeysChangedAt = kca
		}
		return decision{create: true, mayNoNode: true, login: true, next: next}
	}
	if s.Generation == fsm.MaxGeneration {
		if hasGen && gen < fsm.MaxGeneration {
			return decision{status: fsm.StatusInvalidGeneration}
		}
		return decision{login: true, next: s}
	}
	storedGen, hasStoredGen := s.Generation, s.Generation > 0
	storedKCA, hasStoredKCA := s.KeysChangedAt, s.KeysChangedAt != fsm.Null && s.KeysChangedAt > 0
	changes := cs != s.ClientState
	switch {
	case hasKCA && hasStoredKCA && kca > storedKCA && hasGen && gen < kca: // a
		return decision{status: fsm.StatusInvalidKeysChangedAt}
	case s.ClientState != "" && cs == "": // b
		return decision{status: fsm.StatusInvalidClientState}
	case s.hasOldState(cs): // c
		return decision{status: fsm.StatusInvalidClientState}
	case changes && hasGen && hasStoredGen && gen <= storedGen: // d
		return decision{status: fsm.StatusInvalidClientState}
	case changes && hasKCA && hasStoredKCA && kca <= storedKCA: // e
		return decision{status: fsm.StatusInvalidClientState}
	case hasGen && hasStoredGen && gen < storedGen: // f
		return decision{status: fsm.StatusInvalidGeneration}
	case hasStoredKCA && (!hasKCA || kca < storedKCA): // g
		return decision{status: fsm.StatusInvalidKeysChangedAt}
	}
	next := s
	switch {
	case hasGen:
		next.Generation = gen
	case hasKCA && kca > s.Generation && (s.KeysChangedAt == fsm.Null || kca > s.KeysChangedAt):
		next.Generation = kca
	}
	if hasKCA {
		next.KeysChangedAt = kca
	}
	if !changes {
		return decision{login: true, next: next}
	}
	next.ClientState = cs
	next.OldClientStates = s.pushOld(cs)
	return decision{newRecord: true, login: true, next: next}
}

// ExpectedFxaKid is docs/spec.md §4 login step 5 for a returned record, or "" when
// the client state is not hex (the workload only sends hex).
func ExpectedFxaKid(generation, keysChangedAt int64, clientState string) string {
	raw, err := hex.DecodeString(clientState)
	if err != nil {
		return ""
	}
	ts := keysChangedAt
	if ts == fsm.Null || ts <= 0 {
		ts = generation
	}
	return fmt.Sprintf("%013d-%s", ts, base64.RawURLEncoding.EncodeToString(raw))
}

// matchUser checks an answered record against the expected state and pins
// a symbolic uid / node id. It returns the (possibly pinned) state.
func matchUser(want userState, got UserView) (userState, bool) {
	if got.Generation != want.Generation || got.KeysChangedAt != want.KeysChangedAt ||
		got.ClientState != want.ClientState || strings.Join(got.OldClientStates, ",") != want.OldClientStates {
		return want, false
	}
	if want.UID == 0 {
		if got.UID <= want.UIDFloor {
			return want, false
		}
		want.UID, want.UIDFloor = got.UID, 0
	} else if got.UID != want.UID {
		return want, false
	}
	if want.NodeID == 0 {
		if got.NodeID <= 0 {
			return want, false
		}
		want.NodeID = got.NodeID
	} else if got.NodeID != want.NodeID {
		return want, false
	}
	return want, true
}

// stepUser is the sequential specification of one user: the states the user
// may be in after in was answered with out, from state s. An empty result
// means the answer is impossible.
func stepUser(s userState, in UserInput, out UserOutput) []userState {
	d := decide(s, in)
	if out.Unknown {
		// The write may not have happened (or failed, which changes
		// nothing), or it happened with an answer we did not see.
		if d.status != "" {
			return []userState{s}
		}
		return []userState{s, symbolicNext(s, d)}
	}
	if d.status != "" {
		if out.Status == d.status {
			return []userState{s}
		}
		return nil
	}
	if out.Status == fsm.StatusNoNodeAvailable && d.mayNoNode {
		return []userState{s}
	}
	if out.Status != "" {
		return nil
	}
	if in.Kind == OpAllocate && out.Created != d.created {
		return nil
	}
	if d.login && out.FxaKid != ExpectedFxaKid(out.User.Generation, out.User.KeysChangedAt, out.User.ClientState) {
		return nil
	}
	want := d.next
	switch {
	case d.create:
		want.UID, want.UIDFloor, want.NodeID = 0, 0, 0
	case d.newRecord:
		// A fresh uid above the current one, on the current node.
		want.UID, want.UIDFloor = 0, uidFloor(s)
	}
	next, ok := matchUser(want, out.User)
	if !ok {
		return nil
	}
	return []userState{next}
}

func uidFloor(s userState) int64 {
	if s.UID != 0 {
		return s.UID
	}
	return s.UIDFloor
}

// symbolicNext applies a successful decision whose answer was not seen.
func symbolicNext(s userState, d decision) userState {
	next := d.next
	switch {
	case d.create:
		next.UID, next.UIDFloor, next.NodeID = 0, 0, 0
	case d.newRecord:
		next.UID, next.UIDFloor = 0, uidFloor(s)
	}
	return next
}

// UserModel is the porcupine model of docs/spec.md §4, partitioned per email (the
// workload has one service). Stale reads and node changes are not part of it.
func UserModel() porcupine.Model {
	model := porcupine.NondeterministicModel{
		Partition: partitionByEmail,
		Init:      func() []interface{} { return []interface{}{userState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			var next []interface{}
			for _, s := range stepUser(state.(userState), input.(UserInput), output.(UserOutput)) {
				next = append(next, s)
			}
			return next
		},
		Equal: func(a, b interface{}) bool { return a.(userState) == b.(userState) },
		Hash: func(state interface{}) uint64 {
			h := fnv.New64a()
			fmt.Fprintf(h, "%+v", state.(userState))
			return h.Sum64()
		},
		DescribeOperation: describeOperation,
		DescribeState:     func(state interface{}) string { return describeState(state.(userState)) },
	}
	return model.ToModel()
}

func partitionByEmail(history []porcupine.Operation) [][]porcupine.Operation {
	byEmail := map[string][]porcupine.Operation{}
	var emails []string
	for _, op := range history {
		email := op.Input.(UserInput).Email
		if _, ok := byEmail[email]; !ok {
			emails = append(emails, email)
		}
		byEmail[email] = append(byEmail[email], op)
	}
	slices.Sort(emails)
	out := make([][]porcupine.Operation, 0, len(emails))
	for _, email := range emails {
		out = append(out, byEmail[email])
	}
	return out
}

func describeOptInt(name string, o fsm.OptInt64) string {
	if !o.Set {
		return ""
	}
	return fmt.Sprintf(" %s=%d", name, o.V)
}

func describeInput(in UserInput) string {
	s := string(in.Kind) + describeOptInt("gen", in.Generation) + describeOptInt("kca", in.KeysChangedAt)
	if in.ClientState.Set {
		s += " cs=" + in.ClientState.V
	}
	return s
}

func describeView(u UserView) string {
	kca := "null"
	if u.KeysChangedAt != fsm.Null {
		kca = fmt.Sprint(u.KeysChangedAt)
	}
	return fmt.Sprintf("uid=%d node=%d gen=%d kca=%s cs=%s old=[%s]", u.UID, u.NodeID, u.Generation, kca,
		u.ClientState, strings.Join(u.OldClientStates, ","))
}

func describeOutput(out UserOutput) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Status != "":
		return out.Status
	case out.Created:
		return "created " + describeView(out.User)
	}
	return describeView(out.User)
}

func describeOperation(input, output interface{}) string {
	return describeInput(input.(UserInput)) + " -> " + describeOutput(output.(UserOutput))
}

func describeState(s userState) string {
	if !s.Exists {
		return "no user"
	}
	uid := fmt.Sprint(s.UID)
	if s.UID == 0 {
		uid = fmt.Sprintf("?>%d", s.UIDFloor) // created by a write whose answer was lost
	}
	node := fmt.Sprint(s.NodeID)
	if s.NodeID == 0 {
		node = "?"
	}
	kca := "null"
	if s.KeysChangedAt != fsm.Null {
		kca = fmt.Sprint(s.KeysChangedAt)
	}
	return fmt.Sprintf("uid=%s node=%s gen=%d kca=%s cs=%s old=[%s]", uid, node, s.Generation, kca,
		s.ClientState, s.OldClientStates)
}
