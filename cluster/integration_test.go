package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/cluster"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

// member is one in-process store + cluster + HTTP API on its own loopback
// IP, wired like `wimms server` does.
type member struct {
	t          *testing.T
	id, ip     string
	dataDir    string
	raftAddr   string
	httpAddr   string
	gossipAddr string
	st         *store.Store
	cl         *cluster.Cluster
	srv        *http.Server
	stopped    bool
}

const (
	testReapAfter       = 2 * time.Second
	testElection        = 500 * time.Millisecond // heartbeat and election timeout
	testGossipSync      = time.Second
	testReconcileEvery  = 200 * time.Millisecond
	testGossipProbeEach = 200 * time.Millisecond
)

// Deadlines drawn from the members' own timings: how many rounds of the
// protocol that produces an event the test allows before it calls the
// cluster stuck. The multiples are generous so that a loaded machine, where
// a round takes many times its nominal length, still passes; they bound a
// hang and measure nothing.
const (
	electionDeadline = 30 * testElection                      // a leader elected
	gossipDeadline   = 15 * testGossipSync                    // a gossip state seen by every member
	changeDeadline   = gossipDeadline + 30*testReconcileEvery // gossip seen, then a reconcile applied it
	reapDeadline     = changeDeadline + 2*testReapAfter       // a failed member reaped
)

