package model_test

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
	"github.com/wimms-dev/wimms/jepsen/model"
)

// Histories a correct server can produce with the lifecycle operations.
func TestModelAcceptsLifecycleHistories(t *testing.T) {
	alloc7 := func() *histtest.Builder {
		return (&histtest.Builder{}).OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	cases := map[string]*histtest.Builder{
		"retire, then every later answer is the retired record": alloc7().
			OK(histtest.Retire(), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 4, 5).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 6, 7).
			OK(histtest.Login(1001, 1000, "0a00"), histtest.Failed(fsm.StatusInvalidGeneration), 8, 9).
			OK(histtest.UpdateKeys(2001, 2000, "0a01"), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 10, 11).
			OK(histtest.Event(fsm.EventDelete, 0), histtest.Counted(0), 12, 13).
			OK(histtest.Replace(), histtest.Counted(0), 14, 15),
		"retire an unknown user": (&histtest.Builder{}).OK(histtest.Retire(), histtest.Failed(fsm.StatusNotFound), 0, 1).
			OK(histtest.Replace(), histtest.Counted(0), 2, 3).OK(histtest.Event(fsm.EventReset, 5), histtest.Counted(0), 4, 5),
		"account delete retires": alloc7().
			OK(histtest.Event(fsm.EventDelete, 0), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 4, 5),
		"replace, then allocate creates a new record elsewhere with the stored fields": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5).
			OK(histtest.Replace(), histtest.Counted(0), 6, 7).
			OK(histtest.Alloc(5000, 5000, "0aff"), histtest.Created(histtest.User(11, 3, 1000, 1000, "0a00")), 8, 9).
			OK(histtest.Alloc(5000, 5000, "0aff"), histtest.Found(histtest.User(11, 3, 1000, 1000, "0a00")), 10, 11),
		"replaced user: login with a new client state moves it, retire then does nothing": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Retire(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5).
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), 6, 7),
		"replaced user: an update with a new client state stays on its node": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.UpdateKeys(2001, 2000, "0a01"), histtest.Found(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 4, 5),
		"replaced user: allocation may find no node": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Failed(fsm.StatusNoNodeAvailable), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 6, 7),
		"reset sets generation - 1 in place, and only upwards": alloc7().
			OK(histtest.Event(fsm.EventReset, 1500), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1499, 1000, "0a00")), 4, 5).
			OK(histtest.Event(fsm.EventPasswordChange, 1200), histtest.Counted(0), 6, 7).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1499, 1000, "0a00")), 8, 9),
		"delete a superseded record: its client state is no longer old": alloc7().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			OK(histtest.Delete(7), histtest.Deleted(), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.User(9, 2, 2001, 2000, "0a01")), 6, 7).
			OK(histtest.Delete(7), histtest.Failed(fsm.StatusNotFound), 8, 9),
		"delete of a record created by an unknown write": alloc7().
			Info(histtest.UpdateKeys(2001, 2000, "0a01"), 2, 3).
			OK(histtest.UpdateKeys(3001, 3000, "0a02"), histtest.Found(histtest.User(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 4, 5).
			OK(histtest.Delete(10), histtest.Deleted(), 6, 7).
			OK(histtest.Get(), histtest.Found(histtest.User(12, 2, 3001, 3000, "0a02", "0a00")), 8, 9),
		"unassign of the user's node replaces it": alloc7().
			OK(histtest.Unassign(2), histtest.Counted(4), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5),
		"unassign of another node changes nothing": alloc7().
			OK(histtest.Unassign(3), histtest.Counted(4), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"an unassign that may have happened": alloc7().
			Info(histtest.Unassign(2), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 6, 7),
		"node removed: the key change of the replaced user is placed afresh": alloc7().
			OK(histtest.Remove(2), histtest.Counted(3), 2, 3).
			OK(histtest.UpdateKeys(2001, 2000, "0a01"), histtest.Found(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5),
		"unassign of the node an unseen record landed on": (&histtest.Builder{}).
			Info(histtest.Alloc(1000, 1000, "0a00"), 0, 1).
			OK(histtest.Unassign(3), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 3, 1000, 1000, "0a00"))), 4, 5),
	}
	histtest.JudgeEach(t, cases, porcupine.Ok)
}

