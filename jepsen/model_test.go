package jepsen

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
)

const testEmail = "jepsen-00@example.com"

// historyBuilder writes hand-made histories; times are in milliseconds.
type historyBuilder struct{ ops []Op }

func (h *historyBuilder) add(outcome Outcome, in UserInput, out UserOutput, call, ret int) *historyBuilder {
	if in.Email == "" {
		in.Email = testEmail
	}
	h.ops = append(h.ops, Op{ID: len(h.ops), Client: len(h.ops) % 4, Member: "n1", Kind: in.Kind, Email: in.Email,
		Input: in, Output: out, Outcome: outcome,
		Call: time.Duration(call) * time.Millisecond, Return: time.Duration(ret) * time.Millisecond})
	return h
}

func (h *historyBuilder) ok(in UserInput, out UserOutput, call, ret int) *historyBuilder {
	return h.add(OutcomeOK, in, out, call, ret)
}

func (h *historyBuilder) info(in UserInput, call, ret int) *historyBuilder {
	return h.add(OutcomeInfo, in, UserOutput{}, call, ret)
}

func (h *historyBuilder) linearizable(t *testing.T) porcupine.CheckResult {
	t.Helper()
	return porcupine.CheckOperationsTimeout(UserModel(), linearOps(h.ops), 10*time.Second)
}

func user(uid, node, gen, kca int64, cs string, old ...string) UserView {
	return UserView{UID: uid, NodeID: node, Generation: gen, KeysChangedAt: kca, ClientState: cs, OldClientStates: old}
}

func found(u UserView) UserOutput { return UserOutput{User: u} }
func created(u UserView) UserOutput {
	return UserOutput{Created: true, User: u}
}
func failed(status string) UserOutput { return UserOutput{Status: status} }
func loggedIn(u UserView) UserOutput {
	return UserOutput{User: u, FxaKid: ExpectedFxaKid(u.Generation, u.KeysChangedAt, u.ClientState)}
}

func alloc(gen, kca int64, cs string) UserInput {
	return UserInput{Kind: OpAllocate, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}
func login(gen, kca int64, cs string) UserInput {
	return UserInput{Kind: OpLogin, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}
func updateGen(gen int64) UserInput {
	return UserInput{Kind: OpUpdate, Generation: fsm.SomeInt64(gen)}
}
func updateKeys(gen, kca int64, cs string) UserInput {
	return UserInput{Kind: OpUpdate, Generation: fsm.SomeInt64(gen), KeysChangedAt: fsm.SomeInt64(kca),
		ClientState: fsm.SomeString(cs)}
}
func get() UserInput { return UserInput{Kind: OpGet} }

func TestModelAcceptsSequentialHistory(t *testing.T) {
	h := &historyBuilder{}
	h.ok(get(), failed(fsm.StatusNotFound), 0, 1).
		ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 2, 3).
		ok(alloc(1005, 1000, "0a00"), found(user(7, 2, 1000, 1000, "0a00")), 4, 5).
		ok(updateGen(1010), found(user(7, 2, 1010, 1000, "0a00")), 6, 7).
		ok(login(1020, 1000, "0a00"), loggedIn(user(7, 2, 1020, 1000, "0a00")), 8, 9).
		ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 10, 11).
		ok(login(2002, 2000, "0a00"), failed(fsm.StatusInvalidClientState), 12, 13).
		ok(login(1999, 2000, "0a01"), failed(fsm.StatusInvalidGeneration), 14, 15).
		ok(updateKeys(3001, 3000, "0a02"), found(user(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 16, 17).
		ok(updateKeys(3002, 3000, "0a00"), failed(fsm.StatusInvalidClientState), 18, 19).
		ok(get(), found(user(12, 2, 3001, 3000, "0a02", "0a01", "0a00")), 20, 21)
	if got := h.linearizable(t); got != porcupine.Ok {
		t.Fatalf("valid history judged %s", got)
	}
}

// Each case is a history that a correct server can never produce.
func TestModelRejectsImpossibleHistories(t *testing.T) {
	base := func() *historyBuilder {
		return (&historyBuilder{}).ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1)
	}
	cases := map[string]*historyBuilder{
		"two allocations create different uids": base().
			ok(alloc(1000, 1000, "0a00"), created(user(8, 2, 1000, 1000, "0a00")), 2, 3),
		"second allocation returns another uid": base().
			ok(alloc(1000, 1000, "0a00"), found(user(8, 2, 1000, 1000, "0a00")), 2, 3),
		"second allocation claims it created the user": base().
			ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 2, 3),
		"read after acknowledged update returns the older generation": base().
			ok(updateGen(1010), found(user(7, 2, 1010, 1000, "0a00")), 2, 3).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 4, 5),
		"read after allocation says not found": base().
			ok(get(), failed(fsm.StatusNotFound), 2, 3),
		"read before any write finds a user": (&historyBuilder{}).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 0, 1).
			ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 2, 3),
		"key change reuses a lower uid": base().
			ok(login(2001, 2000, "0a01"), loggedIn(user(6, 2, 2001, 2000, "0a01", "0a00")), 2, 3),
		"key change moves the user to another node": base().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 3, 2001, 2000, "0a01", "0a00")), 2, 3),
		"key change loses the old client state": base().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01")), 2, 3),
		"login with a stale client state succeeds": base().
			ok(login(2001, 2000, "0a01"), loggedIn(user(9, 2, 2001, 2000, "0a01", "0a00")), 2, 3).
			ok(login(2005, 2000, "0a00"), loggedIn(user(9, 2, 2005, 2000, "0a00", "0a01")), 4, 5),
		"login with a lower generation succeeds": base().
			ok(login(999, 1000, "0a00"), loggedIn(user(7, 2, 1000, 1000, "0a00")), 2, 3),
		"login answers with a wrong fxa_kid": base().
			ok(login(1001, 1000, "0a00"), UserOutput{User: user(7, 2, 1001, 1000, "0a00"), FxaKid: "0000000001000-AAA"}, 2, 3),
		"existing user cannot lack a node": base().
			ok(alloc(1000, 1000, "0a00"), failed(fsm.StatusNoNodeAvailable), 2, 3),
		"update of an unknown user succeeds": (&historyBuilder{}).
			ok(updateGen(5), found(user(7, 2, 5, fsm.Null, "")), 0, 1),
		"generation decreases": base().
			ok(updateGen(900), found(user(7, 2, 900, 1000, "0a00")), 2, 3),
		"unknown update cannot explain a decrease": base().
			info(updateGen(1010), 2, 3).
			ok(get(), found(user(7, 2, 1010, 1000, "0a00")), 4, 5).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 6, 7),
		"unknown allocation pins one uid": (&historyBuilder{}).
			info(alloc(1000, 1000, "0a00"), 0, 1).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 2, 3).
			ok(get(), found(user(8, 2, 1000, 1000, "0a00")), 4, 5),
	}
	judgeEach(t, cases, porcupine.Illegal)
}

