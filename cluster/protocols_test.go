package cluster

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// newMemberServer is an httptest server that speaks what a member's server
// speaks (ServerProtocols), so the member client's h2c reaches it.
func newMemberServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = ServerProtocols()
	srv.Start()
	return srv
}

// TestForwardSharesOneHTTP2Connection: concurrent relayed writes to the
// leader travel as HTTP/2 streams of one member-to-member connection.
func TestForwardSharesOneHTTP2Connection(t *testing.T) {
	var conns atomic.Int32
	var notH2 atomic.Int32
	release := make(chan struct{})
	var arrived sync.WaitGroup
	const n = 20
	arrived.Add(n)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			notH2.Add(1)
		}
		arrived.Done()
		<-release // hold every stream open until all have arrived
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.Protocols = ServerProtocols()
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, _ := followerOf(t, "L", srv.Listener.Addr().String(), nil)
	codes := make(chan int, n)
	for range n {
		go func() {
			body := []byte(`{"email":"a@b"}`)
			w := httptest.NewRecorder()
			c.relay(w, httptest.NewRequest(http.MethodPost, "/v1/services/s-1/users", bytes.NewReader(body)), body)
			codes <- w.Code
		}()
	}
	arrived.Wait() // all n are in flight at once
	close(release)
	for range n {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("%d connections for %d concurrent relays, want 1", got, n)
	}
	if got := notH2.Load(); got != 0 {
		t.Errorf("%d relays did not use HTTP/2", got)
	}
}
