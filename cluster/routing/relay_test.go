package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

// followerOf builds a follower Cluster whose store names leaderID at
// leaderHTTP as the leader.
func followerOf(t *testing.T, leaderID, leaderHTTP string, edit func(*testConfig)) (*Router, *fakeStore) {
	t.Helper()
	st := newFakeStore("f1")
	rt := newTestRouter(t, st, edit)
	if leaderID != "" {
		learn(rt, leaderID, leaderHTTP, "raft-"+leaderID)
		st.setLeader(false, leaderID, "raft-"+leaderID)
	}
	return rt, st
}

type seenRequest struct {
	method, requestURI, host string
	header                   http.Header
	body                     []byte
	remoteAddr               string
}

func TestForwardRelaysRequestAndAnswerUnchanged(t *testing.T) {
	var got seenRequest
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = seenRequest{method: r.Method, requestURI: r.RequestURI, header: r.Header.Clone(), body: body}
		w.Header().Set("X-Wimms-Member", "L")
		w.Header().Set("X-Wimms-Index", "42")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "one")
		w.Header().Add("X-Multi", "two")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"uid":9223372036854775807}`))
	}))
	defer leader.Close()
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), nil)

	body := []byte(`{"email":"a@b","generation":9223372036854775807}`)
	uri := "/v1/services/sync-1.5/users/a%2Fb%40c/login?consistency=stale&x=1%202"
	r := httptest.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("Idempotency-Key", "k-1")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Custom", "v")
	r.Header.Set("Connection", "X-Hop")
	r.Header.Set("X-Hop", "must not pass")
	w := httptest.NewRecorder()
	w.Header().Set("X-Wimms-Member", "f1") // set by the follower's handler before forwarding
	rt.relay(w, r, body, wire.RelayWrite)

	if got.method != http.MethodPost || got.requestURI != uri {
		t.Errorf("leader saw %s %s, want POST %s", got.method, got.requestURI, uri)
	}
	if !bytes.Equal(got.body, body) {
		t.Errorf("leader saw body %q, want %q", got.body, body)
	}
	for k, want := range map[string]string{
		"Authorization": "Bearer secret", "Idempotency-Key": "k-1", "Content-Type": "application/json",
		"X-Custom": "v", ForwardedHeader: "f1",
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("leader saw %s: %q, want %q", k, v, want)
		}
	}
	if v := got.header.Get("X-Hop"); v != "" {
		t.Errorf("hop-by-hop header X-Hop was relayed: %q", v)
	}
	if w.Code != http.StatusCreated {
		t.Errorf("status %d, want 201", w.Code)
	}
	if v := w.Header().Get("X-Wimms-Member"); v != "L" {
		t.Errorf("X-Wimms-Member %q, want the leader's L", v)
	}
	if v := w.Header().Values("X-Multi"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("X-Multi %v, want [one two]", v)
	}
	if w.Body.String() != `{"uid":9223372036854775807}` {
		t.Errorf("body %q", w.Body.String())
	}
}

func TestForwardWaitsForALeader(t *testing.T) {
	var hits atomic.Int32
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer leader.Close()
	rt, st := followerOf(t, "", "", func(cfg *testConfig) { cfg.LeaderWait = 5 * time.Second })
	time.AfterFunc(150*time.Millisecond, func() {
		learn(rt, "L", leader.Listener.Addr().String(), "")
		st.setLeader(false, "L", "raft-L")
	})
	w := httptest.NewRecorder()
	rt.relay(w, httptest.NewRequest(http.MethodDelete, "/v1/services/s-1", nil), nil, wire.RelayWrite)
	if w.Code != http.StatusNoContent || hits.Load() != 1 {
		t.Fatalf("status %d, leader hits %d; want 204 after the leader became known", w.Code, hits.Load())
	}
}

func decodeErrorBody(t *testing.T, b []byte) wire.ErrorBody {
	t.Helper()
	var eb wire.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	if len(eb.Errors) == 0 || eb.Errors[0].Description == "" {
		t.Fatalf("error body %q has no description", b)
	}
	return eb
}

func TestForwardNoLeaderAnswers503AfterWaiting(t *testing.T) {
	rt, _ := followerOf(t, "", "", func(cfg *testConfig) { cfg.LeaderWait = 200 * time.Millisecond })
	for method, mode := range map[string]wire.Relay{http.MethodGet: wire.RelayRead, http.MethodPost: wire.RelayWrite} {
		w := httptest.NewRecorder()
		rt.relay(w, httptest.NewRequest(method, "/v1/services", nil), nil, mode)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503", method, w.Code)
		}
		if v := w.Header().Get("Retry-After"); v != "1" {
			t.Errorf("%s: Retry-After %q, want 1", method, v)
		}
		if v := w.Header().Get("X-Wimms-Member"); v != "f1" {
			t.Errorf("%s: X-Wimms-Member %q, want f1", method, v)
		}
		eb := decodeErrorBody(t, w.Body.Bytes())
		if eb.Status != "no-leader" || eb.Errors[0].Location != "header" || eb.Errors[0].Name != "leader" {
			t.Errorf("%s: error body %+v", method, eb)
		}
	}
}

// hangUpLeader reads each request fully, counts it, then closes the
// connection without answering: the request reached the leader, its
// outcome is unknown. A request to /ok is answered normally.
func hangUpLeader(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hangups atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusOK)
			return
		}
		hangups.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv, &hangups
}

func TestForwardNeverRetriesAWriteThatReachedTheLeader(t *testing.T) {
	leader, hangups := hangUpLeader(t)
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), func(cfg *testConfig) { cfg.LeaderWait = 2 * time.Second })

	// Warm the pool so the write goes over a reused keep-alive connection,
	// the case where net/http itself would retry a replayable request.
	w := httptest.NewRecorder()
	rt.relay(w, httptest.NewRequest(http.MethodGet, "/ok", nil), nil, wire.RelayRead)
	if w.Code != http.StatusOK {
		t.Fatalf("warm-up status %d", w.Code)
	}

	for _, body := range [][]byte{[]byte(`{"email":"x@y"}`), nil} {
		before := hangups.Load()
		r := httptest.NewRequest(http.MethodPost, "/v1/services/s-1/users", bytes.NewReader(body))
		r.Header.Set("Idempotency-Key", "abc")
		w = httptest.NewRecorder()
		rt.relay(w, r, body, wire.RelayWrite)
		if w.Code != http.StatusGatewayTimeout {
			t.Fatalf("body %q: status %d, want 504", body, w.Code)
		}
		if eb := decodeErrorBody(t, w.Body.Bytes()); eb.Status != "unknown-outcome" {
			t.Errorf("status %q, want unknown-outcome", eb.Status)
		}
		if n := hangups.Load() - before; n != 1 {
			t.Fatalf("body %q: the leader received the write %d times, want exactly 1", body, n)
		}
		// Reuse the pool again for the next round.
		rt.relay(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ok", nil), nil, wire.RelayRead)
	}

	// A read that fails the same way is answered 503 no-leader.
	w = httptest.NewRecorder()
	rt.relay(w, httptest.NewRequest(http.MethodGet, "/v1/services", nil), nil, wire.RelayRead)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("read: status %d, want 503", w.Code)
	}
	if eb := decodeErrorBody(t, w.Body.Bytes()); eb.Status != "no-leader" {
		t.Errorf("read: status %q, want no-leader", eb.Status)
	}
}

func TestForwardRetriesOnlyFailedDials(t *testing.T) {
	dead := testutil.FreeAddr(t, "127.0.0.1") // nothing listens: connection refused
	var hits atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer live.Close()

	rt, st := followerOf(t, "old", dead, func(cfg *testConfig) { cfg.LeaderWait = 5 * time.Second })
	// The leader changes while the first dials are refused.
	time.AfterFunc(200*time.Millisecond, func() {
		learn(rt, "new", live.Listener.Addr().String(), "")
		st.setLeader(false, "new", "raft-new")
	})
	w := httptest.NewRecorder()
	rt.relay(w, httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{}`)), []byte(`{}`), wire.RelayWrite)
	if w.Code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("status %d, hits %d; want the write delivered once to the new leader", w.Code, hits.Load())
	}

	// A leader that stays unreachable: 503 no-leader (nothing was sent).
	c2, _ := followerOf(t, "old", dead, func(cfg *testConfig) { cfg.LeaderWait = 300 * time.Millisecond })
	w = httptest.NewRecorder()
	c2.relay(w, httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{}`)), []byte(`{}`), wire.RelayWrite)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if eb := decodeErrorBody(t, w.Body.Bytes()); eb.Status != "no-leader" || !strings.Contains(eb.Errors[0].Description, dead) {
		t.Errorf("error %+v, want no-leader naming %s", eb, dead)
	}
}

// TestRouteDecidesBeforeServing: the router serves here what may run
// anywhere, what this member leads, what was relayed already and default
// reads with no leader known; everything else goes to the leader once,
// marked with this member's id.
func TestRouteDecidesBeforeServing(t *testing.T) {
	var hits atomic.Int32
	var forwardedBy atomic.Value
	// A leader of an older version: no batch endpoint (404), so writes
	// fall back to being relayed one by one (relaybatch_test.go covers
	// batches).
	var batchTries atomic.Int32
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == relayBatchPath {
			batchTries.Add(1)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		hits.Add(1)
		forwardedBy.Store(r.Header.Get(ForwardedHeader))
		w.WriteHeader(http.StatusOK)
	}))
	defer leader.Close()
	rt, st := followerOf(t, "L", leader.Listener.Addr().String(), func(cfg *testConfig) { cfg.LeaderWait = 300 * time.Millisecond })
	defer func() {
		if n := batchTries.Load(); n != 1 {
			t.Errorf("the follower tried the batch endpoint %d times, want once (then one by one for a while)", n)
		}
	}()

	route := func(method string, where store.Placement, header ...string) (bool, int) {
		t.Helper()
		relay := wire.RelayWrite
		if method == http.MethodGet {
			relay = wire.RelayRead
		}
		t.Helper()
		r := httptest.NewRequest(method, "/v1/events", nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		relayed := rt.Route(w, r, nil, where, relay)
		return relayed, w.Code
	}

	if relayed, _ := route(http.MethodGet, store.AnyMember); relayed || hits.Load() != 0 {
		t.Fatalf("an any-member request was relayed")
	}
	if relayed, code := route(http.MethodPost, store.OnLeader); !relayed || code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("a write on a follower: relayed %v, code %d, leader hits %d", relayed, code, hits.Load())
	}
	if by := forwardedBy.Load(); by != "f1" {
		t.Fatalf("%s = %q, want this member's id f1", ForwardedHeader, by)
	}
	if relayed, _ := route(http.MethodGet, store.OnLeaderIfKnown); !relayed || hits.Load() != 2 {
		t.Fatalf("a default read with a known leader was not relayed")
	}
	// Relayed once already: served here (the store refuses if this member
	// does not lead), never bounced on.
	if relayed, _ := route(http.MethodPost, store.OnLeader, ForwardedHeader, "x"); relayed || hits.Load() != 2 {
		t.Fatalf("a forwarded request was relayed again")
	}

	st.setLeader(true, "f1", "raft-f1")
	if relayed, _ := route(http.MethodPost, store.OnLeader); relayed || hits.Load() != 2 {
		t.Fatalf("the leader relayed its own write")
	}

	// No leader known: a default read is answered here at once (no-leader
	// from the store); a write waits for a leader, then 503 no-leader.
	st.setLeader(false, "", "")
	if relayed, _ := route(http.MethodGet, store.OnLeaderIfKnown); relayed {
		t.Fatalf("a default read with no leader known was relayed")
	}
	relayed, code := route(http.MethodPost, store.OnLeader)
	if !relayed || code != http.StatusServiceUnavailable || hits.Load() != 2 {
		t.Fatalf("write with no leader: relayed %v, code %d, hits %d; want a 503 answered by the router", relayed, code, hits.Load())
	}
}

// TestRelayedJoinTeachesTheFollower: the leader's answer to a join a
// follower relayed names the new member, whose addresses the follower then
// knows before gossip tells it.
func TestRelayedJoinTeachesTheFollower(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"n","raft_addr":"127.0.0.9:7000","http_addr":"127.0.0.9:8000","zone":"z"}`))
	}))
	defer leader.Close()
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), nil)
	body := []byte(`{"id":"n","raft_addr":"127.0.0.9:7000","http_addr":"127.0.0.9:8000"}`)
	w := httptest.NewRecorder()
	if !rt.Route(w, httptest.NewRequest(http.MethodPost, wire.MembersPath, bytes.NewReader(body)), body, store.OnLeader, wire.RelayJoin) || w.Code != http.StatusOK {
		t.Fatalf("join not relayed: %d", w.Code)
	}
	if addr, ok := rt.leaderHTTPAddr("n", ""); !ok || addr != "127.0.0.9:8000" {
		t.Fatalf("the follower does not know the joined member's HTTP address: %q %v", addr, ok)
	}
}

