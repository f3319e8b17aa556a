package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
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
	servers     []store.Server
	hadState    bool
	readIndex   uint64
	lastContact time.Time
	calls       []string
	leadership  chan bool // like raft's LeaderCh: buffered(1), newest value wins
	transferTo  string    // who becomes leader on TransferLeadership("")
	// holdAdds makes AddServer wait for its ctx to end (then it sends the
	// id on addsCanceled): a leader loop's term can be caught mid-change.
	holdAdds     bool
	addsCanceled chan string
	// statusCalls counts RaftStatus calls: a waiter that polls shows up.
	statusCalls int
	// leaderChanged is closed and replaced on every setLeader, like the
	// store's broadcast.
	leaderChanged chan struct{}
}

func newFakeStore(id string) *fakeStore {
	return &fakeStore{id: id, leadership: make(chan bool, 1), leaderChanged: make(chan struct{})}
}

func (f *fakeStore) LeaderChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderChanged
}

// setLeader changes who leads; a change of this member's own leadership
// is published on LeaderCh the way raft does (an unread value is replaced).
func (f *fakeStore) setLeader(self bool, id, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := f.leader != self
	if f.leader != self || f.leaderID != id || f.leaderAddr != addr {
		close(f.leaderChanged)
		f.leaderChanged = make(chan struct{})
	}
	f.leader, f.leaderID, f.leaderAddr = self, id, addr
	if !changed {
		return
	}
	select {
	case f.leadership <- self:
	default:
		select {
		case <-f.leadership:
		default:
		}
		f.leadership <- self
	}
}

func (f *fakeStore) setServers(servers ...store.Server) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = append([]store.Server(nil), servers...)
}

func (f *fakeStore) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeStore) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// newLeaderStore is the store of member id, which leads at raftAddr and
// whose configuration is itself, a voter, and others.
func newLeaderStore(id, raftAddr string, others ...store.Server) *fakeStore {
	st := newFakeStore(id)
	st.setLeader(true, id, raftAddr)
	st.setServers(append([]store.Server{voter(id, raftAddr)}, others...)...)
	return st
}

func voter(id, addr string) store.Server {
	return store.Server{ID: id, Address: addr, Voter: true}
}

func nonvoter(id, addr string) store.Server {
	return store.Server{ID: id, Address: addr}
}

func (f *fakeStore) RaftStatus() store.RaftStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	st := store.RaftStatus{ID: f.id, State: "follower", LeaderID: f.leaderID, LeaderAddr: f.leaderAddr,
		Term: 3, CommitIndex: 8, AppliedIndex: 7, LastContact: f.lastContact, HadState: f.hadState}
	if f.leader {
		st.State = "leader"
	}
	return st
}
func (f *fakeStore) LeaderCh() <-chan bool { return f.leadership }
func (f *fakeStore) EstablishLeadership(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("establish")
	if !f.leader {
		return store.ErrNotLeader
	}
	return nil
}
func (f *fakeStore) ReadIndex(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return 0, store.ErrNotLeader
	}
	return f.readIndex, nil
}
func (f *fakeStore) Servers() ([]store.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Server(nil), f.servers...), nil
}
func (f *fakeStore) AddServer(ctx context.Context, srv store.Server) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "voter"
	if !srv.Voter {
		kind = "nonvoter"
	}
	// Attempts are recorded even when refused: tests check nobody tries.
	f.record("add-%s %s %s", kind, srv.ID, srv.Address)
	if !f.leader {
		return store.ErrNotLeader
	}
	if f.holdAdds {
		f.mu.Unlock()
		<-ctx.Done()
		f.addsCanceled <- srv.ID
		f.mu.Lock()
		return ctx.Err()
	}
	for i := range f.servers {
		if f.servers[i].ID == srv.ID {
			f.servers[i].Address = srv.Address
			f.servers[i].Voter = f.servers[i].Voter || srv.Voter
			return nil
		}
	}
	f.servers = append(f.servers, srv)
	return nil
}
func (f *fakeStore) RemoveServer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("remove %s", id)
	if !f.leader {
		return store.ErrNotLeader
	}
	for i := range f.servers {
		if f.servers[i].ID == id {
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
		if s.ID == to {
			f.leader, f.leaderID, f.leaderAddr = false, to, s.Address
		}
	}
	return nil
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
		Logger:     testutil.Logger(t),
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

func (f *fakeStore) raftStatusCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusCalls
}
