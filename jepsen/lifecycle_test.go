package jepsen

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
)

func retireOp() UserInput  { return UserInput{Kind: OpRetire} }
func replaceOp() UserInput { return UserInput{Kind: OpReplace} }
func eventOp(event string, gen int64) UserInput {
	in := UserInput{Kind: OpEvent, Event: event}
	if gen > 0 {
		in.Generation = fsm.SomeInt64(gen)
	}
	return in
}
func deleteOp(uid int64) UserInput    { return UserInput{Kind: OpDeleteRecord, UID: uid} }
func unassignOp(node int64) UserInput { return UserInput{Kind: OpUnassign, NodeID: node} }
func removeOp(node int64) UserInput   { return UserInput{Kind: OpRemoveNode, NodeID: node} }
func counted(n int64) UserOutput      { return UserOutput{Count: n} }
func deleted() UserOutput             { return UserOutput{} }

// replaced marks a view as answered with a replaced_at.
func replaced(u UserView) UserView { u.Replaced = true; return u }

func retiredView(uid, node, kca int64, cs string, old ...string) UserView {
	return replaced(user(uid, node, fsm.MaxGeneration, kca, cs, old...))
}

const maxGen = fsm.MaxGeneration

// Histories a correct server can produce with the lifecycle operations.
func TestModelAcceptsLifecycleHistories(t *testing.T) {
	alloc7 := func() *historyBuilder {
		return (&historyBuilder{}).ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	cases := map[string]*historyBuilder{
		"retire, then every later answer is the retired record": alloc7().
			ok(retireOp(), found(retiredView(7, 2, 1000, "0a00")), 2, 3).
			ok(get(), found(retiredView(7, 2, 1000, "0a00")), 4, 5).
			ok(alloc(1000, 1000, "0a00"), found(retiredView(7, 2, 1000, "0a00")), 6, 7).
			ok(login(1001, 1000, "0a00"), failed(fsm.StatusInvalidGeneration), 8, 9).
			ok(updateKeys(2001, 2000, "0a01"), found(retiredView(7, 2, 1000, "0a00")), 10, 11).
			ok(eventOp(fsm.EventDelete, 0), counted(0), 12, 13).
			ok(replaceOp(), counted(0), 14, 15),
		"retire an unknown user": (&historyBuilder{}).ok(retireOp(), failed(fsm.StatusNotFound), 0, 1).
			ok(replaceOp(), counted(0), 2, 3).ok(eventOp(fsm.EventReset, 5), counted(0), 4, 5),
		"account delete retires": alloc7().
			ok(eventOp(fsm.EventDelete, 0), counted(1), 2, 3).
			ok(get(), found(retiredView(7, 2, 1000, "0a00")), 4, 5),
		"replace, then allocate creates a new record elsewhere with the stored fields": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5).
			ok(replaceOp(), counted(0), 6, 7).
			ok(alloc(5000, 5000, "0aff"), created(user(11, 3, 1000, 1000, "0a00")), 8, 9).
			ok(alloc(5000, 5000, "0aff"), found(user(11, 3, 1000, 1000, "0a00")), 10, 11),
		"replaced user: login with a new client state moves it, retire then does nothing": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(retireOp(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5).
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 1, 2001, 2000, "0a01", "0a00")), 6, 7),
		"replaced user: an update with a new client state stays on its node": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(updateKeys(2001, 2000, "0a01"), found(user(9, 2, 2001, 2000, "0a01", "0a00")), 4, 5),
		"replaced user: allocation may find no node": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(alloc(1000, 1000, "0a00"), failed(fsm.StatusNoNodeAvailable), 4, 5).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 6, 7),
		"reset sets generation - 1 in place, and only upwards": alloc7().
			ok(eventOp(fsm.EventReset, 1500), counted(1), 2, 3).
			ok(get(), found(user(7, 2, 1499, 1000, "0a00")), 4, 5).
			ok(eventOp(fsm.EventPasswordChange, 1200), counted(0), 6, 7).
			ok(get(), found(user(7, 2, 1499, 1000, "0a00")), 8, 9),
		"delete a superseded record: its client state is no longer old": alloc7().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			ok(deleteOp(7), deleted(), 4, 5).
			ok(get(), found(user(9, 2, 2001, 2000, "0a01")), 6, 7).
			ok(deleteOp(7), failed(fsm.StatusNotFound), 8, 9),
		"delete of a record created by an unknown write": alloc7().
			info(updateKeys(2001, 2000, "0a01"), 2, 3).
			ok(updateKeys(3001, 3000, "0a02"), found(user(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 4, 5).
			ok(deleteOp(10), deleted(), 6, 7).
			ok(get(), found(user(12, 2, 3001, 3000, "0a02", "0a00")), 8, 9),
		"unassign of the user's node replaces it": alloc7().
			ok(unassignOp(2), counted(4), 2, 3).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5),
		"unassign of another node changes nothing": alloc7().
			ok(unassignOp(3), counted(4), 2, 3).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"an unassign that may have happened": alloc7().
			info(unassignOp(2), 2, 3).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 6, 7),
		"node removed: the key change of the replaced user is placed afresh": alloc7().
			ok(removeOp(2), counted(3), 2, 3).
			ok(updateKeys(2001, 2000, "0a01"), found(user(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5),
		"unassign of the node an unseen record landed on": (&historyBuilder{}).
			info(alloc(1000, 1000, "0a00"), 0, 1).
			ok(unassignOp(3), counted(1), 2, 3).
			ok(get(), found(replaced(user(7, 3, 1000, 1000, "0a00"))), 4, 5),
	}
	judgeEach(t, cases, porcupine.Ok)
}

