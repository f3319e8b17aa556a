package routing

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

// fakeStore is who leads, without Raft: enough to test routing
// deterministically.
type fakeStore struct {
	mu         sync.Mutex
	id         string
	leader     bool
	leaderID   string
	leaderAddr string
	readIndex  uint64
	// statusCalls counts RaftStatus calls: a waiter that polls shows up.
	statusCalls int
	// leaderChanged is closed and replaced on every change of setLeader,
	// like the store's broadcast.
	leaderChanged chan struct{}
}

func newFakeStore(id string) *fakeStore {
	return &fakeStore{id: id, leaderChanged: make(chan struct{})}
}

func (f *fakeStore) LeaderChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderChanged
}

// setLeader changes who leads (self: this member).
func (f *fakeStore) setLeader(self bool, id, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leader != self || f.leaderID != id || f.leaderAddr != addr {
		close(f.leaderChanged)
		f.leaderChanged = make(chan struct{})
	}
	f.leader, f.leaderID, f.leaderAddr = self, id, addr
}

func (f *fakeStore) RaftStatus() store.RaftStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	st := store.RaftStatus{ID: f.id, State: "follower", LeaderID: f.leaderID, LeaderAddr: f.leaderAddr,
		Term: 3, CommitIndex: 8, AppliedIndex: 7}
	if f.leader {
		st.State = "leader"
	}
	return st
}

func (f *fakeStore) ReadIndex(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return 0, store.ErrNotLeader
	}
	return f.readIndex, nil
}

func (f *fakeStore) raftStatusCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusCalls
}

// fakePeers is the membership layer's registry, reduced to what routing
// reads: members' addresses and a change broadcast.
type fakePeers struct {
	mu      sync.Mutex
	members map[string]wire.Member
	changed chan struct{}
}

func newFakePeers() *fakePeers {
	return &fakePeers{members: map[string]wire.Member{}, changed: make(chan struct{})}
}

func (p *fakePeers) HTTPAddr(id, raftAddr string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.members[id]; ok && m.HTTPAddr != "" {
		return m.HTTPAddr, true
	}
	for _, m := range p.members {
		if raftAddr != "" && m.RaftAddr == raftAddr && m.HTTPAddr != "" {
			return m.HTTPAddr, true
		}
	}
	return "", false
}

func (p *fakePeers) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

func (p *fakePeers) Learn(m wire.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members[m.ID] = m
	close(p.changed)
	p.changed = make(chan struct{})
}

// learn tells rt's registry (a fakePeers) where member id listens.
func learn(rt *Router, id, httpAddr, raftAddr string) {
	rt.peers.(*fakePeers).Learn(wire.Member{ID: id, HTTPAddr: httpAddr, RaftAddr: raftAddr})
}

// testConfig is what a test may change of a router's configuration.
type testConfig struct {
	Config
	Client MemberClientConfig
	// ctx is the member's lifetime (by default it ends when the test does).
	ctx context.Context
}

// newTestRouter is a Router on a fake store and registry.
func newTestRouter(t testing.TB, st *fakeStore, edit func(*testConfig)) *Router {
	t.Helper()
	tc := testConfig{Config: Config{
		ID:             st.id,
		HTTPAddr:       "127.0.0.1:1",
		RaftAddr:       "127.0.0.1:2",
		Store:          st,
		Peers:          newFakePeers(),
		Logger:         testutil.Logger(t),
		LeaderWait:     500 * time.Millisecond,
		ForwardTimeout: 15 * time.Second,
	}}
	if edit != nil {
		edit(&tc)
	}
	tc.Members = NewMemberClient(tc.Client)
	if tc.ctx == nil {
		tc.ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(tc.ctx)
	rt := New(ctx, tc.Config)
	t.Cleanup(func() {
		cancel()
		rt.Close()
		tc.Members.CloseIdleConnections()
	})
	return rt
}
