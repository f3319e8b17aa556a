package main

// The compose test runs the deployment exactly as an operator would: the
// real Dockerfile and .dockerignore build an image from a static binary,
// the real docker-compose.yml starts three members, and the cluster is then
// driven over the published HTTP ports. It needs a Docker engine and
// docker-compose v1, so it is opted into with WIMMS_DOCKER=1 (.ci/run sets
// it) and skips with a reason otherwise. Every helper here is prefixed with
// "compose" because package main's other tests share the namespace.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen"
)

const (
	composeService    = "sync-1.5"
	composeFailover   = 30 * time.Second // bound on electing a new leader after a kill
	composeConverge   = 90 * time.Second // bound on a (re)started cluster agreeing on a leader
	composeRunnerUser = "65532:65532"
)

// composeMembers are the compose services; each member's id is its service
// name (docker-compose.yml sets WIMMS_ID that way), so the leader's id
// names the container to kill.
var composeMembers = []string{"wimms1", "wimms2", "wimms3"}

func TestComposeCluster(t *testing.T) {
	composeSkipUnlessDocker(t)
	started := time.Now()
	root := composeRepoRoot(t)

	phase := time.Now()
	image := composeBuildImage(t, root)
	t.Logf("timing: binary + image build %v", time.Since(phase).Round(time.Millisecond))

	p := composeNewProject(t, root, image)
	phase = time.Now()
	p.compose(3*time.Minute, "up", "-d")
	leader := p.waitConverged(composeMembers, "", composeConverge, true)
	t.Logf("timing: up -d until 3 members agree on leader %s: %v", leader, time.Since(phase).Round(time.Millisecond))

	p.checkZonesAndUser()

	// Every member accepts writes (followers forward them), and every member
	// answers reads with the same record.
	p.mustWrite(composeMembers[0], http.MethodPut, "/v1/services/"+composeService,
		map[string]any{"pattern": "{node}/1.5/{uid}"}, http.StatusCreated)
	p.mustWrite(composeMembers[1], http.MethodPost, "/v1/services/"+composeService+"/nodes",
		map[string]any{"node": "https://node-a.example", "capacity": 1000}, http.StatusCreated)
	p.mustWrite(composeMembers[2], http.MethodPost, "/v1/services/"+composeService+"/nodes",
		map[string]any{"node": "https://node-b.example", "capacity": 1000}, http.StatusCreated)

	users := map[string]int64{} // email -> uid, everything ever allocated
	p.allocateThroughEach(composeMembers, "before", users)

	// A crashed leader (SIGKILL: no leadership hand-over) is replaced by an
	// election among the two survivors, which keep serving.
	phase = time.Now()
	p.compose(time.Minute, "kill", leader)
	survivors := composeWithout(composeMembers, leader)
	newLeader := p.waitConverged(survivors, leader, composeFailover, false)
	t.Logf("timing: leader %s killed, %s elected in %v", leader, newLeader, time.Since(phase).Round(time.Millisecond))
	p.allocateThroughEach(survivors, "after-kill", users)

	// The killed member comes back with its volume and catches up on what
	// was written without it.
	phase = time.Now()
	p.compose(time.Minute, "start", leader)
	p.waitConverged(composeMembers, "", composeConverge, true)
	p.waitCaughtUp(leader, users)
	t.Logf("timing: %s restarted and caught up in %v", leader, time.Since(phase).Round(time.Millisecond))

	// Data survives a restart of every container...
	phase = time.Now()
	p.compose(2*time.Minute, "restart")
	p.waitConverged(composeMembers, "", composeConverge, true)
	p.checkUsers(composeMembers, users)
	t.Logf("timing: docker-compose restart until converged: %v", time.Since(phase).Round(time.Millisecond))

	// ...and a full down/up without -v, which recreates containers and the
	// network (the fixed member IPs keep the stored Raft addresses valid).
	phase = time.Now()
	p.compose(2*time.Minute, "down")
	p.compose(3*time.Minute, "up", "-d")
	p.waitConverged(composeMembers, "", composeConverge, true)
	p.checkUsers(composeMembers, users)
	var highest int64
	for _, uid := range users {
		highest = max(highest, uid)
	}
	if uid := p.allocate(composeMembers[1], "after-down-up@example.com"); uid <= highest {
		t.Errorf("uid %d allocated after down/up is not above every earlier uid (highest %d)", uid, highest)
	}
	t.Logf("timing: down + up -d until converged and serving: %v", time.Since(phase).Round(time.Millisecond))
	t.Logf("timing: whole test before teardown %v", time.Since(started).Round(time.Millisecond))
}

