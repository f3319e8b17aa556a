package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
	"github.com/wimms-dev/wimms/jepsen/workload"
)

// scriptDrops parses the DROP rules of a nemesis.NetnsScript: the source
// addresses it drops.
func scriptDrops(t *testing.T, script string) []string {
	t.Helper()
	var drops []string
	for _, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "-A" {
			continue
		}
		if len(f) != 6 || f[1] != nemesis.ChainAddr || f[2] != "-s" || f[4] != "-j" || f[5] != "DROP" || !strings.HasSuffix(f[3], "/32") {
			t.Fatalf("unexpected rule %q in\n%s", line, script)
		}
		drops = append(drops, strings.TrimSuffix(f[3], "/32"))
	}
	return drops
}

func TestDockerNetnsScriptCutsExactlyThePairs(t *testing.T) {
	ips := []string{"10.213.5.11", "10.213.5.12", "10.213.5.13", "10.213.5.14", "10.213.5.15"}
	// The simplest case, spelled out.
	cut := []nemesis.Pair{{0, 2}}
	want := map[int][]string{0: {"10.213.5.13"}, 1: nil, 2: {"10.213.5.11"}}
	for self, w := range want {
		if got := scriptDrops(t, nemesis.NetnsScript(self, cut, ips[:3])); !slices.Equal(got, w) {
			t.Errorf("member %d drops %v, want %v", self, got, w)
		}
	}

	// Every shape the nemesis makes: member a drops b's packets exactly when
	// the pair is cut (and then b drops a's), so each cut pair is cut both
	// ways on arrival and nothing else is touched.
	for n := 2; n <= 5; n++ {
		rng := rand.New(rand.NewPCG(uint64(n), 9))
		shapes := map[string][]nemesis.Pair{}
		shapes["halves"], _ = nemesis.HalvesCut(n, rng, nil)
		shapes["isolate"], _ = nemesis.IsolateCut(n, n-1, nil)
		if n >= 3 { // with two there is no room for a bridge: nothing is cut
			shapes["ring"], _ = nemesis.RingCut(n, rng, nil)
			shapes["bridge"], _ = nemesis.BridgeCut(n, rng, nil)
		}
		for name, cut := range shapes {
			if len(cut) == 0 {
				t.Fatalf("n=%d %s: empty cut", n, name)
			}
			for a := range n {
				drops := scriptDrops(t, nemesis.NetnsScript(a, cut, ips[:n]))
				for b := range n {
					isCut := a != b && slices.Contains(cut, nemesis.NewPair(a, b))
					if slices.Contains(drops, ips[b]) != isCut {
						t.Errorf("n=%d %s: member %d drops %s: %v, pair cut: %v", n, name, a, ips[b], !isCut, isCut)
					}
				}
				if len(drops) != len(slices.Compact(slices.Sorted(slices.Values(drops)))) {
					t.Errorf("n=%d %s: member %d has duplicate rules %v", n, name, a, drops)
				}
			}
		}
	}
}

// A heal script empties the chain (declaring it is what flushes it), and
// the jump is added exactly once, before COMMIT.
func TestDockerNetnsScriptHealAndJump(t *testing.T) {
	heal := nemesis.NetnsScript(1, nil, nil)
	if want := "*filter\n:" + nemesis.ChainAddr + " - [0:0]\nCOMMIT\n"; heal != want {
		t.Fatalf("heal script %q, want %q", heal, want)
	}
	s := nemesis.WithJump(nemesis.NetnsScript(0, []nemesis.Pair{{0, 1}}, []string{"10.0.0.1", "10.0.0.2"}))
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if n := strings.Count(s, "-I INPUT 1 -j "+nemesis.ChainAddr); n != 1 {
		t.Fatalf("%d jumps in\n%s", n, s)
	}
	if lines[len(lines)-1] != "COMMIT" || lines[len(lines)-2] != "-I INPUT 1 -j "+nemesis.ChainAddr {
		t.Fatalf("jump not right before COMMIT:\n%s", s)
	}
	if got := scriptDrops(t, s); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("drops %v", got)
	}
}

