package model

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
)

// userState is the model's state of one (service, email). It is a value type
// compared with ==, so the older records are joined into one string. A uid
// or node id of 0 is symbolic: a write with an unknown outcome created a
// record we have not seen yet; the first observation pins it, subject to
// UIDFloor (fresh uids only grow).
type userState struct {
	Exists        bool
	UID           int64
	UIDFloor      int64
	NodeID        int64
	Generation    int64 // fsm.MaxGeneration: retired
	KeysChangedAt int64 // fsm.Null when absent
	ClientState   string
	// Replaced: the current record has a replaced_at (retire, replace,
	// unassign or remove of its node). Such a user gets a fresh record on
	// its next allocate or login, unless retired.
	Replaced bool
	// NodeGone: the current record's node was removed, so a key change
	// chooses a node afresh instead of staying.
	NodeGone bool
	// Older are the user's superseded records, oldest first, as
	// "uid:client_state" joined by ";" (uid 0: created by an unknown write,
	// never seen). old_client_states is derived from them.
	Older string
}

type olderRecord struct {
	uid int64
	cs  string
}

func (s userState) older() []olderRecord {
	if s.Older == "" {
		return nil
	}
	var out []olderRecord
	for _, part := range strings.Split(s.Older, ";") {
		uid, cs, _ := strings.Cut(part, ":")
		var r olderRecord
		fmt.Sscan(uid, &r.uid)
		r.cs = cs
		out = append(out, r)
	}
	return out
}

func joinOlder(recs []olderRecord) string {
	parts := make([]string, len(recs))
	for i, r := range recs {
		parts[i] = fmt.Sprintf("%d:%s", r.uid, r.cs)
	}
	return strings.Join(parts, ";")
}

func (s userState) retired() bool { return s.Exists && s.Generation == fsm.MaxGeneration }

// oldStates is old_client_states: the distinct client states of the older
// records that differ from the current one, newest first.
func (s userState) oldStates() []string {
	var out []string
	recs := s.older()
	for i := len(recs) - 1; i >= 0; i-- {
		if cs := recs[i].cs; cs != s.ClientState && !slices.Contains(out, cs) {
			out = append(out, cs)
		}
	}
	return out
}

func (s userState) hasOldState(cs string) bool {
	return slices.Contains(s.oldStates(), cs)
}

// superseded returns the older records once the current one is superseded
// by a new record.
func (s userState) superseded() string {
	cur := fmt.Sprintf("%d:%s", s.UID, s.ClientState)
	if s.Older == "" {
		return cur
	}
	return s.Older + ";" + cur
}