func composeSkipUnlessDocker(t *testing.T) {
	t.Helper()
	testutil.SkipUnlessDocker(t, "compose test", "a Docker engine and docker-compose v1")
	// The chaos harness's check of docker, the engine and docker-compose;
	// no fault kinds, so nothing about iptables.
	if err := jepsen.CheckDocker(nil); err != nil {
		t.Skipf("compose test: %v", err)
	}
}

func composeRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	for _, f := range []string{"go.mod", "Dockerfile", ".dockerignore", "docker-compose.yml"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("repository root %s: %v", root, err)
		}
	}
	return root
}

// composeBuildImage builds the image the way `make image` does, but in a
// private build context (a temporary copy of Dockerfile and .dockerignore,
// the binary, the empty data dir) so it neither touches the shared bin/
// nor retags the developer's wimms:latest.
func composeBuildImage(t *testing.T, root string) string {
	t.Helper()
	buildCtx := t.TempDir()
	if err := os.MkdirAll(filepath.Join(buildCtx, "bin", "docker-data"), 0o755); err != nil {
		t.Fatalf("preparing build context: %v", err)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(buildCtx, f), b, 0o644); err != nil {
			t.Fatalf("copying %s into the build context: %v", f, err)
		}
	}
	gobuild := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=compose-test",
		"-o", filepath.Join(buildCtx, "bin", "wimms"), "./cmd/wimms")
	gobuild.Dir = root
	gobuild.Env = launch.GoEnv("CGO_ENABLED=0")
	if out, code := testutil.Run(t, gobuild); code != 0 {
		t.Fatalf("go build ./cmd/wimms: exit status %d\n%s", code, out)
	}

	image := "wimms-compose-test:" + composeRandomSuffix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, code := testutil.Run(t, exec.CommandContext(ctx, "docker", "build", "--build-arg", "VERSION=compose-test", "-t", image, buildCtx)); code != 0 {
		t.Fatalf("docker build: exit status %d\n%s", code, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, code := testutil.Run(t, exec.CommandContext(ctx, "docker", "rmi", "-f", image)); code != 0 {
			t.Logf("removing test image %s: exit status %d: %s", image, code, composeFirstLine(out))
		}
	})
	return image
}

type composeProject struct {
	t     *testing.T
	file  string
	name  string
	env   []string
	addrs map[string]string // member -> published HTTP address on the host
	zones map[string]string // member -> zone label given through the environment
	http  *http.Client
}

func composeNewProject(t *testing.T, root, image string) *composeProject {
	t.Helper()
	p := &composeProject{
		t:     t,
		file:  filepath.Join(root, "docker-compose.yml"),
		name:  "wimmstest" + composeRandomSuffix(t),
		addrs: map[string]string{},
		zones: map[string]string{},
		// Members restart under the test; pooled connections to a dead
		// container would only produce confusing errors.
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	// The compose test's own range keeps it clear of jepsen runs and of a
	// developer's `make cluster-up`.
	prefix, err := jepsen.FreeSubnetPrefix(jepsen.ComposeSubnetLow, jepsen.ComposeSubnetHigh)
	if err != nil {
		t.Fatalf("compose subnet: %v", err)
	}
	p.env = append(jepsen.ComposeEnv(),
		"COMPOSE_PROJECT_NAME="+p.name,
		"WIMMS_IMAGE="+image,
		"WIMMS_SUBNET_PREFIX="+prefix,
		"WIMMS_PUBLISH_IP=127.0.0.1",
		// No auth: the test drives the API directly.
		"WIMMS_API_TOKEN=", "WIMMS_ADMIN_TOKEN=", "WIMMS1_JOIN=",
		"WIMMS_LOG_LEVEL=info", "WIMMS_LOG_JSON=false",
	)
	// The ports are free when picked but not held: another process could
	// take one before docker-compose binds it, and `up` then fails loudly.
	for i, port := range freePorts(t, len(composeMembers)) {
		m := composeMembers[i]
		p.addrs[m] = fmt.Sprintf("127.0.0.1:%d", port)
		p.zones[m] = fmt.Sprintf("test-zone-%c", 'a'+i)
		p.env = append(p.env,
			fmt.Sprintf("WIMMS%d_HTTP_PORT=%d", i+1, port),
			fmt.Sprintf("WIMMS%d_ZONE=%s", i+1, p.zones[m]))
	}
	t.Logf("compose project %s: subnet %s.0/24, members %v", p.name, prefix, p.addrs)

	// Registered after the image's cleanup, so it runs before it: the
	// containers go first, then the image they use.
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := p.run(time.Minute, "logs", "--no-color", "--tail", "150"); err == nil {
				t.Logf("docker-compose logs (test failed):\n%s", out)
			}
		}
		start := time.Now()
		if out, err := p.run(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("docker-compose down -v: %v\n%s", err, out)
		}
		t.Logf("timing: down -v %v", time.Since(start).Round(time.Millisecond))
	})
	return p
}