// TestRelayDialsFromOwnIP: a relay leaves from the member's own loopback
// IP, or iptables partitions by source address cannot work (cluster's
// TestDialersBindOwnIP covers gossip and the probe).
func TestRelayDialsFromOwnIP(t *testing.T) {
	rec := testutil.ListenSourceIPs(t)
	target, expect := rec.Target, rec.Expect

	// The forwarding client.
	st := newFakeStore("m2")
	rt := newTestRouter(t, st, func(cfg *testConfig) {
		cfg.HTTPAddr = "127.0.0.2:8080"
		cfg.RaftAddr = "127.0.0.2:8300"
		cfg.Client.LocalIP = net.ParseIP("127.0.0.2")
		cfg.LeaderWait = 300 * time.Millisecond
	})
	learn(rt, "L", target, "")
	st.setLeader(false, "L", "raft-L")
	rt.relay(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/events", nil), nil, wire.RelayWrite)
	expect("forward", "127.0.0.2")
}

func TestReadIndexEndpointAndRemoteReadIndex(t *testing.T) {
	leaderStore := newFakeStore("L")
	leaderStore.readIndex = 77
	leaderStore.setLeader(true, "L", "raft-L")
	lc := newTestRouter(t, leaderStore, func(cfg *testConfig) { cfg.Client.APIToken = "api"; cfg.Client.AdminToken = "admin" })
	router := mux.NewRouter()
	lc.InternalRoutes(router)
	srv := httptest.NewServer(router)
	defer srv.Close()

	get := func(token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/internal/v1/readindex", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := get("wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, b := get("admin"); code != http.StatusOK || strings.TrimSpace(string(b)) != `{"index":77}` {
		t.Errorf("admin token: %d %s", code, b)
	}

	// A follower asks the leader with its member token.
	fc, fst := followerOf(t, "L", srv.Listener.Addr().String(), func(cfg *testConfig) { cfg.Client.APIToken = "api" })
	idx, err := fc.RemoteReadIndex(context.Background())
	if err != nil || idx != 77 {
		t.Fatalf("remoteReadIndex = %d, %v; want 77", idx, err)
	}

	// The leader lost leadership: 503 not-leader, which the follower reports
	// as no leader.
	leaderStore.setLeader(false, "", "")
	if code, b := get("api"); code != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("not-leader")) {
		t.Errorf("not leader: %d %s", code, b)
	}
	if _, err := fc.RemoteReadIndex(context.Background()); !errors.Is(err, store.ErrNoLeader) {
		t.Errorf("remoteReadIndex from a deposed leader: %v, want ErrNoLeader", err)
	}

	// No leader known at all.
	fst.setLeader(false, "", "")
	if _, err := fc.RemoteReadIndex(context.Background()); !errors.Is(err, store.ErrNoLeader) {
		t.Errorf("remoteReadIndex with no leader: %v, want ErrNoLeader", err)
	}
}

// BenchmarkForward measures the relay overhead of one forwarded write over
// pooled connections.
func BenchmarkForward(b *testing.B) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"uid":1,"email":"a@b"}`))
	}))
	defer leader.Close()
	st := newFakeStore("f1")
	rt := newTestRouter(b, st, nil)
	learn(rt, "L", leader.Listener.Addr().String(), "")
	st.setLeader(false, "L", "raft-L")
	body := []byte(`{"email":"a@b","generation":1}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			rt.relay(w, httptest.NewRequest(http.MethodPost, "/v1/services/s-1/users", bytes.NewReader(body)), body, wire.RelayWrite)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
			}
		}
	})
}

