package histtest

import (
	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
)

// Run is a history with the final state read after it.
type Run struct {
	Ops         []history.Op
	Nodes       []history.NodeView
	Records     map[string][]history.RecordView
	MaxCapacity map[int64]int64
}

// GoodRun is a small consistent run: Email allocated (uid 7) then key
// changed (uid 9) on node 1; OtherEmail allocated on node 2 (uid 8).
func GoodRun() Run {
	h := &Builder{}
	h.OK(Alloc(1000, 1000, "0a00"), Created(User(7, 1, 1000, 1000, "0a00")), 0, 1).
		OK(history.UserInput{Kind: history.OpAllocate, Email: OtherEmail, Generation: fsm.SomeInt64(1000),
			KeysChangedAt: fsm.SomeInt64(1000), ClientState: fsm.SomeString("0b00")},
			Created(User(8, 2, 1000, 1000, "0b00")), 2, 3).
		OK(Login(2001, 2000, "0a01"), LoggedIn(User(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5).
		OK(Get(), Found(User(9, 1, 2001, 2000, "0a01", "0a00")), 6, 7)
	return Run{
		Ops: h.Ops,
		Nodes: []history.NodeView{
			{ID: 1, Capacity: 1, Available: 5, CurrentLoad: 2},
			{ID: 2, Capacity: 1, Available: 5, CurrentLoad: 1},
		},
		Records: map[string][]history.RecordView{
			Email: {
				{UID: 7, NodeID: 1, Generation: 1000, KeysChangedAt: 1000, ClientState: "0a00", CreatedAt: 10, ReplacedAt: 20},
				{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null},
			},
			OtherEmail: {{UID: 8, NodeID: 2, Generation: 1000, KeysChangedAt: 1000, ClientState: "0b00", CreatedAt: 15, ReplacedAt: fsm.Null}},
		},
		MaxCapacity: map[int64]int64{1: 1, 2: 1},
	}
}
