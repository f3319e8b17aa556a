package model_test

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
)

func TestModelAcceptsSequentialHistory(t *testing.T) {
	h := &histtest.Builder{}
	h.OK(histtest.Get(), histtest.Failed(fsm.StatusNotFound), 0, 1).
		OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 2, 3).
		OK(histtest.Alloc(1005, 1000, "0a00"), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5).
		OK(histtest.UpdateGen(1010), histtest.Found(histtest.User(7, 2, 1010, 1000, "0a00")), 6, 7).
		OK(histtest.Login(1020, 1000, "0a00"), histtest.LoggedIn(histtest.User(7, 2, 1020, 1000, "0a00")), 8, 9).
		OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 10, 11).
		OK(histtest.Login(2002, 2000, "0a00"), histtest.Failed(fsm.StatusInvalidClientState), 12, 13).
		OK(histtest.Login(1999, 2000, "0a01"), histtest.Failed(fsm.StatusInvalidGeneration), 14, 15).
		OK(histtest.UpdateKeys(3001, 3000, "0a02"), histtest.Found(histtest.User(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 16, 17).
		OK(histtest.UpdateKeys(3002, 3000, "0a00"), histtest.Failed(fsm.StatusInvalidClientState), 18, 19).
		OK(histtest.Get(), histtest.Found(histtest.User(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 20, 21)
	if got := h.Linearizable(t); got != porcupine.Ok {
		t.Fatalf("valid history judged %s", got)
	}
}

// Each case is a history that a correct server can never produce.
func TestModelRejectsImpossibleHistories(t *testing.T) {
	base := func() *histtest.Builder {
		return (&histtest.Builder{}).OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	cases := map[string]*histtest.Builder{
		"two allocations create different uids": base().
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(8, 2, 1000, 1000, "0a00")), 2, 3),
		"second allocation returns another uid": base().
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Found(histtest.User(8, 2, 1000, 1000, "0a00")), 2, 3),
		"second allocation claims it created the user": base().
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 2, 3),
		"read after acknowledged update returns the older generation": base().
			OK(histtest.UpdateGen(1010), histtest.Found(histtest.User(7, 2, 1010, 1000, "0a00")), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 4, 5),
		"read after allocation says not found": base().
			OK(histtest.Get(), histtest.Failed(fsm.StatusNotFound), 2, 3),
		"read before any write finds a user": (&histtest.Builder{}).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 2, 3),
		"key change reuses a lower uid": base().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(6, 2, 2001, 2000, "0a01", "0a00")), 2, 3),
		"key change moves the user to another node": base().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 3, 2001, 2000, "0a01", "0a00")), 2, 3),
		"key change loses the old client state": base().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01")), 2, 3),
		"login with a stale client state succeeds": base().
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			OK(histtest.Login(2005, 2000, "0a00"), histtest.LoggedIn(histtest.User(9, 2, 2005, 2000, "0a00", "0a01")), 4, 5),
		"login with a lower generation succeeds": base().
			OK(histtest.Login(999, 1000, "0a00"), histtest.LoggedIn(histtest.User(7, 2, 1000, 1000, "0a00")), 2, 3),
		"login answers with a wrong fxa_kid": base().
			OK(histtest.Login(1001, 1000, "0a00"), history.UserOutput{User: histtest.User(7, 2, 1001, 1000, "0a00"), FxaKid: "0000000001000-AAA"}, 2, 3),
		"existing user cannot lack a node": base().
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Failed(fsm.StatusNoNodeAvailable), 2, 3),
		"update of an unknown user succeeds": (&histtest.Builder{}).
			OK(histtest.UpdateGen(5), histtest.Found(histtest.User(7, 2, 5, fsm.Null, "")), 0, 1),
		"generation decreases": base().
			OK(histtest.UpdateGen(900), histtest.Found(histtest.User(7, 2, 900, 1000, "0a00")), 2, 3),
		"unknown update cannot explain a decrease": base().
			Info(histtest.UpdateGen(1010), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1010, 1000, "0a00")), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 6, 7),
		"unknown allocation pins one uid": (&histtest.Builder{}).
			Info(histtest.Alloc(1000, 1000, "0a00"), 0, 1).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 2, 3).
			OK(histtest.Get(), histtest.Found(histtest.User(8, 2, 1000, 1000, "0a00")), 4, 5),
	}
	histtest.JudgeEach(t, cases, porcupine.Illegal)
}

func TestModelAcceptsConcurrencyAndUnknownOutcomes(t *testing.T) {
	cases := map[string]*histtest.Builder{
		"read concurrent with update sees the old value": (&histtest.Builder{}).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1).
			OK(histtest.UpdateGen(1010), histtest.Found(histtest.User(7, 2, 1010, 1000, "0a00")), 2, 10).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 2, 1000, 1000, "0a00")), 3, 4),
		"concurrent allocations agree on one creator": (&histtest.Builder{}).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Found(histtest.User(7, 2, 1002, 1000, "0a00")), 0, 10).
			OK(histtest.Alloc(1002, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1002, 1000, "0a00")), 1, 9),
		"unknown allocation observed later": (&histtest.Builder{}).
			Info(histtest.Alloc(1000, 1000, "0a00"), 0, 3).
			OK(histtest.Get(), histtest.Failed(fsm.StatusNotFound), 1, 2).
			OK(histtest.Get(), histtest.Found(histtest.User(7, 3, 1000, 1000, "0a00")), 5, 6).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Found(histtest.User(7, 3, 1000, 1000, "0a00")), 7, 8),
		"unknown allocation never happened": (&histtest.Builder{}).
			Info(histtest.Alloc(1000, 1000, "0a00"), 0, 3).
			OK(histtest.Alloc(1001, 1000, "0a00"), histtest.Created(histtest.User(9, 1, 1001, 1000, "0a00")), 5, 6),
		"unknown key change observed by a later login": (&histtest.Builder{}).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Created(histtest.User(7, 2, 1000, 1000, "0a00")), 0, 1).
			Info(histtest.Login(2001, 2000, "0a01"), 2, 3).
			OK(histtest.Login(2001, 2000, "0a01"), histtest.LoggedIn(histtest.User(11, 2, 2001, 2000, "0a01", "0a00")), 4, 5).
			OK(histtest.Get(), histtest.Found(histtest.User(11, 2, 2001, 2000, "0a01", "0a00")), 6, 7),
		"no node available for a new user": (&histtest.Builder{}).
			OK(histtest.Alloc(1000, 1000, "0a00"), histtest.Failed(fsm.StatusNoNodeAvailable), 0, 1).
			OK(histtest.Login(1000, 1000, "0a00"), histtest.Failed(fsm.StatusNoNodeAvailable), 2, 3).
			OK(histtest.Get(), histtest.Failed(fsm.StatusNotFound), 4, 5),
	}
	histtest.JudgeEach(t, cases, porcupine.Ok)
}