func (p *composeProject) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-f", p.file, "-p", p.name}, args...)...)
	cmd.Env = p.env
	out, code := testutil.Run(p.t, cmd)
	if code != 0 {
		return out, fmt.Errorf("docker-compose %s: exit status %d", strings.Join(args, " "), code)
	}
	return out, nil
}

func (p *composeProject) compose(timeout time.Duration, args ...string) {
	p.t.Helper()
	if out, err := p.run(timeout, args...); err != nil {
		p.t.Fatalf("%v\n%s", err, out)
	}
}

// waitConverged waits until every member in `members` answers
// GET /v1/cluster naming the same leader, which must not be `notLeader`.
// With allVoters, every voter must also be alive (leader or follower) and
// the member list must hold exactly the compose members: the state `make
// cluster-up` waits for.
func (p *composeProject) waitConverged(members []string, notLeader string, timeout time.Duration, allVoters bool) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		leader, err := p.agreedLeader(members, notLeader, allVoters)
		if err == nil {
			return leader
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	p.t.Fatalf("members %v did not agree on a leader within %v: %v", members, timeout, last)
	return ""
}

func (p *composeProject) agreedLeader(members []string, notLeader string, allVoters bool) (string, error) {
	leader := ""
	for _, m := range members {
		st, err := p.clusterStatus(m)
		if err != nil {
			return "", fmt.Errorf("%s: %w", m, err)
		}
		if st.Leader == nil {
			return "", fmt.Errorf("%s knows no leader", m)
		}
		if st.Leader.ID == notLeader {
			return "", fmt.Errorf("%s still names %s as leader", m, notLeader)
		}
		if leader != "" && st.Leader.ID != leader {
			return "", fmt.Errorf("members disagree on the leader: %s and %s", leader, st.Leader.ID)
		}
		leader = st.Leader.ID
		if allVoters {
			if err := composeCheckMembership(st); err != nil {
				return "", fmt.Errorf("%s: %w", m, err)
			}
		}
	}
	return leader, nil
}

// clusterStatus is the cluster as member m sees it, asked as `wimms status`
// asks.
func (p *composeProject) clusterStatus(m string) (wire.ClusterStatus, error) {
	c, err := (&admincli.ClientFlags{Addr: p.addrs[m], Timeout: 5 * time.Second}).Connect()
	if err != nil {
		return wire.ClusterStatus{}, err
	}
	st, err := admincli.FetchClusterStatus(context.Background(), c.API)
	if err != nil {
		return st, fmt.Errorf("cluster status of %s: %w", p.addrs[m], err)
	}
	return st, nil
}

func composeCheckMembership(st wire.ClusterStatus) error {
	if len(st.Members) != len(composeMembers) {
		return fmt.Errorf("%d members, want %d: %+v", len(st.Members), len(composeMembers), st.Members)
	}
	for _, m := range st.Members {
		if !m.Voter || (m.State != "leader" && m.State != "follower") {
			return fmt.Errorf("member %s is voter=%v state=%q", m.ID, m.Voter, m.State)
		}
	}
	return nil
}

// checkZonesAndUser checks what only the deployment decides: each member's
// zone label comes from the environment, and containers run as the
// unprivileged uid (the member could only start by writing its data dir).
func (p *composeProject) checkZonesAndUser() {
	p.t.Helper()
	st, err := p.clusterStatus(composeMembers[0])
	if err != nil {
		p.t.Fatalf("cluster status: %v", err)
	}
	for _, m := range st.Members {
		if want, ok := p.zones[m.ID]; !ok || m.Zone != want {
			p.t.Errorf("member %s has zone %q, want %q (from WIMMS*_ZONE)", m.ID, m.Zone, want)
		}
	}
	for _, m := range composeMembers {
		id, err := p.run(30*time.Second, "ps", "-q", m)
		if err != nil || strings.TrimSpace(id) == "" {
			p.t.Fatalf("container of %s: %v %s", m, err, id)
		}
		out, code := testutil.Run(p.t, exec.Command("docker", "inspect", "--format", "{{.Config.User}} {{.State.Health.Status}}", strings.TrimSpace(id)))
		if code != 0 {
			p.t.Fatalf("docker inspect %s: exit status %d: %s", m, code, out)
		}
		fields := strings.Fields(out)
		if len(fields) != 2 || fields[0] != composeRunnerUser {
			p.t.Errorf("%s runs as %q, want user %s", m, out, composeRunnerUser)
		}
		// wimms1 must have been healthy for up -d to start the others; the
		// others may still be in their first interval.
		if len(fields) == 2 && fields[1] == "unhealthy" {
			p.t.Errorf("%s: container health check reports unhealthy", m)
		}
	}
}

