package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// bearer adds the API token to every request of a client.
type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// issueRole runs `wimms tls cert --role ROLE` into the env's directory
// (caDir: the CA to sign with) and returns the pair's files.
func (e *secureEnv) issueRole(caDir, role, name string) (cert, key string) {
	e.t.Helper()
	args := []string{"tls", "cert", "--ca", caDir, "--role", role, "--name", name, "--out", e.dir}
	if role == "member" {
		args = append(args, "--hosts", "127.0.0.1,localhost")
	}
	testutil.WimmsOK(e.t, args...)
	return filepath.Join(e.dir, name+".pem"), filepath.Join(e.dir, name+"-key.pem")
}

// raftAttacker is a raft NetworkTransport dialing with the given
// certificate pair, as a tool holding it could: it verifies the member
// with the CA in caFile.
func raftAttacker(t *testing.T, caFile, cert, key string) *raft.NetworkTransport {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	stream := newTLSDialStream(t, &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"})
	tr := raft.NewNetworkTransport(stream, 1, 5*time.Second, io.Discard)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// forgedAddNode is the review's attack: an AppendEntries one term ahead,
// claiming to lead, carrying a real OpAddNode command that would be
// committed at once.
func forgedAddNode(tr *raft.NetworkTransport, v wire.ClusterStatus, claimedID string) *raft.AppendEntriesRequest {
	data := fsm.EncodeCommand(fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://injected.example.com", Capacity: fsm.SomeInt64(1_000_000), TS: time.Now().UnixMilli()})
	next := v.CommitIndex + 1
	return &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(claimedID), Addr: []byte(tr.LocalAddr())},
		Term:              v.Term + 1,
		PrevLogEntry:      v.CommitIndex,
		PrevLogTerm:       v.Term,
		Entries:           []*raft.Log{{Index: next, Term: v.Term + 1, Type: raft.LogCommand, Data: data}},
		LeaderCommitIndex: next,
	}
}

// nodeURLs lists the service's nodes as the leader has them.
func nodeURLs(t *testing.T, e *secureEnv, m *member) []string {
	t.Helper()
	a := expect(t, e.call("GET", e.url(m, "/v1/services/sync-1.5/nodes?consistency=linearizable"), nil), 200, "list nodes")
	var out []string
	for _, n := range regexp.MustCompile(`"node":\s*"([^"]+)"`).FindAllStringSubmatch(a.raw, -1) {
		out = append(out, n[1])
	}
	return out
}

// TestSecureClusterIdentity replays issue 19's identity attacks against a
// cluster secured as docs/security.md says (mutual TLS with member
// certificates, gossip key, API token): every one is refused and the
// cluster keeps serving.
func TestSecureClusterIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member secured cluster")
	}
	e := newSecureEnv(t)
	tokFile := testutil.TempFile(t, "api-token", []byte("api-secret\n"))
	e.client.Transport = bearer{base: e.client.Transport, token: "api-secret"}
	ms, leaderID := e.launchCluster(3, "s", func(m *member) {
		m.Flags = append(m.Flags, "--api-token-file", tokFile)
	})
	leader := byID(ms, leaderID)
	expect(t, e.call("PUT", e.url(leader, "/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service")
	expect(t, e.call("POST", e.url(leader, "/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 1000}), 201, "node")
	before, err := e.view(leader)
	if err != nil {
		t.Fatal(err)
	}
	toolCert, toolKey := e.issueRole(e.dir, "client", "tool")

	// Each forged AppendEntries goes to every member: a follower would take
	// a higher term's "leader" at its word.
	refusedEverywhere := func(t *testing.T, tr *raft.NetworkTransport, claimedID string) {
		t.Helper()
		for _, m := range ms {
			v, err := e.view(m)
			if err != nil {
				t.Fatal(err)
			}
			var resp raft.AppendEntriesResponse
			if err := tr.AppendEntries(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), forgedAddNode(tr, v, claimedID), &resp); err == nil {
				t.Fatalf("%s answered a forged AppendEntries: %+v", m.ID, resp)
			}
		}
	}

	t.Run("a client certificate speaking raft is refused", func(t *testing.T) {
		refusedEverywhere(t, raftAttacker(t, e.caFile, toolCert, toolKey), leaderID)
		if !logContainsEventually(t, leader, "not a member certificate") {
			t.Fatal("the leader did not log why it refused the tool's certificate")
		}
	})

	t.Run("a member certificate for an id outside the configuration is refused", func(t *testing.T) {
		cert, key := e.issueRole(e.dir, "member", "s9")
		refusedEverywhere(t, raftAttacker(t, e.caFile, cert, key), "s9")
		if !logContainsEventually(t, leader, `member \"s9\" is not in the raft configuration`) {
			t.Fatal("the leader did not log why it refused s9")
		}
	})

	e.checkUnchanged(leader, before, leaderID)
	if nodes := nodeURLs(t, e, leader); len(nodes) != 1 || nodes[0] != "https://n1.example.com" {
		t.Fatalf("nodes after the attacks: %v", nodes)
	}

	t.Run("a client certificate is refused on member-to-member routes, served on the API", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(toolCert, toolKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := admincli.TLSFlags{CA: e.caFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
		tool := &http.Client{Timeout: 20 * time.Second, Transport: bearer{base: &http.Transport{TLSClientConfig: cfg}, token: "api-secret"}}
		for _, m := range ms {
			a, err := tryCallWith(tool, "GET", e.url(m, "/internal/v1/readindex"), nil)
			if err != nil || a.code != http.StatusForbidden {
				t.Fatalf("%s: GET /internal/v1/readindex with a client certificate and the token: %v %d %s", m.ID, err, a.code, a.raw)
			}
			a, err = tryCallWith(tool, "POST", e.url(m, "/internal/v1/relay"), map[string]any{})
			if err != nil || a.code != http.StatusForbidden {
				t.Fatalf("%s: POST /internal/v1/relay with a client certificate and the token: %v %d %s", m.ID, err, a.code, a.raw)
			}
			a, err = tryCallWith(tool, "POST", e.url(m, "/v1/cluster/members"), map[string]any{"id": "tool", "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"})
			if err != nil || a.code != http.StatusForbidden {
				t.Fatalf("%s: join with a client certificate: %v %d %s", m.ID, err, a.code, a.raw)
			}
			a, err = tryCallWith(tool, "GET", e.url(m, "/v1/services/sync-1.5/nodes"), nil)
			if err != nil || a.code != http.StatusOK {
				t.Fatalf("%s: the public API with a client certificate and the token: %v %d %s", m.ID, err, a.code, a.raw)
			}
		}
		out := testutil.WimmsOK(t, "status", "--tls-ca", e.caFile, "--tls-cert", toolCert, "--tls-key", toolKey,
			"--api-token-file", tokFile, "--http-addr", leader.HTTPAddr)
		if !strings.Contains(out, "leader: "+leaderID) {
			t.Fatalf("wimms status with a client certificate: %s", out)
		}
	})

	t.Run("gossip cannot re-address a stopped voter", func(t *testing.T) {
		var victim *member
		for _, m := range ms {
			if m.ID != leaderID {
				victim = m
				break
			}
		}
		victim.kill9()
		// The impostor holds the gossip key (and nothing else), takes the
		// victim's id and listens for raft elsewhere, so a TCP probe of its
		// address succeeds.
		impostor := newMember(t, victim.ID, "zone-x")
		impostor.Flags = append(impostor.Flags, "--gossip-key-file", e.gossipKey)
		impostor.SetJoin([]string{leader.HTTPAddr, leader.GossipAddr})
		impostor.start()
		defer impostor.kill9()
		eventually(t, 60*time.Second, "the leader sees the impostor's raft address in gossip", func() error {
			if !logContains(t, leader, "ignoring a gossip address change") || !logContains(t, leader, "gossip_raft="+impostor.RaftAddr) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		v, err := e.view(leader)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range v.Members {
			if m.ID == victim.ID && m.RaftAddr != victim.RaftAddr {
				t.Fatalf("%s re-addressed to %s from gossip", victim.ID, m.RaftAddr)
			}
		}
		impostor.kill9()
		victim.start()
		e.waitReady(victim)
		waitLeader(t, 60*time.Second, "the real voter is back at its address", ms, e.view, func(m *member, v wire.ClusterStatus) error {
			for _, mm := range v.Members {
				if mm.ID == victim.ID && (mm.RaftAddr != victim.RaftAddr || mm.State == "failed" || mm.State == "left") {
					return fmt.Errorf("%s sees %s at %s, %s", m.ID, victim.ID, mm.RaftAddr, mm.State)
				}
			}
			return votersAre(3)(m, v)
		})
	})

	t.Run("a raft connection held across a CA rotation is closed and cannot inject", func(t *testing.T) {
		// The attacker holds a copy of a configured member's key (stolen,
		// or a member being retired): before the rotation it is a peer.
		var victim *member
		for _, m := range ms {
			if m.ID != leaderID {
				victim = m
				break
			}
		}
		stolenCert := testutil.TempFile(t, "stolen.pem", readFile(t, filepath.Join(e.dir, victim.ID+".pem")))
		stolenKey := testutil.TempFile(t, "stolen-key.pem", readFile(t, filepath.Join(e.dir, victim.ID+"-key.pem")))
		tr := raftAttacker(t, e.caFile, stolenCert, stolenKey)
		v, err := e.view(leader)
		if err != nil {
			t.Fatal(err)
		}
		// A stale-term request: answered (the key is valid now) and harmless;
		// it leaves the connection open in the attacker's pool.
		stale := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(victim.ID), Addr: []byte(tr.LocalAddr())}, Term: 1}
		var resp raft.AppendEntriesResponse
		if err := tr.AppendEntries(raft.ServerID(leaderID), raft.ServerAddress(leader.RaftAddr), stale, &resp); err != nil {
			t.Fatalf("the stolen member key was refused before the rotation: %v", err)
		}
		if resp.Success || resp.Term != v.Term {
			t.Fatalf("stale AppendEntries answered %+v", resp)
		}

		// The drill of docs/security.md: new CA, reissue, SIGHUP each member.
		newCA := filepath.Join(t.TempDir(), "pki2")
		testutil.WimmsOK(t, "tls", "ca", "--out", newCA)
		for _, m := range ms {
			e.issueRole(newCA, "member", m.ID)
		}
		if err := os.WriteFile(e.caFile, readFile(t, filepath.Join(newCA, "ca.pem")), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if err := m.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		closedRe := regexp.MustCompile(`SIGHUP: certificates reloaded.*closed_connections=(\d+)`)
		eventually(t, 20*time.Second, "the leader reloaded and closed the stolen key's connection", func() error {
			m := closedRe.FindStringSubmatch(leader.log(t))
			if m == nil {
				return fmt.Errorf("no reload logged yet")
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 {
				return fmt.Errorf("reload closed %s connections", m[1])
			}
			return nil
		})
		if err := tr.AppendEntries(raft.ServerID(leaderID), raft.ServerAddress(leader.RaftAddr), forgedAddNode(tr, v, victim.ID), &resp); err == nil {
			t.Fatalf("the held connection injected after the rotation: %+v", resp)
		}

		// The cluster runs on the new CA; the injected node never appears.
		cfg, err := admincli.TLSFlags{CA: e.caFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		e.client = &http.Client{Timeout: 20 * time.Second, Transport: bearer{base: &http.Transport{TLSClientConfig: cfg}, token: "api-secret"}}
		newLeader := e.waitConverged(ms, 3)
		expect(t, e.call("POST", e.url(byID(ms, newLeader), "/v1/services/sync-1.5/users"), map[string]any{"email": "after-rotation@example.com"}), 201, "write after the rotation")
		if nodes := nodeURLs(t, e, byID(ms, newLeader)); len(nodes) != 1 {
			t.Fatalf("nodes after the rotation: %v", nodes)
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// `wimms tls cert` has no default role, and each role gets what it needs.
func TestTLSCertRoles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	testutil.WimmsOK(t, "tls", "ca", "--out", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "m1", "--hosts", "127.0.0.1"}, "--role is required"},
		{[]string{"--role", "admin", "--name", "m1", "--hosts", "127.0.0.1"}, `--role "admin"`},
		{[]string{"--role", "member", "--name", "m1"}, "--hosts is required for a member certificate"},
	} {
		out, code := testutil.RunWimms(t, append([]string{"tls", "cert", "--ca", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("tls cert %v: exit %d, %q; want a refusal naming %q", tc.args, code, out, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "m1.pem")); err == nil {
			t.Fatalf("tls cert %v wrote a certificate", tc.args)
		}
	}
	testutil.WimmsOK(t, "tls", "cert", "--ca", dir, "--role", "client", "--name", "ops")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "ops.pem"), filepath.Join(dir, "ops-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://wimms/client/ops" || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("client certificate: URIs %v, usages %v", leaf.URIs, leaf.ExtKeyUsage)
	}
}

// A member that was down while the configuration changed comes back to a
// leader it has never had in its configuration: the Raft port admits ids
// only from the configuration, so it learns the current members from a
// configured member over mutual-TLS HTTP (here with no --join: the
// gossip-sync path) and then accepts that leader.
func TestSecureStaleMemberFollowsANewLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-member secured cluster")
	}
	e := newSecureEnv(t)
	ms := e.startCluster(3)
	stale := ms[2]
	stale.kill9()
	s4 := e.member("s4", "zone-a")
	s4.SetJoin([]string{ms[0].HTTPAddr})
	s4.start()
	e.waitReady(s4)
	all := append(ms[:2:2], s4)
	waitLeader(t, 60*time.Second, "s4 is a voter", all, e.view, votersAre(4))
	expect(t, e.call("POST", e.url(ms[0], "/v1/cluster/leader"), map[string]any{"id": "s4"}), 200, "hand leadership to s4")
	waitLeader(t, 60*time.Second, "s4 leads", all, e.view, func(m *member, v wire.ClusterStatus) error {
		if v.Leader.ID != "s4" {
			return fmt.Errorf("%s sees leader %s", m.ID, v.Leader.ID)
		}
		return nil
	})
	expect(t, e.call("PUT", e.url(s4, "/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "a write the stale member missed")
	lead, err := e.view(s4)
	if err != nil {
		t.Fatal(err)
	}

	stale.SetJoin(nil)
	stale.start()
	eventually(t, 60*time.Second, "the stale member follows s4 and catches up", func() error {
		a, err := tryCallWith(e.client, "GET", e.url(stale, "/v1/cluster?consistency=stale"), nil)
		if err != nil {
			return err
		}
		var v wire.ClusterStatus
		if err := json.Unmarshal([]byte(a.raw), &v); err != nil {
			return fmt.Errorf("%d %s", a.code, a.raw)
		}
		if v.Leader == nil || v.Leader.ID != "s4" || v.AppliedIndex < lead.AppliedIndex {
			return fmt.Errorf("leader %+v, applied %d of %d", v.Leader, v.AppliedIndex, lead.AppliedIndex)
		}
		return nil
	})
}
