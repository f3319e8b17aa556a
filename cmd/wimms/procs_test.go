package main

// Helpers for end-to-end tests that run the real `wimms` binary as separate
// processes on loopback, as a user or an operator would. Such a test skips
// under -short when it first asks for the binary (testutil.WimmsPath), which
// every member it starts does.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// member is one `wimms server` of a test, started by the shared launcher.
type member struct {
	*launch.Member
	t *testing.T
}

func newMember(t *testing.T, id string, zone string) *member {
	t.Helper()
	p, err := launch.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &member{t: t, Member: &launch.Member{
		ID:         id,
		Bin:        testutil.WimmsPath(t),
		HTTPAddr:   fmt.Sprintf("127.0.0.1:%d", p[0]),
		RaftAddr:   fmt.Sprintf("127.0.0.1:%d", p[1]),
		GossipAddr: fmt.Sprintf("127.0.0.1:%d", p[2]),
		DataDir:    filepath.Join(dir, "data"),
		Zone:       zone,
		LogPath:    filepath.Join(dir, id+".log"),
		Flags:      []string{"--log-level", "debug"},
	}}
}

func (m *member) url(path string) string { return "http://" + m.HTTPAddr + path }

// api is a client of this member.
func (m *member) api(opts ...client.Option) *client.Client {
	return client.New("http://"+m.HTTPAddr, append([]client.Option{client.WithTimeout(20 * time.Second)}, opts...)...)
}

func (m *member) start() {
	m.t.Helper()
	if err := m.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		m.kill9()
		if m.t.Failed() {
			m.t.Logf("--- tail of %s log ---\n%s", m.ID, m.LogTail(6000))
		}
	})
}

func (m *member) running() bool { return m.Running() }

// log is everything m's processes have printed so far.
func (m *member) log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(m.LogPath)
	if err != nil {
		t.Fatalf("reading %s's log: %v", m.ID, err)
	}
	return string(b)
}

// kill9 is `kill -9`: no shutdown code runs.
func (m *member) kill9() {
	if err := m.Kill(); err != nil {
		m.t.Errorf("kill %s: %v", m.ID, err)
	}
}

// stop sends sig and returns the exit code (or -1 on timeout, after which
// the process is killed).
func (m *member) stop(sig syscall.Signal, timeout time.Duration) int {
	done := m.Exited()
	if err := m.Signal(sig); err != nil {
		m.t.Logf("stop %s: %v", m.ID, err)
	}
	if m.WaitExit(done, timeout) != nil {
		m.kill9()
		return -1
	}
	return m.ExitCode()
}

func (m *member) waitReady(timeout time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !m.running() {
			m.t.Fatalf("%s exited before becoming ready", m.ID)
		}
		if _, err := m.api(client.WithTimeout(2 * time.Second)).Readyz(context.Background()); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("%s not ready after %v", m.ID, timeout)
}

// answer is one HTTP response with its JSON body decoded.
type answer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) str(k string) string {
	v, _ := a.body[k].(string)
	return v
}