// Histories a correct server can never produce, one per new operation.
func TestModelRejectsImpossibleLifecycleHistories(t *testing.T) {
	alloc7 := func() *historyBuilder {
		return (&historyBuilder{}).ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	retired7 := func() *historyBuilder {
		return alloc7().ok(retireOp(), found(retiredView(7, 2, 1000, "0a00")), 2, 3)
	}
	cases := map[string]*historyBuilder{
		"retire answers a live record": alloc7().
			ok(retireOp(), found(user(7, 2, maxGen, 1000, "0a00")), 2, 3),
		"retired user allocated again": retired7().
			ok(alloc(1000, 1000, "0a00"), created(user(9, 1, 1000, 1000, "0a00")), 4, 5),
		"retired user live again on a read": retired7().
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"retired user signs in": retired7().
			ok(login(1001, 1000, "0a00"), loggedIn(retiredView(7, 2, 1000, "0a00")), 4, 5),
		"retire of an unknown user succeeds": (&historyBuilder{}).
			ok(retireOp(), found(retiredView(7, 2, 1000, "0a00")), 0, 1),
		"replace counts nothing for a live user": alloc7().
			ok(replaceOp(), counted(0), 2, 3),
		"read after replace shows a live record": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"allocation after replace returns the old record": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(alloc(1000, 1000, "0a00"), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"re-allocation takes the given fields instead of the stored ones": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(alloc(5000, 5000, "0aff"), created(user(9, 2, 5000, 5000, "0aff")), 4, 5),
		"re-allocation reuses a lower uid": alloc7().
			ok(replaceOp(), counted(1), 2, 3).
			ok(alloc(1000, 1000, "0a00"), created(user(6, 2, 1000, 1000, "0a00")), 4, 5),
		"account delete counts a user that does not exist": (&historyBuilder{}).
			ok(eventOp(fsm.EventDelete, 0), counted(1), 0, 1),
		"reset lowers the generation": alloc7().
			ok(eventOp(fsm.EventReset, 500), counted(1), 2, 3).
			ok(get(), found(user(7, 2, 499, 1000, "0a00")), 4, 5),
		"reset sets the given generation, not generation - 1": alloc7().
			ok(eventOp(fsm.EventReset, 1500), counted(1), 2, 3).
			ok(get(), found(user(7, 2, 1500, 1000, "0a00")), 4, 5),
		"password change not counted": alloc7().
			ok(eventOp(fsm.EventPasswordChange, 1500), counted(0), 2, 3),
		"delete of a superseded record leaves its client state old": alloc7().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			ok(deleteOp(7), deleted(), 4, 5).
			ok(get(), found(user(9, 2, 2001, 2000, "0a01", "0a00")), 6, 7),
		"a deleted record is found again": alloc7().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			ok(deleteOp(7), deleted(), 4, 5).
			ok(deleteOp(7), deleted(), 6, 7),
		"delete of a stored superseded record not found": alloc7().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			ok(deleteOp(7), failed(fsm.StatusNotFound), 4, 5),
		"delete of the current record": alloc7().
			ok(deleteOp(7), deleted(), 2, 3),
		"unassign of its node leaves the user live": alloc7().
			ok(unassignOp(2), counted(1), 2, 3).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"unassign of another node replaces the user": alloc7().
			ok(unassignOp(3), counted(1), 2, 3).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5),
		"replaced user's key change leaves its existing node": alloc7().
			ok(unassignOp(2), counted(1), 2, 3).
			ok(updateKeys(2001, 2000, "0a01"), found(user(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5),
		"unassign undone": alloc7().
			ok(unassignOp(2), counted(1), 2, 3).
			ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 6, 7),
	}
	judgeEach(t, cases, porcupine.Illegal)
}

// A node-wide write is checked in every user's partition: one unassign
// that replaced two users is fine, and a user it cannot explain is caught.
func TestNodeWideWriteReachesEveryUser(t *testing.T) {
	h := &historyBuilder{}
	h.ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1).
		ok(UserInput{Kind: OpAllocate, Email: otherEmail, Generation: fsm.SomeInt64(1000), KeysChangedAt: fsm.SomeInt64(1000),
			ClientState: fsm.SomeString("0b00")}, created(user(8, 2, 1000, 1000, "0b00")), 0, 1).
		ok(unassignOp(2), counted(2), 2, 3).
		ok(get(), found(replaced(user(7, 2, 1000, 1000, "0a00"))), 4, 5).
		ok(UserInput{Kind: OpGet, Email: otherEmail}, found(replaced(user(8, 2, 1000, 1000, "0b00"))), 4, 5)
	if got := h.linearizable(t); got != porcupine.Ok {
		t.Fatalf("unassign of two users judged %s", got)
	}
	parts := partitionByEmail(linearOps(h.ops))
	if len(parts) != 2 || len(parts[0]) != 3 || len(parts[1]) != 3 {
		t.Fatalf("partitions %d, want 2 of 3 operations each", len(parts))
	}
	h.ok(UserInput{Kind: OpGet, Email: otherEmail}, found(user(8, 2, 1000, 1000, "0b00")), 6, 7)
	if got := h.linearizable(t); got != porcupine.Illegal {
		t.Fatalf("a user live again after its node was unassigned judged %s", got)
	}
}

// lifecycleRun: testEmail key-changed (7 → 9) on node 1 and its old record
// purged; otherEmail on node 2, which was then removed.
func lifecycleRun() CheckInput {
	h := &historyBuilder{}
	h.ok(alloc(1000, 1000, "0a00"), created(user(7, 1, 1000, 1000, "0a00")), 0, 1).
		ok(UserInput{Kind: OpAllocate, Email: otherEmail, Generation: fsm.SomeInt64(1000), KeysChangedAt: fsm.SomeInt64(1000),
			ClientState: fsm.SomeString("0b00")}, created(user(8, 2, 1000, 1000, "0b00")), 0, 1).
		ok(login(2001, 2000, "0a01"), loggedIn(user(9, 1, 2001, 2000, "0a01", "0a00")), 2, 3)
	h.ops = append(h.ops, Op{ID: len(h.ops), Kind: OpRecords, Email: testEmail, Input: UserInput{Kind: OpRecords, Email: testEmail},
		Outcome: OutcomeOK, Call: 4e6, Return: 5e6, Records: []RecordView{
			{UID: 7, NodeID: 1, Generation: 1000, KeysChangedAt: 1000, ClientState: "0a00", CreatedAt: 10, ReplacedAt: 20},
			{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null}}})
	h.ok(deleteOp(7), deleted(), 6, 7).
		ok(removeOp(2), counted(1), 8, 9)
	h.ops[len(h.ops)-1].Email = ""
	h.ok(UserInput{Kind: OpGet, Email: otherEmail}, found(replaced(user(8, 2, 1000, 1000, "0b00"))), 10, 11)
	return CheckInput{
		History: h.ops,
		Emails:  []string{testEmail, otherEmail},
		Final: FinalState{
			Nodes: []NodeView{{ID: 1, Capacity: 1, Available: 5, CurrentLoad: 1}},
			Records: map[string][]RecordView{
				testEmail:  {{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null}},
				otherEmail: {{UID: 8, NodeID: 2, Generation: 1000, KeysChangedAt: 1000, ClientState: "0b00", CreatedAt: 15, ReplacedAt: 30}},
			},
		},
		MaxCapacity: map[int64]int64{1: 1, 2: 1},
		Timeout:     10e9,
	}
}

// Purged records, removed nodes and replaced current records are all
// possible: none of them is an anomaly.
func TestCheckAcceptsLifecycleRun(t *testing.T) {
	res := Check(lifecycleRun())
	if !res.Valid() {
		t.Fatalf("verdict %s (%s), anomalies %+v", res.Verdict, res.Linearizable, res.Anomalies)
	}
}

func TestCheckLifecycleInvariants(t *testing.T) {
	checkMutations(t, lifecycleRun, []mutation{
		{"a delete that kept the load", func(in *CheckInput) { in.Final.Nodes[0].CurrentLoad = 2 }, AnomalyLoadMismatch},
		{"a record lost that was never deleted", func(in *CheckInput) {
			in.History[4].Input.UID = 5
		}, AnomalyLostWrite},
		{"a node never removed is missing", func(in *CheckInput) {
			in.History[5].Input.NodeID = 3
		}, AnomalyUnknownNode},
		{"replaced_at cleared after a read saw it", func(in *CheckInput) {
			in.History[3].Records[1].ReplacedAt = 25 // the final state shows uid 9 live
		}, AnomalyReplacedAt},
		{"a record's generation went down between reads", func(in *CheckInput) {
			in.Final.Records[testEmail][0].Generation = 2000
		}, AnomalyDecrease},
	})
}
