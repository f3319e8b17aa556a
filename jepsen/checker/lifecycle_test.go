package checker

import (
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
)

// lifecycleRun: histtest.Email key-changed (7 → 9) on node 1 and its old record
// purged; histtest.OtherEmail on node 2, which was then removed.
func lifecycleRun() CheckInput {
	h := &histtest.Builder{}
	h.OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 1, 1000, 1000, "0a00")), 0, 1).
		OK(history.UserInput{Kind: history.OpAllocate, Email: histtest.OtherEmail, Generation: fsm.SomeInt64(1000), KeysChangedAt: fsm.SomeInt64(1000),
			ClientState: fsm.SomeString("0b00")}, histtest.Created(histtest.User(8, 2, 1000, 1000, "0b00")), 0, 1).
		OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), 2, 3)
	h.Ops = append(h.Ops, history.Op{ID: len(h.Ops), Kind: history.OpRecords, Email: histtest.Email, Input: history.UserInput{Kind: history.OpRecords, Email: histtest.Email},
		Outcome: history.OutcomeOK, Call: 4e6, Return: 5e6, Records: []history.RecordView{
			{UID: 7, NodeID: 1, Generation: 1000, KeysChangedAt: 1000, ClientState: "0a00", CreatedAt: 10, ReplacedAt: 20},
			{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null}}})
	h.OK(histtest.Delete(7), histtest.Deleted(), 6, 7).
		OK(histtest.Remove(2), histtest.Counted(1), 8, 9)
	h.Ops[len(h.Ops)-1].Email = ""
	h.OK(history.UserInput{Kind: history.OpGet, Email: histtest.OtherEmail}, histtest.Found(histtest.Replaced(histtest.User(8, 2, 1000, 1000, "0b00"))), 10, 11)
	return CheckInput{
		History: h.Ops,
		Emails:  []string{histtest.Email, histtest.OtherEmail},
		Final: FinalState{
			Nodes: []history.NodeView{{ID: 1, Capacity: 1, Available: 5, CurrentLoad: 1}},
			Records: map[string][]history.RecordView{
				histtest.Email:      {{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null}},
				histtest.OtherEmail: {{UID: 8, NodeID: 2, Generation: 1000, KeysChangedAt: 1000, ClientState: "0b00", CreatedAt: 15, ReplacedAt: 30}},
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
			in.Final.Records[histtest.Email][0].Generation = 2000
		}, AnomalyDecrease},
	})
}