// num returns a JSON number field as int64 (bodies are decoded with
// UseNumber, so int64 values survive exactly).
func (a answer) num(k string) int64 {
	n, ok := a.body[k].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

func call(t *testing.T, method, url string, body any, headers ...string) answer {
	t.Helper()
	a, err := tryCall(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

// tryCall sends one request through the client's Raw call, so that a test
// sees the exact status and body, including error answers. headers are
// name, value pairs.
func tryCall(method, rawURL string, body any, headers ...string) (answer, error) {
	return tryCallWith(nil, method, rawURL, body, headers...)
}

// tryCallWith is tryCall over hc (nil: the client's own transport), e.g.
// one that verifies a test CA.
func tryCallWith(hc *http.Client, method, rawURL string, body any, headers ...string) (answer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return answer{}, err
	}
	var payload []byte
	switch b := body.(type) {
	case nil:
	case string:
		payload = []byte(b)
	default:
		if payload, err = json.Marshal(b); err != nil {
			return answer{}, err
		}
	}
	opts := client.CallOptions{Header: http.Header{}}
	for i := 0; i+1 < len(headers); i += 2 {
		opts.Header.Set(headers[i], headers[i+1])
	}
	copts := []client.Option{client.WithTimeout(20 * time.Second)}
	if hc != nil {
		copts = append(copts, client.WithHTTPClient(hc))
	}
	c := client.New(u.Scheme+"://"+u.Host, copts...)
	meta, raw, err := c.Raw(context.Background(), method, u.RequestURI(), payload, opts)
	if err != nil {
		return answer{}, err
	}
	a := answer{code: meta.HTTPStatus, header: meta.Header, raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err == nil {
			a.body = m
		}
	}
	return a, nil
}

func expect(t *testing.T, a answer, code int, what string) answer {
	t.Helper()
	if a.code != code {
		t.Fatalf("%s: got HTTP %d, want %d: %s", what, a.code, code, a.raw)
	}
	return a
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %v: %v", what, timeout, err)
}

// freePorts reserves n loopback ports (free for TCP and UDP).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	p, err := launch.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// viewOf is GET /v1/cluster of m, through the typed client.
func viewOf(m *member, opts ...client.Option) (wire.ClusterStatus, error) {
	st, _, err := m.api(opts...).Cluster(context.Background())
	if err != nil {
		return wire.ClusterStatus{}, err
	}
	return *st, nil
}

// membersSpec says how launchMembers makes its members; the zero value
// gives members m1, m2, … in zone-a, zone-b, zone-c that join the first
// by its HTTP address.
type membersSpec struct {
	idPrefix   string                     // ids are idPrefix1, idPrefix2, …
	zones      []string                   // assigned in turn
	flags      []string                   // added to every member's flags
	joinVia    func(first *member) string // the address the others join
	firstReady time.Duration              // how long the first may take to become ready
}

// launchMembers starts n members: the first bootstraps and becomes ready,
// then the others start and join it. It does not wait for them to join.
func launchMembers(t *testing.T, n int, spec membersSpec) []*member {
	t.Helper()
	if spec.idPrefix == "" {
		spec.idPrefix = "m"
	}
	if len(spec.zones) == 0 {
		spec.zones = []string{"zone-a", "zone-b", "zone-c"}
	}
	if spec.joinVia == nil {
		spec.joinVia = func(first *member) string { return first.HTTPAddr }
	}
	if spec.firstReady == 0 {
		spec.firstReady = 20 * time.Second
	}
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = newMember(t, fmt.Sprintf("%s%d", spec.idPrefix, i+1), spec.zones[i%len(spec.zones)])
		ms[i].Flags = append(ms[i].Flags, spec.flags...)
		if i > 0 {
			ms[i].SetJoin([]string{spec.joinVia(ms[0])})
		}
	}
	ms[0].start()
	ms[0].waitReady(spec.firstReady)
	for _, m := range ms[1:] {
		m.start()
	}
	return ms
}

// startCluster starts n members: the first bootstraps, the others join it
// over HTTP; it returns when every member sees n voters and one leader.
func startCluster(t *testing.T, n int) []*member {
	t.Helper()
	ms := launchMembers(t, n, membersSpec{})
	waitConverged(t, ms, n)
	return ms
}

// startSolo starts one member and waits until it is ready.
func startSolo(t *testing.T, id, zone string, flags ...string) *member {
	t.Helper()
	m := newMember(t, id, zone)
	m.Flags = append(m.Flags, flags...)
	m.start()
	m.waitReady(30 * time.Second)
	return m
}

// viewCheck judges one member's view of the cluster, which names a leader.
type viewCheck func(m *member, v wire.ClusterStatus) error

// votersAre accepts a view with exactly n voters.
func votersAre(n int) viewCheck {
	return func(m *member, v wire.ClusterStatus) error {
		voters := 0
		for _, mm := range v.Members {
			if mm.Voter {
				voters++
			}
		}
		if voters != n {
			return fmt.Errorf("%s sees %d voters, want %d", m.ID, voters, n)
		}
		return nil
	}
}

// waitLeader waits until every running member of ms names the same leader
// in its view (as view fetches it) and check accepts every view; it
// returns the leader's id.
func waitLeader(t *testing.T, timeout time.Duration, what string, ms []*member,
	view func(*member) (wire.ClusterStatus, error), check viewCheck) string {
	t.Helper()
	var leader string
	eventually(t, timeout, what, func() error {
		leader = ""
		for _, m := range ms {
			if !m.running() {
				continue
			}
			v, err := view(m)
			if err != nil {
				return err
			}
			if v.Leader == nil {
				return fmt.Errorf("%s knows no leader", m.ID)
			}
			if err := check(m, v); err != nil {
				return err
			}
			if leader != "" && leader != v.Leader.ID {
				return fmt.Errorf("members disagree on the leader: %s vs %s", leader, v.Leader.ID)
			}
			leader = v.Leader.ID
		}
		return nil
	})
	return leader
}

// waitConverged waits until every running member sees `voters` voters and
// the same leader, and is ready.
func waitConverged(t *testing.T, ms []*member, voters int) string {
	t.Helper()
	hasVoters := votersAre(voters)
	view := func(m *member) (wire.ClusterStatus, error) { return viewOf(m) }
	return waitLeader(t, 45*time.Second, "cluster converged", ms, view, func(m *member, v wire.ClusterStatus) error {
		if err := hasVoters(m, v); err != nil {
			return err
		}
		if a, err := tryCall("GET", m.url("/readyz"), nil); err != nil || a.code != 200 {
			return fmt.Errorf("%s not ready", m.ID)
		}
		return nil
	})
}

// seedService creates service sync-1.5 ({node}/{uid}) with one node,
// https://n1.example.com, of the given capacity.
func seedService(t *testing.T, m *member, capacity int, headers ...string) {
	t.Helper()
	expect(t, call(t, "PUT", m.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}, headers...), 201, "service")
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": capacity}, headers...), 201, "node")
}
