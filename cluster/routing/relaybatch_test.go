package routing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// batchLeader is a leading Cluster serving the batch endpoint in front of
// api, behind a server that counts the HTTP requests it receives.
func batchLeader(t *testing.T, api func(*mux.Router)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	st := newFakeStore("L")
	st.setLeader(true, "L", "raft-L")
	rt := newTestRouter(t, st, func(cfg *testConfig) { cfg.ID = "L" })
	r := mux.NewRouter()
	r.UseEncodedPath()
	api(r)
	rt.InternalRoutes(r)
	var exchanges atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		exchanges.Add(1)
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv, &exchanges
}

// routeWrite sends one write through the follower's router.
func routeWrite(rt *Router, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", "key-"+body)
	w := httptest.NewRecorder()
	rt.Route(w, r, []byte(body), store.OnLeader, wire.RelayWrite)
	return w
}

// TestRelayBatchesWritesThatWait: writes that arrive while every sender
// is busy leave together in one request; each caller gets its own answer,
// with the leader's status and headers, and the leader saw each write
// once, marked as relayed, with its headers.
func TestRelayBatchesWritesThatWait(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	var arrived atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	leader, exchanges := batchLeader(t, func(r *mux.Router) {
		r.HandleFunc("/v1/services/{service}/users/{email}", func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			mu.Lock()
			seen[string(body)]++
			mu.Unlock()
			if req.Header.Get(ForwardedHeader) != "f1" || req.Header.Get("Idempotency-Key") != "key-"+string(body) {
				t.Errorf("relayed request lost its headers: %v", req.Header)
			}
			arrived.Add(1)
			<-release
			w.Header().Set("X-Wimms-Member", "L")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"echo":%s,"email":%q}`, body, mux.Vars(req)["email"])
		}).Methods(http.MethodPost)
	})
	// A failed wait below must not leave the leader's handlers blocked:
	// the server's Close (an earlier cleanup, so it runs later) waits for them.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), nil)

	const busy, waiting = maxRelaySenders, 20
	answers := make([]*httptest.ResponseRecorder, busy+waiting)
	var wg sync.WaitGroup
	send := func(i int) {
		defer wg.Done()
		answers[i] = routeWrite(rt, fmt.Sprintf("/v1/services/s-1/users/u%%2F%d", i), fmt.Sprint(i))
	}
	// One at a time, so that each busy sender carries one write (two
	// sent at once could leave together, and a sender would be free).
	for i := range busy {
		wg.Add(1)
		go send(i)
		waitFor(t, "a sender busy at the leader", func() bool { return arrived.Load() == int32(i+1) })
	}
	for i := busy; i < busy+waiting; i++ {
		wg.Add(1)
		go send(i)
	}
	waitFor(t, "the later writes queued", func() bool {
		rt.relays.mu.Lock()
		defer rt.relays.mu.Unlock()
		return len(rt.relays.waiting) == waiting
	})
	releaseOnce.Do(func() { close(release) })
	wg.Wait()

	for i, w := range answers {
		want := fmt.Sprintf(`{"echo":%d,"email":"u%%2F%d"}`, i, i)
		if w.Code != http.StatusCreated || w.Body.String() != want || w.Header().Get("X-Wimms-Member") != "L" {
			t.Errorf("write %d: %d %q %v; want 201 %s from L", i, w.Code, w.Body.String(), w.Header(), want)
		}
		if n := seen[fmt.Sprint(i)]; n != 1 {
			t.Errorf("write %d reached the leader %d times, want once", i, n)
		}
	}
	// One request per busy sender, then one batch for all that waited.
	if n := exchanges.Load(); n != busy+1 {
		t.Errorf("%d writes took %d requests to the leader, want %d", busy+waiting, n, busy+1)
	}
	if b, w := promtest.ToFloat64(rt.relayMetrics.batches), promtest.ToFloat64(rt.relayMetrics.writes); b != busy+1 || w != busy+waiting {
		t.Errorf("metrics: %v batches, %v writes; want %d and %d", b, w, busy+1, busy+waiting)
	}
}

// TestRelayBatchLostAfterSendingIsUnknownOutcome: a batch whose answer
// never comes back may have run; every write in it gets 504
// unknown-outcome and none is sent again.
func TestRelayBatchLostAfterSendingIsUnknownOutcome(t *testing.T) {
	leader, hangups := hangUpLeader(t)
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), nil)
	w := routeWrite(rt, "/v1/services/s-1/users", `{"email":"x@y"}`)
	requireUnknownOutcomeSentOnce(t, w, hangups.Load(), "batch")
}

// TestRelayBatchRejectsBadBatchesWhole: the leader refuses a batch it
// cannot parse entirely, or that holds what must not be batched, before
// running any request of it.
func TestRelayBatchRejectsBadBatchesWhole(t *testing.T) {
	var ran atomic.Int32
	leader, _ := batchLeader(t, func(r *mux.Router) {
		r.PathPrefix("/v1/").HandlerFunc(func(w http.ResponseWriter, req *http.Request) { ran.Add(1) })
	})
	good := "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	for name, body := range map[string]string{
		"empty":             "",
		"garbage after one": good + "NOT HTTP\r\n\r\n",
		"short body":        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}",
		"a read":            good + "GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n",
		"a join":            good + "POST /v1/cluster/members HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"internal":          good + "POST /internal/v1/relay HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"too many":          strings.Repeat(good, maxRelayBatch+1),
	} {
		req, _ := http.NewRequest(http.MethodPost, leader.URL+relayBatchPath, strings.NewReader(body))
		req.Header.Set("Content-Type", relayBatchContentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(b, []byte("bad-request")) {
			t.Errorf("%s: %d %s, want 400 bad-request", name, resp.StatusCode, b)
		}
	}
	// The wrong content type is refused too.
	resp, err := http.Post(leader.URL+relayBatchPath, "application/json", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("wrong content type: %d, want 400", resp.StatusCode)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d requests of refused batches ran", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayBatchCancelDoesNotAbortLeaderApplies: when the follower gives
// up on a batch (its forward timeout, its own shutdown), the writes the
// leader is running go on: they may be proposed already, and abandoning
// their wait would only turn a write that commits into one nobody saw
// finish. Their outcome is simply not delivered.
func TestRelayBatchCancelDoesNotAbortLeaderApplies(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	subErr := make(chan error, 1)
	st := newFakeStore("L")
	st.setLeader(true, "L", "raft-L")
	rt := newTestRouter(t, st, func(cfg *testConfig) { cfg.ID = "L" })
	r := mux.NewRouter()
	r.HandleFunc("/v1/events", func(w http.ResponseWriter, req *http.Request) {
		close(started)
		<-release
		subErr <- req.Context().Err()
	})
	rt.InternalRoutes(r)

	ctx, cancel := context.WithCancel(context.Background())
	var buf bytes.Buffer
	writeRelayedRequest(&buf, httptest.NewRequest(http.MethodPost, "/v1/events", nil), []byte(`{}`), "L", "f1")
	req := httptest.NewRequest(http.MethodPost, relayBatchPath, &buf).WithContext(ctx)
	req.Header.Set("Content-Type", relayBatchContentType)
	req.Header.Set(ForwardedHeader, "f1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.ServeHTTP(httptest.NewRecorder(), req)
	}()
	<-started
	cancel() // the follower gave up on the batch
	close(release)
	if err := <-subErr; err != nil {
		t.Fatalf("the relayed write's context ended with the batch: %v", err)
	}
	<-done
}

// TestCloseWaitsForRelaySenders: the member's context ends the senders of
// relayed batches and Close waits for them (Cluster.Close does both, in
// that order); a write whose batch was on its way is answered (unknown
// outcome), none is left to a goroutine that outlives the member.
func TestCloseWaitsForRelaySenders(t *testing.T) {
	arrived := make(chan struct{}, 1)
	hold := make(chan struct{})
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		arrived <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hold); leader.Close() })
	member, stop := context.WithCancel(context.Background())
	defer stop()
	rt, _ := followerOf(t, "L", leader.Listener.Addr().String(), func(cfg *testConfig) { cfg.ctx = member })

	answered := make(chan int, 1)
	go func() { answered <- routeWrite(rt, "/v1/events", `{}`).Code }()
	<-arrived
	stop()
	rt.Close()
	rt.relays.mu.Lock()
	senders := rt.relays.senders
	rt.relays.mu.Unlock()
	if senders != 0 {
		t.Fatalf("%d relay senders still running after Close", senders)
	}
	if code := <-answered; code != http.StatusGatewayTimeout {
		t.Fatalf("the write on its way got %d, want 504 unknown-outcome", code)
	}
}

// requireUnknownOutcomeSentOnce: a relay lost after its bytes reached the
// leader is answered 504 unknown-outcome, and was sent exactly once.
func requireUnknownOutcomeSentOnce(t *testing.T, w *httptest.ResponseRecorder, received int32, what string) {
	t.Helper()
	if w.Code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", w.Code)
	}
	if eb := decodeErrorBody(t, w.Body.Bytes()); eb.Status != "unknown-outcome" {
		t.Errorf("status %q, want unknown-outcome", eb.Status)
	}
	if received != 1 {
		t.Errorf("the leader received the %s %d times, want once", what, received)
	}
}