// allocate creates a user through `member` and returns its uid. mustWrite's
// Idempotency-Key makes its retries safe: a retry returns the first answer
// instead of allocating twice.
func (p *composeProject) allocate(member, email string) int64 {
	p.t.Helper()
	body := p.mustWrite(member, http.MethodPost, "/v1/services/"+composeService+"/users",
		map[string]any{"email": email}, http.StatusCreated)
	var u composeUser
	if err := json.Unmarshal(body, &u); err != nil {
		p.t.Fatalf("allocate %s via %s: decoding %s: %v", email, member, body, err)
	}
	if u.Email != email || u.UID <= 0 || u.Node == nil {
		p.t.Fatalf("allocate %s via %s: unexpected user %s", email, member, body)
	}
	return u.UID
}

type composeUser struct {
	UID   int64   `json:"uid"`
	Email string  `json:"email"`
	Node  *string `json:"node"`
}

func (p *composeProject) mustWrite(member, method, path string, body any, want int) []byte {
	p.t.Helper()
	key := "compose-test-" + composeRandomSuffix(p.t)
	deadline := time.Now().Add(composeFailover)
	for {
		status, resp, err := p.request(member, method, path, body, key)
		if err == nil && status == want {
			return resp
		}
		// 503: no leader yet; 504: outcome unknown (leader lost mid-commit).
		// Both are retried with the same key, as a client should.
		retriable := err != nil || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
		if !retriable || time.Now().After(deadline) {
			p.t.Fatalf("%s %s via %s: status %d, want %d: %v %s", method, path, member, status, want, err, resp)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (p *composeProject) request(member, method, path string, body any, idempotencyKey string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encoding body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+p.addrs[member]+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("building request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// getUser reads a user through a member at a consistency level; found is
// false on 404.
func (p *composeProject) getUser(member, email, consistency string) (uid int64, found bool, err error) {
	path := "/v1/services/" + composeService + "/users/" + url.PathEscape(email) + "?consistency=" + consistency
	status, body, err := p.request(member, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, false, err
	}
	switch status {
	case http.StatusOK:
		var u composeUser
		if err := json.Unmarshal(body, &u); err != nil {
			return 0, false, fmt.Errorf("decoding %s: %w", body, err)
		}
		return u.UID, true, nil
	case http.StatusNotFound:
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("GET %s via %s: status %d: %s", path, member, status, body)
}

// checkUsers reads every user through every member (the leader's state, so
// followers forward) and requires the uid it was allocated with. A 503
// while the cluster settles is retried; a missing or different user is not.
// allocateThroughEach allocates PREFIX-M@example.com through each member
// M, adds them to users, and checks that every member serves every user.
func (p *composeProject) allocateThroughEach(members []string, prefix string, users map[string]int64) {
	p.t.Helper()
	for _, m := range members {
		email := prefix + "-" + m + "@example.com"
		users[email] = p.allocate(m, email)
	}
	p.checkUsers(members, users)
}

func (p *composeProject) checkUsers(members []string, users map[string]int64) {
	p.t.Helper()
	for _, m := range members {
		for email, want := range users {
			deadline := time.Now().Add(composeFailover)
			for {
				uid, found, err := p.getUser(m, email, "default")
				if err == nil {
					if !found || uid != want {
						p.t.Fatalf("user %s via %s: found=%v uid=%d, want uid %d", email, m, found, uid, want)
					}
					break
				}
				if time.Now().After(deadline) {
					p.t.Fatalf("user %s via %s: %v", email, m, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
}

// waitCaughtUp waits until `member`'s own state (a stale read, served from
// its local copy) holds every user, including those written while it was
// down.
func (p *composeProject) waitCaughtUp(member string, users map[string]int64) {
	p.t.Helper()
	deadline := time.Now().Add(composeConverge)
	for email, want := range users {
		for {
			uid, found, err := p.getUser(member, email, "stale")
			if err == nil && found {
				if uid != want {
					p.t.Fatalf("%s's local copy has %s with uid %d, want %d", member, email, uid, want)
				}
				break
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("%s did not catch up within %v: %s found=%v err=%v", member, composeConverge, email, found, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func composeWithout(members []string, drop string) []string {
	var out []string
	for _, m := range members {
		if m != drop {
			out = append(out, m)
		}
	}
	return out
}

func composeRandomSuffix(t *testing.T) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b[:])
}

func composeFirstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
