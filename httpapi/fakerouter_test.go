package httpapi

import (
	"net/http"
	"sync"

	"github.com/wimms-dev/wimms/store"
)

// routed is one request a fakeRouter decided on.
type routed struct {
	Method, Path string
	Where        store.Placement
	Relay        Relay
	Relayed      bool
	Header       http.Header
	Body         []byte
}

// fakeRouter is a fake Router. By default this member serves everything.
// With Follower set, it relays what needs the leader (store.OnLeader,
// store.OnLeaderIfKnown): it answers 200 {"forwarded":true} with header
// X-Fake-Forwarded: 1, which no real handler produces. It records every
// decision.
type fakeRouter struct {
	mu       sync.Mutex
	Follower bool
	calls    []routed
}

func (f *fakeRouter) Route(w http.ResponseWriter, r *http.Request, body []byte, where store.Placement, relayBy Relay) bool {
	p := Placement{Where: where, Relay: relayBy}
	f.mu.Lock()
	relay := f.Follower && p.Where != store.AnyMember
	f.calls = append(f.calls, routed{Method: r.Method, Path: r.URL.EscapedPath(), Where: p.Where, Relay: p.Relay,
		Relayed: relay, Header: r.Header.Clone(), Body: append([]byte(nil), body...)})
	f.mu.Unlock()
	if !relay {
		return false
	}
	w.Header().Set("X-Fake-Forwarded", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"forwarded":true}`))
	return true
}

// Relayed returns every request the fakeRouter relayed.
func (f *fakeRouter) Relayed() []routed {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []routed
	for _, c := range f.calls {
		if c.Relayed {
			out = append(out, c)
		}
	}
	return out
}

// Calls returns every decision.
func (f *fakeRouter) Calls() []routed {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]routed(nil), f.calls...)
}