// startMember starts (or, with prev, restarts on the same data and
// addresses) a member. join empty bootstraps a new cluster. The member is
// stopped when owner ends (a subtest's t would stop it too early).
func startMember(t, owner *testing.T, id, ip string, join []string, prev *member) *member {
	t.Helper()
	m := &member{t: t, id: id, ip: ip, dataDir: t.TempDir(), raftAddr: ip + ":0", httpAddr: ip + ":0", gossipAddr: ip + ":0"}
	if prev != nil {
		m.dataDir, m.raftAddr, m.httpAddr, m.gossipAddr = prev.dataDir, prev.raftAddr, prev.httpAddr, prev.gossipAddr
	}
	logger := testutil.Logger(t).With("test_member", id)
	st, err := store.Open(store.Config{
		ID:                 id,
		DataDir:            m.dataDir,
		RaftBind:           m.raftAddr,
		Bootstrap:          len(join) == 0,
		Logger:             logger,
		ApplyTimeout:       5 * time.Second,
		HeartbeatTimeout:   testElection,
		ElectionTimeout:    testElection,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("open store %s: %v", id, err)
	}
	m.st = st
	m.raftAddr = st.RaftAddr()
	ln, err := net.Listen("tcp", m.httpAddr)
	if err != nil {
		_ = st.Close()
		t.Fatalf("listen http %s: %v", id, err)
	}
	m.httpAddr = ln.Addr().String()
	cl, err := cluster.New(cluster.Config{
		ID:                  id,
		Zone:                "zone-" + id,
		HTTPAddr:            m.httpAddr,
		RaftAddr:            m.raftAddr,
		GossipBind:          m.gossipAddr,
		Join:                join,
		Store:               st,
		Logger:              logger,
		ReapAfter:           testReapAfter,
		LeaderWait:          3 * time.Second,
		ForwardTimeout:      5 * time.Second,
		ReconcileInterval:   testReconcileEvery,
		GossipProbeInterval: testGossipProbeEach,
		GossipSyncInterval:  testGossipSync,
	})
	if err != nil {
		t.Fatalf("cluster.New %s: %v", id, err)
	}
	m.cl = cl
	api := httpapi.New(httpapi.Config{Store: st, Cluster: cl, Router: cl.Router(), Logger: logger, ExtraRoutes: cl.Router().InternalRoutes})
	m.srv = &http.Server{Handler: api.Handler()}
	go func() { _ = m.srv.Serve(ln) }()
	owner.Cleanup(m.stop)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	m.gossipAddr = cl.GossipAddr()
	return m
}

// stop shuts the member down gracefully: it leaves gossip ("left").
func (m *member) stop() {
	if m.stopped {
		return
	}
	m.stopped = true
	_ = m.cl.Close()
	_ = m.srv.Close()
	_ = m.st.Close()
}

// crash stops the member without leaving gossip: peers see it fail.
func (m *member) crash() {
	m.stopped = true
	cluster.CrashGossip(m.cl)
	_ = m.cl.Close()
	_ = m.srv.Close()
	_ = m.st.Close()
}

// proposals counts the writes a store was asked to propose (its apply
// latency histogram, every outcome).
func proposals(t *testing.T, st *store.Store) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range st.Collectors() {
		reg.MustRegister(c)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather store metrics: %v", err)
	}
	var n uint64 // a histogram vector without samples has no series: 0
	for _, mf := range families {
		if mf.GetName() == "wimms_store_apply_duration_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func (m *member) configIDs() []string {
	servers, err := m.st.Servers()
	if err != nil {
		m.t.Fatalf("servers of %s: %v", m.id, err)
	}
	var ids []string
	for _, s := range servers {
		ids = append(ids, string(s.ID))
	}
	sort.Strings(ids)
	return ids
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

// api is a client of m's HTTP API, the one the tools use.
func (m *member) api() *client.Client { return client.New("http://" + m.httpAddr) }

// do sends one request as given (body: JSON, or "" for none) and returns
// the answer whatever its status.
func (m *member) do(method, path, body string) answer {
	m.t.Helper()
	var payload []byte
	if body != "" {
		payload = []byte(body)
	}
	meta, b, err := m.api().Raw(context.Background(), method, path, payload)
	if err != nil {
		m.t.Fatalf("%s %s on %s: %v", method, path, m.id, err)
	}
	return answer{code: meta.HTTPStatus, header: meta.Header, body: b}
}

func (m *member) status() wire.ClusterStatus {
	m.t.Helper()
	st, _, err := m.api().Cluster(context.Background())
	if err != nil {
		m.t.Fatalf("GET /v1/cluster on %s: %v", m.id, err)
	}
	return *st
}

// leader waits for a running member that leads and returns it.
func leader(t *testing.T, ms ...*member) *member {
	t.Helper()
	var found *member
	testutil.WaitFor(t, electionDeadline, "a leader", func() bool {
		for _, m := range ms {
			if !m.stopped && m.st.IsLeader() {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// leaderConfig is the Raft configuration as the current leader has it.
func leaderConfig(t *testing.T, ms ...*member) []string {
	t.Helper()
	return leader(t, ms...).configIDs()
}

func others(ms []*member, not ...*member) []*member {
	var out []*member
	for _, m := range ms {
		if !m.stopped && !slices.Contains(not, m) {
			out = append(out, m)
		}
	}
	return out
}

// TestClusterInProcess runs members on 127.0.0.1–5 through join (HTTP and
// gossip), status, forwarding, removal, rejoin after restart, reaping with
// the quorum guard, and removal of the leader. Leadership may move at any
// time on a loaded machine, so no step assumes who leads.
func TestClusterInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts raft members")
	}
	top := t
	a := startMember(t, top, "a", "127.0.0.1", nil, nil)
	testutil.WaitFor(t, electionDeadline, "a to lead", a.st.IsLeader)

	// b joins over HTTP: the leader adds it before Start returns.
	b := startMember(t, top, "b", "127.0.0.2", []string{a.httpAddr}, nil)
	if ids := leaderConfig(t, a, b); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("after b's HTTP join: configuration %v", ids)
	}
	// c joins through a's gossip address only: the leader loop adds it.
	c := startMember(t, top, "c", "127.0.0.3", []string{a.gossipAddr}, nil)
	testutil.WaitFor(t, changeDeadline, "the leader loop to add c", func() bool {
		return slices.Equal(leaderConfig(t, a, b, c), []string{"a", "b", "c"})
	})
	// d joins over HTTP through a follower, which forwards to the leader.
	via := others([]*member{a, b, c}, leader(t, a, b, c))[0]
	d := startMember(t, top, "d", "127.0.0.4", []string{via.httpAddr}, nil)
	all := []*member{a, b, c, d}
	if ids := leaderConfig(t, all...); !slices.Equal(ids, []string{"a", "b", "c", "d"}) {
		t.Fatalf("after d's join via %s: configuration %v", via.id, ids)
	}

	t.Run("status", func(t *testing.T) {
		for _, m := range all {
			testutil.WaitFor(t, gossipDeadline, m.id+" to see every member alive with its addresses", func() bool {
				st := m.status()
				if st.Leader == nil || len(st.Members) != 4 {
					return false
				}
				for i, mm := range st.Members {
					want := all[i]
					wantState := "follower"
					if want.id == st.Leader.ID {
						wantState = "leader"
					}
					if mm.ID != want.id || mm.HTTPAddr != want.httpAddr || mm.RaftAddr != want.raftAddr ||
						mm.GossipAddr != want.gossipAddr || mm.Zone != "zone-"+want.id || !mm.Voter || mm.State != wantState {
						return false
					}
				}
				return true
			})
		}
	})

	t.Run("forwarding", func(t *testing.T) {
		// Retried only if leadership moved during an attempt.
		var problems []string
		for attempt := 0; attempt < 3; attempt++ {
			problems = nil
			l := leader(t, all...)
			f := others(all, l)
			proposedBefore := proposals(t, f[0].st)
			ans := f[0].do(http.MethodPut, "/v1/services/sync-1.5", `{"pattern":"{node}/1.5/{uid}"}`)
			if ans.code != http.StatusCreated && ans.code != http.StatusOK {
				problems = append(problems, fmt.Sprintf("PUT service via follower %s: %d %s", f[0].id, ans.code, ans.body))
			} else if got := ans.header.Get("X-Wimms-Member"); got != l.id {
				problems = append(problems, fmt.Sprintf("write via %s: X-Wimms-Member %q, want the leader %s", f[0].id, got, l.id))
			}
			// Routed before proposing: the follower's store never saw it.
			if n := proposals(t, f[0].st) - proposedBefore; n != 0 {
				problems = append(problems, fmt.Sprintf("the follower %s proposed the write %d times before forwarding it", f[0].id, n))
			}
			// A default read on a follower is forwarded too.
			ans = f[1].do(http.MethodGet, "/v1/services/sync-1.5", "")
			if ans.code != http.StatusOK || ans.header.Get("X-Wimms-Member") != l.id {
				problems = append(problems, fmt.Sprintf("default read via %s: %d member %q %s", f[1].id, ans.code, ans.header.Get("X-Wimms-Member"), ans.body))
			}
			// A linearizable read is served by the follower itself, with
			// the leader's read index from /internal/v1/readindex.
			ans = f[1].do(http.MethodGet, "/v1/services/sync-1.5?consistency=linearizable", "")
			if ans.code != http.StatusOK || ans.header.Get("X-Wimms-Member") != f[1].id {
				problems = append(problems, fmt.Sprintf("linearizable read on %s: %d member %q %s", f[1].id, ans.code, ans.header.Get("X-Wimms-Member"), ans.body))
			}
			if len(problems) == 0 || leader(t, all...) == l {
				break
			}
		}
		for _, p := range problems {
			t.Error(p)
		}
	})

	t.Run("remove and rejoin after restart", func(t *testing.T) {
		via := others(all, d)[0]
		ans := via.do(http.MethodDelete, "/v1/cluster/members/d", "")
		if ans.code != http.StatusOK {
			t.Fatalf("DELETE d via %s: %d %s", via.id, ans.code, ans.body)
		}
		rest := []*member{a, b, c}
		testutil.WaitFor(t, changeDeadline, "d out of the configuration", func() bool {
			return slices.Equal(leaderConfig(t, rest...), []string{"a", "b", "c"})
		})
		if ans := via.do(http.MethodDelete, "/v1/cluster/members/nobody", ""); ans.code != http.StatusNotFound {
			t.Fatalf("DELETE unknown: %d %s", ans.code, ans.body)
		}
		// d is still alive in gossip; no leader loop may re-add it.
		for _, m := range rest {
			testutil.WaitFor(t, gossipDeadline, "d's removed flag to reach "+m.id, func() bool {
				state, removed, ok := cluster.GossipSeen(m.cl, "d")
				return ok && removed && state == "alive"
			})
		}
		l := leader(t, rest...)
		after := cluster.Reconciles(l.cl)
		testutil.WaitFor(t, changeDeadline, "several reconcile passes", func() bool { return cluster.Reconciles(l.cl) >= after+5 })
		if ids := leaderConfig(t, rest...); slices.Contains(ids, "d") {
			t.Fatalf("the leader loop re-added the removed member d: %v", ids)
		}

		// Graceful stop shows as "left"; restarted with its data, d asks
		// to be added again.
		d.stop()
		testutil.WaitFor(t, gossipDeadline, "d to be seen leaving gracefully", func() bool {
			state, _, ok := cluster.GossipSeen(a.cl, "d")
			return ok && state == "left"
		})
		d = startMember(t, top, "d", "127.0.0.4", []string{b.httpAddr}, d)
		all[3] = d
		testutil.WaitFor(t, changeDeadline, "restarted d to be re-added", func() bool {
			return slices.Equal(leaderConfig(t, all...), []string{"a", "b", "c", "d"})
		})
	})

	t.Run("reaping", func(t *testing.T) {
		// Four voters, d fails: 4 → 3 is allowed once d has been failed
		// for ReapAfter.
		for _, m := range others(all, d) {
			testutil.WaitFor(t, gossipDeadline, m.id+" to see the restarted d alive", func() bool {
				state, removed, ok := cluster.GossipSeen(m.cl, "d")
				return ok && state == "alive" && !removed
			})
		}
		d.crash()
		testutil.WaitFor(t, reapDeadline, "d to be reaped", func() bool {
			return slices.Equal(leaderConfig(t, a, b, c), []string{"a", "b", "c"})
		})
		// Three voters: c fails and is never reaped.
		c.crash()
		for _, m := range []*member{a, b} {
			testutil.WaitFor(t, gossipDeadline, m.id+" to see c failed", func() bool {
				state, _, ok := cluster.GossipSeen(m.cl, "c")
				return ok && state == "failed"
			})
		}
		// Past the reap delay, the leader reconciles several more times and
		// must still keep c: a reap then would break the three-voter floor.
		failedAt := time.Now()
		l := leader(t, a, b)
		testutil.WaitFor(t, reapDeadline, "the leader to reconcile past the reap delay", func() bool {
			return time.Since(failedAt) > testReapAfter && cluster.Reconciles(l.cl) > 0
		})
		after := cluster.Reconciles(l.cl)
		testutil.WaitFor(t, changeDeadline, "three more reconcile passes", func() bool { return cluster.Reconciles(l.cl) >= after+3 })
		if ids := leaderConfig(t, a, b); !slices.Equal(ids, []string{"a", "b", "c"}) {
			t.Fatalf("reaped below three voters: %v", ids)
		}
		for _, mm := range leader(t, a, b).status().Members {
			if mm.ID == "c" && mm.State != "failed" {
				t.Errorf("c's state %q, want failed", mm.State)
			}
		}

		// A fourth voter joins: now c may go (4 → 3).
		e := startMember(t, top, "e", "127.0.0.5", []string{b.httpAddr}, nil)
		all = []*member{a, b, e}
		testutil.WaitFor(t, reapDeadline, "c reaped once e made four voters", func() bool {
			return slices.Equal(leaderConfig(t, all...), []string{"a", "b", "e"})
		})
	})

	t.Run("remove the leader", func(t *testing.T) {
		l := leader(t, all...)
		rest := others(all, l)
		ans := l.do(http.MethodDelete, "/v1/cluster/members/"+l.id, "")
		if ans.code != http.StatusOK {
			t.Fatalf("DELETE of the leader %s: %d %s", l.id, ans.code, ans.body)
		}
		want := []string{rest[0].id, rest[1].id}
		for _, m := range rest {
			testutil.WaitFor(t, changeDeadline+electionDeadline, l.id+" removed by the new leader, as "+m.id+" sees it", func() bool {
				return slices.Equal(m.configIDs(), want)
			})
		}
		if l.st.IsLeader() {
			t.Fatalf("%s still leads after removing itself", l.id)
		}
	})
}
