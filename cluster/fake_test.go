package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/store"
)

// fakeStore is a Raft configuration without Raft: enough to test the
// membership logic deterministically.
type fakeStore struct {
	mu          sync.Mutex
	id          string
	leader      bool
	leaderID    string
	leaderAddr  string
	servers     []raft.Server
	hadState    bool
	readIndex   uint64
	lastContact time.Time
	remote      func(ctx context.Context) (uint64, error)
	calls       []string
	leadership  chan bool
	transferTo  string // who becomes leader on TransferLeadership("")
}

func newFakeStore(id string) *fakeStore {
	return &fakeStore{id: id, leadership: make(chan bool, 1)}
}

func (f *fakeStore) setLeader(self bool, id, addr string) {
	f.mu.Lock()
	f.leader, f.leaderID, f.leaderAddr = self, id, addr
	f.mu.Unlock()
	select {
	case f.leadership <- self:
	default:
	}
}

func (f *fakeStore) setServers(servers ...raft.Server) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = append([]raft.Server(nil), servers...)
}

func (f *fakeStore) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeStore) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func voter(id, addr string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter}
}

func nonvoter(id, addr string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Nonvoter}
}

func (f *fakeStore) ID() string { return f.id }
func (f *fakeStore) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}
func (f *fakeStore) Leader() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderID, f.leaderAddr
}
func (f *fakeStore) SubscribeLeadership() <-chan bool { return f.leadership }
func (f *fakeStore) ReadIndex(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return 0, store.ErrNotLeader
	}
	return f.readIndex, nil
}
func (f *fakeStore) AppliedIndex() uint64 { return 7 }
func (f *fakeStore) CommitIndex() uint64  { return 8 }
func (f *fakeStore) Term() uint64         { return 3 }
func (f *fakeStore) State() string {
	if f.IsLeader() {
		return "leader"
	}
	return "follower"
}
func (f *fakeStore) LastContact() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastContact
}
func (f *fakeStore) Servers() ([]raft.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]raft.Server(nil), f.servers...), nil
}
func (f *fakeStore) add(id, addr string, s raft.ServerSuffrage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "voter"
	if s == raft.Nonvoter {
		kind = "nonvoter"
	}
	// Attempts are recorded even when refused: tests check nobody tries.
	f.record("add-%s %s %s", kind, id, addr)
	if !f.leader {
		return store.ErrNotLeader
	}
	for i := range f.servers {
		if string(f.servers[i].ID) == id {
			f.servers[i].Address = raft.ServerAddress(addr)
			if s == raft.Voter {
				f.servers[i].Suffrage = raft.Voter
			}
			return nil
		}
	}
	f.servers = append(f.servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: s})
	return nil
}
func (f *fakeStore) AddVoter(ctx context.Context, id, addr string) error {
	return f.add(id, addr, raft.Voter)
}
func (f *fakeStore) AddNonvoter(ctx context.Context, id, addr string) error {
	return f.add(id, addr, raft.Nonvoter)
}
func (f *fakeStore) RemoveServer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove %s", id)
	if !f.leader {
		return store.ErrNotLeader
	}
	for i := range f.servers {
		if string(f.servers[i].ID) == id {
			f.servers = append(f.servers[:i], f.servers[i+1:]...)
			return nil
		}
	}
	return store.ErrMemberNotFound
}
func (f *fakeStore) TransferLeadership(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return store.ErrNotLeader
	}
	f.record("transfer %q", id)
	to := id
	if to == "" {
		to = f.transferTo
	}
	for _, s := range f.servers {
		if string(s.ID) == to {
			f.leader, f.leaderID, f.leaderAddr = false, to, string(s.Address)
		}
	}
	return nil
}
func (f *fakeStore) SetRemoteReadIndex(fn func(ctx context.Context) (uint64, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.remote = fn
}
func (f *fakeStore) HadState() bool { return f.hadState }
func (f *fakeStore) Meta() store.Meta {
	f.mu.Lock()
	defer f.mu.Unlock()
	return store.Meta{Index: 7, MemberID: f.id, KnownLeader: f.leaderID != ""}
}

// testLogger writes to t.Log until the test ends (memberlist goroutines
// may log during shutdown, when t.Log would panic).
func testLogger(t testing.TB) hclog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := hclog.Warn
	if l := os.Getenv("WIMMS_TEST_LOG"); l != "" {
		level = hclog.LevelFromString(l)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: level, Output: w})
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newFakeCluster is a Cluster on a fake store, not started (no gossip).
func newFakeCluster(t testing.TB, st *fakeStore, edit func(*Config)) *Cluster {
	t.Helper()
	cfg := Config{
		ID:         st.id,
		Zone:       "z-" + st.id,
		HTTPAddr:   "127.0.0.1:1",
		RaftAddr:   "127.0.0.1:2",
		GossipBind: "127.0.0.1:0",
		Logger:     testLogger(t),
		LeaderWait: 500 * time.Millisecond,
		ReapAfter:  time.Minute,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := newCluster(cfg, st)
	if err != nil {
		t.Fatalf("newCluster: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr reserves a loopback port on ip and releases it for the caller.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
