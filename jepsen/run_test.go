package jepsen

import (
	"cmp"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// Full runs start real members and inject real faults: they need root,
// iptables and WIMMS_JEPSEN=1 (CI sets it), and take minutes.
func skipUnlessChaos(t *testing.T) {
	t.Helper()
	if os.Getenv("WIMMS_JEPSEN") != "1" {
		t.Skip("set WIMMS_JEPSEN=1 to run the chaos runs (needs root and iptables)")
	}
	if testing.Short() {
		t.Skip("chaos runs are long; not with -short")
	}
	skipWithoutIptables(t)
}

// chaosServerBin is ./cmd/wimms built with -tags chaos the way a run does
// for --seed-bug; asking for its path skips the test under -short.
var chaosServerBin = &testutil.Binary{Build: func(dir string) (string, error) {
	path := filepath.Join(dir, "wimms-chaos")
	return path, BuildChaosBinary(context.Background(), ".", path)
}}

func TestMain(m *testing.M) { testutil.Main(m) }

// memberLog is what member i (from 1) of a run printed, as the run keeps
// it in its out dir.
func memberLog(t *testing.T, outDir string, i int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(outDir, "member-"+strconv.Itoa(i)+".log"))
	if err != nil {
		t.Fatalf("log of member %d: %v", i, err)
	}
	return string(b)
}

func runForTest(t *testing.T, opts Options) Summary {
	t.Helper()
	if opts.Bin == "" {
		opts.Bin = testutil.WimmsPath(t)
	}
	opts.OutDir = filepath.Join(t.TempDir(), "out")
	// WIMMS_JEPSEN_FIRST_IP / WIMMS_JEPSEN_BASE_PORT move the members, so
	// that a run can go beside another one on a shared machine.
	if v, err := strconv.Atoi(os.Getenv("WIMMS_JEPSEN_FIRST_IP")); err == nil {
		opts.FirstIP = v
	}
	if v, err := strconv.Atoi(os.Getenv("WIMMS_JEPSEN_BASE_PORT")); err == nil {
		opts.HTTPPort = v
	}
	opts.Progress = testWriter{t}
	sum, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("run could not be done: %v (see %s)", err, opts.OutDir)
	}
	t.Logf("%s: %d ops (%d ok, %d fail, %d info), faults %v, anomalies %d",
		sum.Verdict, sum.Ops, sum.OpsOK, sum.OpsFail, sum.OpsInfo, sum.NemesisKinds, len(sum.Anomalies))
	for _, a := range sum.Anomalies {
		t.Logf("  anomaly %s %s node %d: %s", a.Kind, a.Email, a.NodeID, a.Detail)
	}
	assertCleanedUp(t, opts)
	return sum
}

// After a run no rule and no member may be left.
func assertCleanedUp(t *testing.T, opts Options) {
	t.Helper()
	checkHostRulesOmit(t, nemesis.ChainAddr, "iptables rules left after the run")
	firstIP, port := cmp.Or(opts.FirstIP, 10), cmp.Or(opts.HTTPPort, 24080)
	for i := range opts.Members {
		addr := net.JoinHostPort("127.0.0."+strconv.Itoa(firstIP+i), strconv.Itoa(port))
		if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("a member still listens on %s after the run", addr)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// validHealthyRun runs a correct three-member cluster for 45 s under the
// faults named and fails t unless the run is judged valid.
func validHealthyRun(t *testing.T, faults string, seed uint64) Summary {
	t.Helper()
	kinds, err := nemesis.Parse(faults)
	if err != nil {
		t.Fatal(err)
	}
	sum := runForTest(t, Options{Members: 3, Duration: 45 * time.Second, Nemesis: kinds, Seed: seed,
		FaultHold: [2]time.Duration{2 * time.Second, 4 * time.Second}, FaultGap: [2]time.Duration{time.Second, 2 * time.Second}})
	if sum.Verdict != checker.VerdictValid {
		t.Fatalf("healthy cluster judged %s: %+v", sum.Verdict, sum.Anomalies)
	}
	return sum
}

// A correct cluster under partitions, kills and pauses must be judged valid,
// and the run must really have exercised it.
func TestChaosHealthyRunIsValid(t *testing.T) {
	skipUnlessChaos(t)
	sum := validHealthyRun(t, "partition,kill,pause", 11)
	checkExercised(t, sum, 5)
	if sum.Final == nil || sum.Final.Users == 0 {
		t.Errorf("final state has no users: %+v", sum.Final)
	}
	for _, f := range []string{SummaryFile, HistoryHTML, HistoryFile, "member-1.log", "member-3.log"} {
		if !slices.Contains(sum.Files, f) {
			t.Errorf("output lacks %s: %v", f, sum.Files)
		}
	}
}

// Each seeded bug must make the checker fail, with the anomaly that the bug
// explains. The bugs exist only in a chaos build.
func TestChaosCatchesSeededBugs(t *testing.T) {
	skipUnlessChaos(t)
	for _, bug := range SeedBugs() {
		t.Run(bug.Name, func(t *testing.T) {
			kinds, err := nemesis.Parse(bug.Nemesis)
			if err != nil {
				t.Fatal(err)
			}
			sum := runForTest(t, Options{Bin: chaosServerBin.Path(t), Members: 3, Duration: 25 * time.Second, Nemesis: kinds, SeedBug: bug.Name, Seed: 12,
				FaultHold: [2]time.Duration{2 * time.Second, 3 * time.Second}, FaultGap: [2]time.Duration{time.Second, 2 * time.Second}})
			if sum.Verdict != checker.VerdictInvalid {
				t.Fatalf("seeded bug %s not caught: verdict %s", bug.Name, sum.Verdict)
			}
			caught := slices.ContainsFunc(sum.Anomalies, func(a checker.Anomaly) bool { return slices.Contains(bug.CaughtBy, a.Kind) })
			if !caught {
				t.Fatalf("seeded bug %s caught, but not by %v: %+v", bug.Name, bug.CaughtBy, sum.Anomalies)
			}
		})
	}
}

// Every write of docs/spec.md §4 under kills, pauses and whole-cluster
// restarts: judged valid, with each lifecycle operation really answered.
func TestChaosLifecycleRunIsValid(t *testing.T) {
	skipUnlessChaos(t)
	sum := validHealthyRun(t, "kill,pause,restart-all", 13)
	if sum.NemesisKinds[nemesis.FaultRestartAll] == 0 {
		t.Errorf("no restart-all in 45 s: %v", sum.NemesisKinds)
	}
	for _, k := range []history.OpKind{history.OpRetire, history.OpReplace, history.OpEvent, history.OpRecords, history.OpDeleteRecord, history.OpNodeChange, history.OpUnassign,
		history.OpRemoveNode, history.OpAddNode} {
		if sum.OpsByKind[k][history.OutcomeOK] == 0 {
			t.Errorf("no %s answered: %v", k, sum.OpsByKind[k])
		}
	}
}