func TestModelAcceptsConcurrencyAndUnknownOutcomes(t *testing.T) {
	cases := map[string]*historyBuilder{
		"read concurrent with update sees the old value": (&historyBuilder{}).
			ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1).
			ok(updateGen(1010), found(user(7, 2, 1010, 1000, "0a00")), 2, 10).
			ok(get(), found(user(7, 2, 1000, 1000, "0a00")), 3, 4),
		"concurrent allocations agree on one creator": (&historyBuilder{}).
			ok(alloc(1000, 1000, "0a00"), found(user(7, 2, 1002, 1000, "0a00")), 0, 10).
			ok(alloc(1002, 1000, "0a00"), created(user(7, 2, 1002, 1000, "0a00")), 1, 9),
		"unknown allocation observed later": (&historyBuilder{}).
			info(alloc(1000, 1000, "0a00"), 0, 3).
			ok(get(), failed(fsm.StatusNotFound), 1, 2).
			ok(get(), found(user(7, 3, 1000, 1000, "0a00")), 5, 6).
			ok(alloc(1000, 1000, "0a00"), found(user(7, 3, 1000, 1000, "0a00")), 7, 8),
		"unknown allocation never happened": (&historyBuilder{}).
			info(alloc(1000, 1000, "0a00"), 0, 3).
			ok(alloc(1001, 1000, "0a00"), created(user(9, 1, 1001, 1000, "0a00")), 5, 6),
		"unknown key change observed by a later login": (&historyBuilder{}).
			ok(alloc(1000, 1000, "0a00"), created(user(7, 2, 1000, 1000, "0a00")), 0, 1).
			info(login(2001, 2000, "0a01"), 2, 3).
			ok(login(2001, 2000, "0a01"), loggedIn(user(11, 2, 2001, 2000, "0a01", "0a00")), 4, 5).
			ok(get(), found(user(11, 2, 2001, 2000, "0a01", "0a00")), 6, 7),
		"no node available for a new user": (&historyBuilder{}).
			ok(alloc(1000, 1000, "0a00"), failed(fsm.StatusNoNodeAvailable), 0, 1).
			ok(login(1000, 1000, "0a00"), failed(fsm.StatusNoNodeAvailable), 2, 3).
			ok(get(), failed(fsm.StatusNotFound), 4, 5),
	}
	judgeEach(t, cases, porcupine.Ok)
}