func TestDockerParseInspect(t *testing.T) {
	st, err := parseInspect("true|false|false|running|4242|0|2|10.213.5.12 |wimmsjepsenab_wimms2-data\n")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Paused || st.Pid != 4242 || st.RestartCount != 2 || !slices.Equal(st.IPs, []string{"10.213.5.12"}) ||
		st.DataVolume != "wimmsjepsenab_wimms2-data" || st.Status != "running" {
		t.Fatalf("parsed %+v", st)
	}
	// Two networks: the harness must see both to refuse them.
	if st, err := parseInspect("true|false|false|running|1|0|0|10.1.0.2 10.2.0.2 |v"); err != nil || len(st.IPs) != 2 {
		t.Fatalf("two networks: %+v %v", st, err)
	}
	for _, bad := range []string{"", "true|false", "true|false|false|running|x|0|0||"} {
		if _, err := parseInspect(bad); err == nil {
			t.Errorf("parseInspect(%q) accepted", bad)
		}
	}
}

// The scripts applied for real, with the host's iptables-restore, in a
// network namespace of a process started for the test (unshare -n): the
// same mechanism as in a container, without Docker.
func TestDockerNetnsScriptInANamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace and iptables)")
	}
	for _, tool := range []string{"unshare", "nsenter", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on PATH", tool)
		}
	}
	sleeper := exec.Command("unshare", "-n", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skipf("unshare -n: %v", err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := sleeper.Process.Pid
	ctx := context.Background()
	// unshare execs sleep once the namespace exists; wait for that.
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	for deadline := time.Now().Add(5 * time.Second); ; {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if ns != "" && ns != hostNS {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never got its own network namespace", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// TEST-NET-1 addresses: nothing on the host may mention them.
	ips := []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"}
	rules := func() []string {
		t.Helper()
		r, err := nemesis.NetnsRules(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	jump := "-A INPUT -j " + nemesis.ChainAddr

	// Member 0 isolated: its namespace drops both peers.
	if err := nemesis.RestoreInNetns(ctx, pid, nemesis.WithJump(nemesis.NetnsScript(0, []nemesis.Pair{{0, 1}, {0, 2}}, ips))); err != nil {
		t.Fatal(err)
	}
	want := []string{jump, "-A " + nemesis.ChainAddr + " -s 192.0.2.12/32 -j DROP", "-A " + nemesis.ChainAddr + " -s 192.0.2.13/32 -j DROP"}
	if got := rules(); !slices.Equal(got, want) {
		t.Fatalf("after isolating member 0:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The next cut replaces the previous one; the jump stays single.
	if err := nemesis.RestoreInNetns(ctx, pid, nemesis.NetnsScript(0, []nemesis.Pair{{0, 2}}, ips)); err != nil {
		t.Fatal(err)
	}
	want = []string{jump, "-A " + nemesis.ChainAddr + " -s 192.0.2.13/32 -j DROP"}
	if got := rules(); !slices.Equal(got, want) {
		t.Fatalf("after the second cut:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Heal removes every DROP rule.
	if err := nemesis.RestoreInNetns(ctx, pid, nemesis.NetnsScript(0, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if got := rules(); !slices.Equal(got, []string{jump}) {
		t.Fatalf("after heal: %v", got)
	}
	checkHostRulesOmit(t, "192.0.2.", "a namespace's rule reached the host's tables")
}

// --- Tests against Docker (WIMMS_DOCKER=1, root) ---

func skipUnlessDocker(t *testing.T) {
	t.Helper()
	testutil.SkipUnlessDocker(t, "docker chaos", "root, a Docker engine and docker-compose v1")
	if os.Geteuid() != 0 {
		t.Skip("docker chaos: needs root (nsenter into the containers' network namespaces)")
	}
	if err := CheckDocker([]nemesis.FaultKind{nemesis.FaultPartitionHalves}); err != nil {
		t.Skipf("docker chaos: %v", err)
	}
}

// assertProjectGone: no container, network, volume or image of the
// project, no lock, no temporary directory.
func assertProjectGone(t *testing.T, project string) {
	t.Helper()
	left, err := projectLeftovers(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("project %s left %v", project, left)
	}
	if out, err := dockerCmd(context.Background(), 30*time.Second, "images", "-q", dockerImageRepo+":"+project); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("image %s:%s left (%q, %v)", dockerImageRepo, project, out, err)
	}
	if _, err := os.Stat(projectLockPath(project)); !os.IsNotExist(err) {
		t.Errorf("lock file %s left: %v", projectLockPath(project), err)
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), projectTmpPrefix(project)+"*")); len(dirs) > 0 {
		t.Errorf("temporary directories left: %v", dirs)
	}
}

// The fault primitives, one by one, against a real compose project: each
// must have the effect it claims on the cluster, and heal must undo it.
func TestDockerFaultsTakeEffect(t *testing.T) {
	skipUnlessDocker(t)
	bin := testutil.WimmsPath(t) // static (launch.Build), as the FROM scratch image needs
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := Options{Members: 3, OutDir: t.TempDir(), Bin: bin, LeaderWait: 2 * time.Second,
		Docker: &DockerOptions{ComposeFile: filepath.Join("..", "docker-compose.yml")}}
	log := hclog.New(&hclog.LoggerOptions{Name: "docker-test", Output: testWriter{t}, Level: hclog.Info})
	c, err := newDockerCluster(ctx, opts, log, func(f string, a ...any) { t.Logf(f, a...) })
	if c != nil {
		project := c.project.name
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			assertProjectGone(t, project)
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	members := c.Members()
	api := workload.NewClients(2*time.Second, nil)
	status := func(i int) (wire.ClusterStatus, error) {
		st, _, err := api.Of(members[i].HTTPAddr).Cluster(ctx)
		if err != nil {
			return wire.ClusterStatus{}, fmt.Errorf("%s: %w", members[i].ID, err)
		}
		return *st, nil
	}
	// agree waits until the given members name one leader (not `not`).
	agree := func(who []int, not string, within time.Duration) string {
		t.Helper()
		deadline := time.Now().Add(within)
		var last error
		for time.Now().Before(deadline) {
			leader := ""
			last = nil
			for _, i := range who {
				st, err := status(i)
				switch {
				case err != nil:
					last = err
				case st.Leader == nil:
					last = fmt.Errorf("%s knows no leader", members[i].ID)
				case st.Leader.ID == not:
					last = fmt.Errorf("%s still follows %s", members[i].ID, not)
				case leader != "" && st.Leader.ID != leader:
					last = fmt.Errorf("leaders %s and %s", leader, st.Leader.ID)
				default:
					leader = st.Leader.ID
				}
			}
			if last == nil {
				return leader
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatalf("members %v did not agree on a leader within %s: %v", who, within, last)
		return ""
	}
	index := func(id string) int {
		return slices.IndexFunc(members, func(m memberInfo) bool { return m.ID == id })
	}
	all := []int{0, 1, 2}

	if err := c.Start(ctx, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	leader := index(agree(all, "", 90*time.Second))

	// Isolate the leader: the rules are where they should be, and the two
	// others elect someone else.
	cut, desc := nemesis.IsolateCut(3, leader, nil)
	if err := c.Partition(cut); err != nil {
		t.Fatal(err)
	}
	for i, m := range c.members {
		st, err := inspectContainer(ctx, m.container)
		if err != nil {
			t.Fatal(err)
		}
		got, err := nemesis.NetnsRules(ctx, st.Pid)
		if err != nil {
			t.Fatal(err)
		}
		drops := 0
		for _, r := range got {
			if strings.HasPrefix(r, "-A "+nemesis.ChainAddr+" ") {
				drops++
			}
		}
		if want := map[bool]int{true: 2, false: 1}[i == leader]; drops != want {
			t.Errorf("cut %s: %s has %d DROP rules, want %d: %v", desc, m.Service, drops, want, got)
		}
	}
	var others []int
	for _, i := range all {
		if i != leader {
			others = append(others, i)
		}
	}
	t.Logf("isolated leader %s", members[leader].ID)
	newLeader := agree(others, members[leader].ID, 30*time.Second)
	t.Logf("%s elected while %s was cut off", newLeader, members[leader].ID)

	if err := c.HealNetwork(); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.members {
		st, _ := inspectContainer(ctx, m.container)
		got, err := nemesis.NetnsRules(ctx, st.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(got, func(r string) bool { return strings.Contains(r, "DROP") }) {
			t.Errorf("%s still has DROP rules after heal: %v", m.Service, got)
		}
	}
	leader = index(agree(all, "", 30*time.Second))

	// Kill a follower: it is gone (its port refuses or resets); restarted,
	// it rejoins with its data.
	follower := (leader + 1) % 3
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if c.Running(follower) {
		t.Fatal("killed member reported running")
	}
	if _, err := status(follower); err == nil {
		t.Fatalf("%s answers after docker kill", members[follower].ID)
	}
	if err := c.Restart(follower); err != nil {
		t.Fatal(err)
	}
	agree(all, "", 60*time.Second)

	// Pause a follower: it accepts nothing in time; unpaused, it answers.
	if err := c.Pause(follower); err != nil {
		t.Fatal(err)
	}
	if !c.Paused(follower) {
		t.Fatal("paused member not reported paused")
	}
	if meta, err := api.Of(members[follower].HTTPAddr).Healthz(ctx); err == nil {
		t.Fatalf("%s answered /healthz while paused: %s", members[follower].ID, workload.Describe(meta, err))
	}
	if err := c.Resume(follower); err != nil {
		t.Fatal(err)
	}
	agree(all, "", 30*time.Second)

	c.StopAll()
	for i := range all {
		if crashes := c.Crashes(i); len(crashes) > 0 {
			t.Errorf("%s crashed: %v", members[i].ID, crashes)
		}
	}
}

// The whole harness against the compose deployment: a short run with
// partitions, kills and pauses must be judged valid, must really have
// injected each kind of fault, and must leave nothing behind.
func TestDockerChaosRunIsValid(t *testing.T) {
	skipUnlessDocker(t)
	kinds, _ := nemesis.Parse("partition,kill,pause")
	opts := Options{Members: 3, Duration: 40 * time.Second, Nemesis: kinds,
		// Seed 1 draws ring, halves, pause and kill first (none needs a
		// leader lookup, so the order does not depend on timing).
		Seed:      1,
		FaultHold: [2]time.Duration{2 * time.Second, 4 * time.Second}, FaultGap: [2]time.Duration{time.Second, 2 * time.Second},
		Bin: testutil.WimmsPath(t), OutDir: filepath.Join(t.TempDir(), "out"), Progress: testWriter{t},
		Docker: &DockerOptions{ComposeFile: filepath.Join("..", "docker-compose.yml")}}
	sum, err := Run(context.Background(), opts)
	if sum.Docker != nil {
		assertProjectGone(t, sum.Docker.Project)
	}
	if err != nil {
		t.Fatalf("run could not be done: %v", err)
	}
	t.Logf("%s: %d ops (%d ok, %d fail, %d info), faults %v, anomalies %d, elapsed %s",
		sum.Verdict, sum.Ops, sum.OpsOK, sum.OpsFail, sum.OpsInfo, sum.NemesisKinds, len(sum.Anomalies), sum.Elapsed)
	for _, a := range sum.Anomalies {
		t.Logf("  anomaly %s %s node %d: %s", a.Kind, a.Email, a.NodeID, a.Detail)
	}
	if sum.Verdict != checker.VerdictValid {
		t.Fatalf("healthy deployment judged %s: %+v", sum.Verdict, sum.Anomalies)
	}
	if sum.Docker == nil || !sum.Docker.ImageBuilt || len(sum.Docker.MemberIPs) != 3 {
		t.Errorf("summary lacks the docker description: %+v", sum.Docker)
	}
	families := map[string]bool{}
	for _, ev := range sum.Events {
		if ev.Error != "" {
			t.Errorf("fault %s %v failed: %s", ev.Kind, ev.Targets, ev.Error)
		}
		if !ev.Injected {
			continue
		}
		switch ev.Kind {
		case nemesis.FaultKill, nemesis.FaultKillLeader:
			families["kill"] = true
		case nemesis.FaultPause, nemesis.FaultPauseLeader:
			families["pause"] = true
		default:
			families["partition"] = families["partition"] || ev.Kind.IsPartition()
		}
	}
	for _, f := range []string{"partition", "kill", "pause"} {
		if !families[f] {
			t.Errorf("no %s fault injected: %v", f, sum.NemesisKinds)
		}
	}
	checkExercised(t, sum, 0)
	for i := 1; i <= 3; i++ {
		if log := memberLog(t, opts.OutDir, i); !strings.Contains(log, "docker logs -t of container") || !strings.Contains(log, "[INFO]") {
			t.Errorf("member-%d.log lacks the container's logs: %.200s", i, log)
		}
	}
}