// Histories a correct server can never produce, one per new operation.
func TestModelRejectsImpossibleLifecycleHistories(t *testing.T) {
	alloc7 := func() *histtest.Builder {
		return (&histtest.Builder{}).OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	retired7 := func() *histtest.Builder {
		return alloc7().OK(histtest.Retire(), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 2, 3)
	}
	cases := map[string]*histtest.Builder{
		"retire answers a live record": alloc7().
			OK(histtest.Retire(), histtest.Found(histtest.User(7, 2, histtest.MaxGen, 1000, "0a00")), 2, 3),
		"retired user allocated again": retired7().
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(9, 1, 1000, 1000, "0a00")), 4, 5),
		"retired user live again on a read": retired7().
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"retired user signs in": retired7().
			OK(histtest.Login(1001, 1000, "0a00"), histtest.LoggedIn(histtest.RetiredView(7, 2, 1000, "0a00")), 4, 5),
		"retire of an unknown user succeeds": (&histtest.Builder{}).
			OK(histtest.Retire(), histtest.Found(histtest.RetiredView(7, 2, 1000, "0a00")), 0, 1),
		"replace counts nothing for a live user": alloc7().
			OK(histtest.Replace(), histtest.Counted(0), 2, 3),
		"read after replace shows a live record": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"allocation after replace returns the old record": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"re-allocation takes the given fields instead of the stored ones": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Alloc(5000, 5000, "0aff"), histtest.Created(histtest.User(9, 2, 5000, 5000, "0aff")), 4, 5),
		"re-allocation reuses a lower uid": alloc7().
			OK(histtest.Replace(), histtest.Counted(1), 2, 3).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(6, 2, 1000, 1000, "0a00")), 4, 5),
		"account delete counts a user that does not exist": (&histtest.Builder{}).
			OK(histtest.Event(fsm.EventDelete, 0), histtest.Counted(1), 0, 1),
		"reset lowers the generation": alloc7().
			OK(histtest.Event(fsm.EventReset, 500), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 499, 1000, "0a00")), 4, 5),
		"reset sets the given generation, not generation - 1": alloc7().
			OK(histtest.Event(fsm.EventReset, 1500), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1500, 1000, "0a00")), 4, 5),
		"password change not counted": alloc7().
			OK(histtest.Event(fsm.EventPasswordChange, 1500), histtest.Counted(0), 2, 3),
		"delete of a superseded record leaves its client state old": alloc7().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			OK(histtest.Delete(7), histtest.Deleted(), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 6, 7),
		"a deleted record is found again": alloc7().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			OK(histtest.Delete(7), histtest.Deleted(), 4, 5).
			OK(histtest.Delete(7), histtest.Deleted(), 6, 7),
		"delete of a stored superseded record not found": alloc7().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			OK(histtest.Delete(7), histtest.Failed(fsm.StatusNotFound), 4, 5),
		"delete of the current record": alloc7().
			OK(histtest.Delete(7), histtest.Deleted(), 2, 3),
		"unassign of its node leaves the user live": alloc7().
			OK(histtest.Unassign(2), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"unassign of another node replaces the user": alloc7().
			OK(histtest.Unassign(3), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5),
		"replaced user's key change leaves its existing node": alloc7().
			OK(histtest.Unassign(2), histtest.Counted(1), 2, 3).
			OK(histtest.UpdateKeys(2001, 2000, "0a01"), histtest.Found(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5),
		"unassign undone": alloc7().
			OK(histtest.Unassign(2), histtest.Counted(1), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 6, 7),
	}
	histtest.JudgeEach(t, cases, porcupine.Illegal)
}

// A node-wide write is checked in every user's partition: one unassign
// that replaced two users is fine, and a user it cannot explain is caught.
func TestNodeWideWriteReachesEveryUser(t *testing.T) {
	h := &histtest.Builder{}
	h.OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1).
		OK(history.UserInput{Kind: history.OpAllocate, Email: histtest.OtherEmail, Generation: fsm.SomeInt64(1000), KeysChangedAt: fsm.SomeInt64(1000),
			ClientState: fsm.SomeString("0b00")}, histtest.Created(histtest.User(8, 2, 1000, 1000, "0b00")), 0, 1).
		OK(histtest.Unassign(2), histtest.Counted(2), 2, 3).
		OK(histtest.Get(), histtest.Found(histtest.Replaced(histtest.User(7, 2, 1000, 1000, "0a00"))), 4, 5).
		OK(history.UserInput{Kind: history.OpGet, Email: histtest.OtherEmail}, histtest.Found(histtest.Replaced(histtest.User(8, 2, 1000, 1000, "0b00"))), 4, 5)
	if got := h.Linearizable(t); got != porcupine.Ok {
		t.Fatalf("unassign of two users judged %s", got)
	}
	parts := model.PartitionByEmail(model.Operations(h.Ops))
	if len(parts) != 2 || len(parts[0]) != 3 || len(parts[1]) != 3 {
		t.Fatalf("partitions %d, want 2 of 3 operations each", len(parts))
	}
	h.OK(history.UserInput{Kind: history.OpGet, Email: histtest.OtherEmail}, histtest.Found(histtest.User(8, 2, 1000, 1000, "0b00")), 6, 7)
	if got := h.Linearizable(t); got != porcupine.Illegal {
		t.Fatalf("a user live again after its node was unassigned judged %s", got)
	}
}