// The login checks of docs/spec.md §4 in their order, one state, one input each.
func TestDecideLoginChecks(t *testing.T) {
	stored := userState{Exists: true, UID: 5, NodeID: 1, Generation: 100, KeysChangedAt: 50, ClientState: "aa",
		Older: "4:bb"}
	cases := []struct {
		name       string
		gen, kca   int64 // 0 = absent
		cs         string
		wantStatus string
		wantNew    bool
		wantGen    int64
		wantKCA    int64
	}{
		{"a: keys changed but generation below them", 70, 80, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"b: empty client state", 100, 50, "", fsm.StatusInvalidClientState, false, 0, 0},
		{"c: stale client state", 200, 60, "bb", fsm.StatusInvalidClientState, false, 0, 0},
		{"d: new client state, same generation", 100, 60, "cc", fsm.StatusInvalidClientState, false, 0, 0},
		{"e: new client state, same keys_changed_at", 200, 50, "cc", fsm.StatusInvalidClientState, false, 0, 0},
		{"f: generation below stored", 99, 50, "aa", fsm.StatusInvalidGeneration, false, 0, 0},
		{"g: keys_changed_at absent", 100, 0, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"g: keys_changed_at below stored", 100, 40, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"same client state, newer generation: in place", 150, 50, "aa", "", false, 150, 50},
		{"new client state with both bumped: new record", 200, 60, "cc", "", true, 200, 60},
		{"generation absent: keys_changed_at above it becomes the generation", 0, 120, "aa", "", false, 120, 120},
		{"generation absent, keys_changed_at below it: generation kept", 0, 60, "aa", "", false, 100, 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := UserInput{Kind: OpLogin, ClientState: fsm.SomeString(c.cs)}
			if c.gen != 0 {
				in.Generation = fsm.SomeInt64(c.gen)
			}
			if c.kca != 0 {
				in.KeysChangedAt = fsm.SomeInt64(c.kca)
			}
			d := decide(stored, in)
			if d.status != c.wantStatus {
				t.Fatalf("status %q, want %q", d.status, c.wantStatus)
			}
			if c.wantStatus != "" {
				return
			}
			if d.newRecord != c.wantNew || d.next.Generation != c.wantGen || d.next.KeysChangedAt != c.wantKCA {
				t.Fatalf("new=%v gen=%d kca=%d, want new=%v gen=%d kca=%d", d.newRecord, d.next.Generation,
					d.next.KeysChangedAt, c.wantNew, c.wantGen, c.wantKCA)
			}
			if got := strings.Join(d.next.oldStates(), ","); c.wantNew && got != "aa,bb" {
				t.Fatalf("old client states %q, want aa,bb", got)
			}
		})
	}
}

func TestDecideLoginRetiredUser(t *testing.T) {
	retired := userState{Exists: true, UID: 5, NodeID: 1, Generation: fsm.MaxGeneration, KeysChangedAt: fsm.Null}
	if d := decide(retired, login(10, 10, "aa")); d.status != fsm.StatusInvalidGeneration {
		t.Fatalf("retired user with a real generation: %q, want invalid-generation", d.status)
	}
	if d := decide(retired, UserInput{Kind: OpLogin, ClientState: fsm.SomeString("aa")}); d.status != "" || d.next != retired {
		t.Fatalf("retired user without generation must be returned unchanged, got %+v", d)
	}
}

func TestExpectedFxaKid(t *testing.T) {
	cases := []struct {
		gen, kca int64
		cs, want string
	}{
		{1, 1234, "aa", "0000000001234-qg"},
		{1500, fsm.Null, "aa", "0000000001500-qg"},
		{1500, 0, "aa", "0000000001500-qg"},
		{7, 9, "", "0000000000009-"},
		{7, 9, "zz", "0000000000009-eno"}, // not hex: its bytes, as the state machine does
	}
	for _, c := range cases {
		if got := ExpectedFxaKid(c.gen, c.kca, c.cs); got != c.want {
			t.Errorf("ExpectedFxaKid(%d, %d, %q) = %q, want %q", c.gen, c.kca, c.cs, got, c.want)
		}
	}
}

// judgeEach checks every history of cases (each a subtest) and fails the
// ones not judged want.
func judgeEach(t *testing.T, cases map[string]*historyBuilder, want porcupine.CheckResult) {
	t.Helper()
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			if got := h.linearizable(t); got != want {
				t.Fatalf("history judged %s, want %s", got, want)
			}
		})
	}
}
