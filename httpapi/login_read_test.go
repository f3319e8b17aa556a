package httpapi

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// viewStore is fsmStore whose reads hand out the state machine's read view
// (as the real store does), counting proposals and linearizable reads.
type viewStore struct {
	*fsmStore
	applies, linReads atomic.Int32
	readErr           error // when set, every read fails with it
}

func (s *viewStore) Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error) {
	s.applies.Add(1)
	return s.fsmStore.Apply(ctx, cmd)
}

func (s *viewStore) Read(_ context.Context, opts store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error) {
	if opts.Level == store.ReadLinearizable {
		s.linReads.Add(1)
	}
	if s.readErr != nil {
		return s.Meta(), s.readErr
	}
	return s.Meta(), fn(s.f.View())
}

// TestLoginThatChangesNothingIsServedFromALinearizableRead: a sign-in of a
// known user with unchanged keys, and one that fails its checks, are
// answered from a linearizable read exactly as a proposal would answer
// them; a login that changes something, a keyed login and a login whose
// read fails are proposed.
func TestLoginThatChangesNothingIsServedFromALinearizableRead(t *testing.T) {
	st := &viewStore{fsmStore: &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}}
	srv := New(Config{Store: st, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	const login = "/v1/services/sync-1.5/users/a%40b.c/login"
	mustCode := func(what string, r response, code int) {
		t.Helper()
		if r.code != code {
			t.Fatalf("%s: %d, want %d: %s", what, r.code, code, r.body)
		}
	}
	mustCode("put service", e.do("PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`), 201)
	mustCode("add node", e.do("POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":10}`), 201)

	proposed := func(what string, wantProposal bool, f func()) {
		t.Helper()
		before := st.applies.Load()
		f()
		if got := st.applies.Load() != before; got != wantProposal {
			t.Fatalf("%s: proposed %v, want %v", what, got, wantProposal)
		}
	}
	var first response
	proposed("new user", true, func() {
		first = e.do("POST", login, `{"generation":5,"client_state":"aa"}`)
		mustCode("new user", first, 200)
	})
	// What a proposal of the same unchanged login answers, on a copy.
	fork := st.f.Fork()
	applied := fork.Apply(fsm.Command{Op: fsm.OpLogin, Service: "sync-1.5", Email: "a@b.c", TS: st.clock + 1000,
		Generation: fsm.SomeInt64(5), ClientState: fsm.SomeString("aa")})
	reads := st.linReads.Load()
	proposed("same login again", false, func() {
		again := e.do("POST", login, `{"generation":5,"client_state":"aa"}`)
		mustCode("same login again", again, 200)
		if string(again.body) != string(first.body) {
			t.Fatalf("read-served login answered %s, the first login %s", again.body, first.body)
		}
		if want := fmt.Sprintf(`"fxa_kid":%q`, applied.FxaKid); !strings.Contains(string(again.body), want) {
			t.Fatalf("read-served login %s lacks the proposal's %s", again.body, want)
		}
	})
	if st.linReads.Load() != reads+1 {
		t.Fatalf("the unchanged login did %d linearizable reads, want 1", st.linReads.Load()-reads)
	}
	proposed("stale generation", false, func() {
		r := e.do("POST", login, `{"generation":4,"client_state":"aa"}`)
		mustCode("stale generation", r, 401)
		if s := r.errorBody(t).Status; s != fsm.StatusInvalidGeneration {
			t.Fatalf("stale generation: status %q", s)
		}
	})
	proposed("new generation", true, func() {
		mustCode("new generation", e.do("POST", login, `{"generation":6,"client_state":"aa"}`), 200)
	})
	proposed("keyed login", true, func() {
		mustCode("keyed login", e.do("POST", login, `{"generation":6,"client_state":"aa"}`, HeaderIdempotencyKey, "k-1"), 200)
	})
	st.readErr = store.ErrNoLeader
	proposed("read fails", true, func() {
		mustCode("read fails", e.do("POST", login, `{"generation":6,"client_state":"aa"}`), 200)
	})
}

// TestLoginOnAFollower: a login without an Idempotency-Key is served on
// the member it reaches when it changes nothing; one that changes
// something, and every keyed login, goes to the leader (and is not
// proposed here).
func TestLoginOnAFollower(t *testing.T) {
	st := &viewStore{fsmStore: &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}}
	router := &fakeRouter{}
	srv := New(Config{Store: st, Router: router, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	const login = "/v1/services/sync-1.5/users/a%40b.c/login"
	for _, req := range [][2]string{
		{"/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`},
		{"/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":10}`},
		{login, `{"generation":5,"client_state":"aa"}`},
	} {
		method := "POST"
		if req[0] == "/v1/services/sync-1.5" {
			method = "PUT"
		}
		if r := e.do(method, req[0], req[1]); r.code/100 != 2 {
			t.Fatalf("setup %s: %d %s", req[0], r.code, r.body)
		}
	}
	router.Follower = true // from now on this member follows
	applies := st.applies.Load()

	r := e.do("POST", login, `{"generation":5,"client_state":"aa"}`)
	if r.code != 200 || r.header.Get("X-Fake-Forwarded") != "" || len(router.Relayed()) != 0 {
		t.Fatalf("unchanged login: %d %s (relayed %d), want served here", r.code, r.body, len(router.Relayed()))
	}
	r = e.do("POST", login, `{"generation":6,"client_state":"aa"}`)
	if r.header.Get("X-Fake-Forwarded") != "1" || len(router.Relayed()) != 1 {
		t.Fatalf("changing login: %d %s, want relayed to the leader", r.code, r.body)
	}
	if got := router.Relayed()[0]; got.Where != store.OnLeader || string(got.Body) != `{"generation":6,"client_state":"aa"}` {
		t.Fatalf("relayed %+v, want the login's own body, on the leader", got)
	}
	r = e.do("POST", login, `{"generation":5,"client_state":"aa"}`, HeaderIdempotencyKey, "k-1")
	if r.header.Get("X-Fake-Forwarded") != "1" || len(router.Relayed()) != 2 {
		t.Fatalf("keyed login: %d %s, want relayed before parsing", r.code, r.body)
	}
	if st.applies.Load() != applies {
		t.Fatalf("a follower proposed %d logins", st.applies.Load()-applies)
	}
}

// TestRelayedLoginIsProposedWithoutASecondRead: a login without an
// Idempotency-Key is placed on any member, so it reaches the leader
// relayed only when the member it arrived at has read already and found
// that it changes something. The leader proposes it at once: one
// linearizable read per login, not one on each member. Proposing is right
// whatever the follower saw (the state machine decides the login against
// the committed state), so the leader trusts nothing from it.
func TestRelayedLoginIsProposedWithoutASecondRead(t *testing.T) {
	st := &viewStore{fsmStore: &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}}
	srv := New(Config{Store: st, Logger: hclog.NewNullLogger(), Now: st.now})
	e := &testEnv{t: t, srv: srv}
	const login = "/v1/services/sync-1.5/users/a%40b.c/login"
	for _, req := range [][3]string{
		{"PUT", "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`},
		{"POST", "/v1/services/sync-1.5/nodes", `{"node":"https://n1","capacity":10}`},
		{"POST", login, `{"generation":5,"client_state":"aa"}`},
	} {
		if r := e.do(req[0], req[1], req[2]); r.code/100 != 2 {
			t.Fatalf("setup %s: %d %s", req[1], r.code, r.body)
		}
	}
	for _, tc := range []struct{ what, body string }{
		{"changing login", `{"generation":6,"client_state":"aa"}`},
		// The state may have changed since the follower read: still one
		// proposal, which answers as a read would have.
		{"login that no longer changes anything", `{"generation":6,"client_state":"aa"}`},
	} {
		reads, applies := st.linReads.Load(), st.applies.Load()
		r := e.do("POST", login, tc.body, HeaderForwarded, "f1")
		if r.code != 200 {
			t.Fatalf("%s: %d %s", tc.what, r.code, r.body)
		}
		if n := st.linReads.Load() - reads; n != 0 {
			t.Errorf("%s: the leader read %d times, want 0 (the follower read already)", tc.what, n)
		}
		if n := st.applies.Load() - applies; n != 1 {
			t.Errorf("%s: proposed %d times, want 1", tc.what, n)
		}
	}
}