// decision is what docs/spec.md §4 says an operation does to a user state. It is
// computed without looking at the output, so that a definite output can be
// matched against it and an unknown one can be applied symbolically.
type decision struct {
	status    string // the op fails with this status and changes nothing
	mayNoNode bool   // a node is chosen (§3): the op may also fail with no-node-available
	create    bool   // no record yet: a fresh uid on any node
	newRecord bool   // a new record: a fresh uid above the current one
	anyNode   bool   // with newRecord: on a node chosen afresh, not the current one
	created   bool   // allocate must answer 201
	login     bool   // the answer carries fxa_kid
	count     int64  // replace / account event: the n answered
	counted   bool   // the answer is a count, not a user
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

// renew is the state after a new record supersedes the current one.
func renew(s userState) userState {
	next := s
	next.Older = s.superseded()
	next.Replaced, next.NodeGone = false, false
	return next
}

// decide applies docs/spec.md §4 to one user for the operations the workload
// sends (no explicit node, no replace with an earlier "at", allow_new_users
// true). Delete-record and the node-wide operations are in stepUser: their
// effect depends on which record they hit.
func decide(s userState, in history.UserInput) decision {
	switch in.Kind {
	case history.OpGet, history.OpGetStale:
		if !s.Exists {
			return decision{status: fsm.StatusNotFound}
		}
		return decision{next: s}

	case history.OpAllocate:
		return decideAllocate(s, in)

	case history.OpUpdate:
		return decideUpdate(s, in)

	case history.OpLogin:
		return decideLogin(s, in)

	case history.OpRetire:
		if !s.Exists {
			return decision{status: fsm.StatusNotFound}
		}
		return decision{next: retire(s)}

	case history.OpReplace:
		if !s.Exists || s.Replaced {
			return decision{counted: true, next: s}
		}
		next := s
		next.Replaced = true
		return decision{counted: true, count: 1, next: next}

	case history.OpEvent:
		return decideEvent(s, in)
	}
	panic(fmt.Sprintf("jepsen: model has no rule for %q", in.Kind))
}

// decideAllocate: an existing user that is live or retired keeps its
// record; a replaced one gets a new record on a node chosen afresh; a new
// user gets its first record.
func decideAllocate(s userState, in history.UserInput) decision {
	if s.Exists && (!s.Replaced || s.retired()) {
		return decision{next: s}
	}
	if s.Exists {
		// Re-allocation after replace / unassign / remove: the stored
		// fields, a fresh uid, a node chosen afresh.
		return decision{newRecord: true, anyNode: true, created: true, mayNoNode: true, next: renew(s)}
	}
	kca := fsm.Null
	if in.KeysChangedAt.Set {
		kca = in.KeysChangedAt.V
	}
	return decision{create: true, created: true, mayNoNode: true, next: userState{
		Exists: true, Generation: in.Generation.V, KeysChangedAt: kca, ClientState: in.ClientState.V,
	}}
}

// decideUpdate: generation and keys_changed_at only grow, in place; a new
// client state starts a new record, refused when it is an old one.
func decideUpdate(s userState, in history.UserInput) decision {
	if !s.Exists {
		return decision{status: fsm.StatusNotFound}
	}
	if s.retired() {
		return decision{next: s} // nothing can change a retired user
	}
	next := s
	next.Generation = max(s.Generation, in.Generation.V)
	next.KeysChangedAt = maxKCA(s.KeysChangedAt, in.KeysChangedAt)
	if !in.ClientState.Set || in.ClientState.V == s.ClientState {
		return decision{next: next} // in place, replaced or not
	}
	if s.hasOldState(in.ClientState.V) {
		return decision{status: fsm.StatusInvalidClientState}
	}
	next = renew(next)
	next.ClientState = in.ClientState.V
	// Same node while it exists (even for a replaced user); else §3.
	return decision{newRecord: true, anyNode: s.NodeGone, mayNoNode: s.NodeGone, next: next}
}

// decideEvent applies an FxA account event: delete retires the user,
// reset and passwordChange raise the current record's generation.
func decideEvent(s userState, in history.UserInput) decision {
	switch {
	case !s.Exists:
		return decision{counted: true, next: s}
	case in.Event == fsm.EventDelete:
		if s.Replaced {
			return decision{counted: true, next: s}
		}
		return decision{counted: true, count: 1, next: retire(s)}
	}
	// reset / passwordChange: the current record, in place, replaced
	// or not, gets generation max(stored, given − 1).
	next := s
	next.Generation = max(s.Generation, in.Generation.V-1)
	if next.Generation == s.Generation {
		return decision{counted: true, next: s}
	}
	return decision{counted: true, count: 1, next: next}
}

// retire: a live current record gets replaced_at and MAX_GENERATION; a
// replaced one is left as it is (there is no live record to retire).
func retire(s userState) userState {
	if s.Replaced {
		return s
	}
	next := s
	next.Generation, next.Replaced = fsm.MaxGeneration, true
	return next
}

func decideLogin(s userState, in history.UserInput) decision {
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
	if s.retired() {
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
	if !changes && !s.Replaced {
		return decision{login: true, next: next}
	}
	next = renew(next)
	next.ClientState = cs
	// A key change of a live user stays on its node; a replaced user is
	// allocated afresh (§3), which may find no node.
	return decision{newRecord: true, anyNode: s.Replaced, mayNoNode: s.Replaced, login: true, next: next}
}

// ExpectedFxaKid is docs/spec.md §4 login step 5 for a returned record, or "" when
// the client state is not hex (the workload only sends hex).
func ExpectedFxaKid(generation, keysChangedAt int64, clientState string) string {
	raw, err := hex.DecodeString(clientState)
	if err != nil {
		raw = []byte(clientState) // docs/spec.md §4: a state that is not hex counts as its bytes
	}
	ts := keysChangedAt
	if ts == fsm.Null || ts <= 0 {
		ts = generation
	}
	return fmt.Sprintf("%013d-%s", ts, base64.RawURLEncoding.EncodeToString(raw))
}

// matchUser checks an answered record against the expected state and pins
// a symbolic uid / node id. It returns the (possibly pinned) state.
func matchUser(want userState, got history.UserView) (userState, bool) {
	if got.Generation != want.Generation || got.KeysChangedAt != want.KeysChangedAt ||
		got.ClientState != want.ClientState || got.Replaced != want.Replaced ||
		!slices.Equal(got.OldClientStates, want.oldStates()) {
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
func stepUser(s userState, in history.UserInput, out history.UserOutput) []userState {
	switch in.Kind {
	case history.OpDeleteRecord:
		return stepDeleteRecord(s, in.UID, out)
	case history.OpUnassign, history.OpRemoveNode:
		return stepNodeWide(s, in, out)
	}
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
	if d.counted {
		if out.Count != d.count {
			return nil
		}
		return []userState{d.next}
	}
	if in.Kind == history.OpAllocate && out.Created != d.created {
		return nil
	}
	if d.login && out.FxaKid != ExpectedFxaKid(out.User.Generation, out.User.KeysChangedAt, out.User.ClientState) {
		return nil
	}
	next, ok := matchUser(symbolicNext(s, d), out.User)
	if !ok {
		return nil
	}
	return []userState{next}
}

// stepDeleteRecord: the workload deletes only uids a linearizable records
// read showed superseded (not the newest), and a record once superseded
// never becomes current again (the current record is the highest uid, and
// only superseded ones are deleted), so a delete removes one older record
// or finds none. An older record whose uid the model never saw (created by
// an unknown write) may be the one.
func stepDeleteRecord(s userState, uid int64, out history.UserOutput) []userState {
	recs := s.older()
	var deleted []userState
	remove := func(i int) userState {
		next := s
		next.Older = joinOlder(slices.Delete(slices.Clone(recs), i, i+1))
		return next
	}
	known := slices.IndexFunc(recs, func(r olderRecord) bool { return r.uid == uid })
	if known >= 0 {
		deleted = append(deleted, remove(known))
	} else if uid != s.UID {
		for i, r := range recs {
			if r.uid == 0 {
				deleted = append(deleted, remove(i))
			}
		}
	}
	switch {
	case out.Unknown:
		return append([]userState{s}, deleted...)
	case out.Status == fsm.StatusNotFound:
		if known >= 0 {
			return nil
		}
		return []userState{s}
	case out.Status == "":
		return deleted
	}
	return nil
}

// stepNodeWide applies an unassign or remove of node N to one user: its
// current record is replaced when it is on N. A symbolic node may or may
// not be N. The count answered is not checked here.
func stepNodeWide(s userState, in history.UserInput, out history.UserOutput) []userState {
	if out.Status != "" && !out.Unknown {
		return []userState{s} // not-found: the node was already gone
	}
	hit := func() userState {
		next := s
		next.NodeID, next.Replaced = in.NodeID, true
		if in.Kind == history.OpRemoveNode {
			next.NodeGone = true
		}
		return next
	}
	var applied []userState
	switch {
	case !s.Exists:
		return []userState{s}
	case s.NodeID == in.NodeID:
		applied = []userState{hit()}
	case s.NodeID == 0:
		applied = []userState{s, hit()}
	default:
		return []userState{s}
	}
	if out.Unknown {
		return append([]userState{s}, applied...)
	}
	return applied
}

func uidFloor(s userState) int64 {
	if s.UID != 0 {
		return s.UID
	}
	return s.UIDFloor
}

// symbolicNext applies a successful decision: a new record's uid (and, when
// it was placed by §3, its node) are unknown until the answer shows them.
func symbolicNext(s userState, d decision) userState {
	next := d.next
	switch {
	case d.create:
		next.UID, next.UIDFloor, next.NodeID = 0, 0, 0
	case d.newRecord:
		next.UID, next.UIDFloor = 0, uidFloor(s)
		if d.anyNode {
			next.NodeID = 0
		}
	}
	return next
}

// UserModel is the porcupine model of docs/spec.md §4, partitioned per email (the
// workload has one service). Stale reads and node changes are not part of it.
func UserModel() porcupine.Model {
	model := porcupine.NondeterministicModel{
		Partition: PartitionByEmail,
		Init:      func() []interface{} { return []interface{}{userState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			var next []interface{}
			for _, s := range stepUser(state.(userState), input.(history.UserInput), output.(history.UserOutput)) {
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

// PartitionByEmail splits the checked history per user. A node-wide write
// (unassign, remove node) changes every user with a record on the node, so
// each user's partition gets its own copy of it. Each copy may take effect
// at its own point of the operation's interval, which is weaker than one
// point for all users: it can only accept more, never reject a correct
// history. What one point would add (the count answered, the loads) is
// checked on the final state.
func PartitionByEmail(ops []porcupine.Operation) [][]porcupine.Operation {
	byEmail := map[string][]porcupine.Operation{}
	var emails []string
	var nodeWide []int
	for i, op := range ops {
		in := op.Input.(history.UserInput)
		if in.Kind.NodeWide() {
			nodeWide = append(nodeWide, i)
			continue
		}
		if _, ok := byEmail[in.Email]; !ok {
			emails = append(emails, in.Email)
		}
		byEmail[in.Email] = append(byEmail[in.Email], op)
	}
	slices.Sort(emails)
	out := make([][]porcupine.Operation, 0, len(emails))
	for _, email := range emails {
		part := byEmail[email]
		for _, i := range nodeWide {
			op := ops[i]
			in := op.Input.(history.UserInput)
			in.Email = email
			op.Input = in
			part = append(part, op)
		}
		out = append(out, part)
	}
	return out
}

// OpsOfEmail returns the operations of one user's partition.
func OpsOfEmail(ops []porcupine.Operation, email string) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		if in := op.Input.(history.UserInput); in.Email == email || in.Kind.NodeWide() {
			out = append(out, op)
		}
	}
	return out
}

func describeOperation(input, output interface{}) string {
	return history.DescribeInput(input.(history.UserInput)) + " -> " + history.DescribeOutput(output.(history.UserOutput))
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
	flags := ""
	if s.Replaced {
		flags += " replaced"
	}
	if s.NodeGone {
		flags += " node-removed"
	}
	return fmt.Sprintf("uid=%s node=%s gen=%s kca=%s cs=%s old=[%s] records=[%s]%s", uid, node, history.DescribeGen(s.Generation), kca,
		s.ClientState, strings.Join(s.oldStates(), ","), s.Older, flags)
}