// TestRelayedTokenRequestLostIsUnknownOutcome: a token request is a GET
// that may allocate a node on the leader; once it may have reached the
// leader, a failure is 504 unknown-outcome like a write's, not 503
// no-leader ("nothing was sent").
func TestRelayedTokenRequestLostIsUnknownOutcome(t *testing.T) {
	leader, hangups := hangUpLeader(t)
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), nil)
	w := httptest.NewRecorder()
	if !rt.Route(w, httptest.NewRequest(http.MethodGet, "/1.0/sync/1.5", nil), nil, store.OnLeader, wire.RelayAlone) {
		t.Fatal("the token request was not relayed")
	}
	requireUnknownOutcomeSentOnce(t, w, hangups.Load(), "request")
}

// TestAwaitLeaderWaitsForBroadcasts: a relay waiting for a leader (or its
// HTTP address) wakes when the store announces a leader change or the
// registry learns an address, and looks again only then: it does not poll.
func TestAwaitLeaderWaitsForBroadcasts(t *testing.T) {
	rt, st := followerOf(t, "", "", nil)
	// Nobody ever leads: one look at the start, one at the deadline at most.
	before := st.raftStatusCalls()
	if _, _, err := rt.awaitLeaderHTTP(context.Background(), time.Now().Add(400*time.Millisecond)); !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("no leader: %v, want ErrNoLeader", err)
	}
	if n := st.raftStatusCalls() - before; n > 2 {
		t.Fatalf("waiting without any change looked at the store %d times: it polls", n)
	}

	// A leader becomes known, then its HTTP address: each wakes the waiter.
	type result struct {
		id, addr string
		err      error
	}
	got := make(chan result, 1)
	before = st.raftStatusCalls()
	go func() {
		id, addr, err := rt.awaitLeaderHTTP(context.Background(), time.Now().Add(time.Minute))
		got <- result{id, addr, err}
	}()
	waitFor(t, "the waiter's first look", func() bool { return st.raftStatusCalls() > before })
	st.setLeader(false, "L", "raft-L")
	learn(rt, "L", "127.0.0.1:9", "")
	if r := <-got; r.err != nil || r.id != "L" || r.addr != "127.0.0.1:9" {
		t.Fatalf("awaitLeaderHTTP = %+v, want L at 127.0.0.1:9", r)
	}
}
