package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as an etcd member, as the real
// program does: the benchmark starts its etcd members by running its own
// executable.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == etcdMemberArg {
		runEtcdMember(os.Args[2:])
		return
	}
	os.Exit(m.Run())
}

// wimmsBinary is $WIMMS_BIN, or the main module's wimms built for the test.
func wimmsBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("WIMMS_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "wimms")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wimms")
	cmd.Dir = filepath.Join("..", "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build wimms: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs the -short mode against every system and checks each
// produced successes on both workloads without an error, that the peers'
// allocations passed their consistency check, and that nothing was left
// in the temp dir. Speed is reported, never asserted.
func TestSmoke(t *testing.T) {
	bin := wimmsBinary(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg, err := parseFlags([]string{"-short", "-quiet", "-wimms-bin", bin}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := runAll(ctx, cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	for _, sys := range allSystems {
		t.Run(sys, func(t *testing.T) {
			if reason, ok := rep.Skipped[sys]; ok {
				t.Skip(reason)
			}
			checkSystem(t, rep, sys)
		})
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left behind in the temp dir: %v", left)
	}
	var back Report
	if err := json.Unmarshal(mustJSON(t, rep), &back); err != nil || len(back.Runs) != len(rep.Runs) {
		t.Errorf("JSON report does not read back: %v", err)
	}
}

func checkSystem(t *testing.T, rep *Report, sys string) {
	t.Helper()
	for _, w := range workloads {
		var seen bool
		for _, r := range rep.Runs {
			if r.System != sys || r.Workload != w {
				continue
			}
			seen = true
			switch {
			case r.Failed != "":
				t.Errorf("%s %s failed: %s", sys, w, r.Failed)
			case r.OKPerSec <= 0 || r.OK <= 0:
				t.Errorf("%s %s: no successful operation (%+v)", sys, w, r)
			case r.Errors != 0:
				t.Errorf("%s %s: %d errors: %v", sys, w, r.Errors, r.ErrorKinds)
			case r.MembersUsPerOp <= 0:
				t.Errorf("%s %s: members' CPU not measured", sys, w)
			}
			if sys != "wimms" && w == "alloc" && !strings.HasPrefix(r.Check, "ok:") {
				t.Errorf("%s alloc check: %q", sys, r.Check)
			}
		}
		if !seen {
			t.Errorf("%s %s did not run", sys, w)
		}
	}
}

func mustJSON(t *testing.T, rep *Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := rep.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMedianAndRatio checks the arithmetic the table prints.
func TestMedianAndRatio(t *testing.T) {
	rep := newReport(Config{Rounds: 3})
	for i, v := range []struct{ wimms, etcd, maria float64 }{{100, 50, 80}, {300, 40, 60}, {200, 45, 70}} {
		rep.Runs = append(rep.Runs,
			Result{System: "wimms", Workload: "alloc", Round: i + 1, OKPerSec: v.wimms, P50ms: 1, MembersUsPerOp: 10},
			Result{System: "etcd", Workload: "alloc", Round: i + 1, OKPerSec: v.etcd, P50ms: 4, MembersUsPerOp: 20},
			Result{System: "mariadb", Workload: "alloc", Round: i + 1, OKPerSec: v.maria, P50ms: 2, MembersUsPerOp: 5})
	}
	rep.Runs = append(rep.Runs, Result{System: "etcd", Workload: "alloc", Round: 4, OKPerSec: 1e9, Failed: "start"})
	rep.summarize([]string{"wimms", "etcd", "mariadb"})
	if len(rep.Medians) != 3 || rep.Medians[0].OKPerSec != 200 || rep.Medians[1].OKPerSec != 45 || rep.Medians[1].Rounds != 3 {
		t.Fatalf("medians: %+v", rep.Medians)
	}
	if len(rep.Ratios) != 1 {
		t.Fatalf("ratios: %+v", rep.Ratios)
	}
	ra := rep.Ratios[0]
	want := map[string]float64{"ok_per_s": 200.0 / 70, "p50_ms": 0.5, "members_us_per_op": 2}
	for k, v := range want {
		if got := ra.Ratio[k]; got != round2(v) {
			t.Errorf("ratio %s = %v, want %v (best %s)", k, got, round2(v), ra.Best[k])
		}
	}
	if ra.Best["ok_per_s"] != "mariadb" || ra.Best["members_us_per_op"] != "mariadb" {
		t.Errorf("best peers: %v", ra.Best)
	}
}

// TestAllocCheckCatches feeds the consistency check broken outcomes.
func TestAllocCheckCatches(t *testing.T) {
	for _, c := range []struct {
		name       string
		sum, users int64
		over       []string
		ok, failed int64
		wantErr    bool
	}{
		{"consistent", 10, 10, nil, 10, 0, false},
		{"a failed op that committed", 11, 11, nil, 10, 1, false},
		{"count lost", 9, 10, nil, 10, 0, true},
		{"over capacity", 10, 10, []string{"node-01"}, 10, 0, true},
		{"acknowledged user missing", 9, 9, nil, 10, 0, true},
		{"user nobody asked for", 11, 11, nil, 10, 0, true},
	} {
		_, err := allocCheck(c.sum, c.users, c.over, c.ok, c.failed)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}

// TestProcessCPU reads this process's CPU time from /proc and checks it
// grows with work done (measured by getrusage, no sleep).
func TestProcessCPU(t *testing.T) {
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start := sampleCPU(nil).client
	x := 0
	for sampleCPU(nil).client-start < 100*time.Millisecond {
		for i := range 100000 {
			x += i
		}
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts in 10 ms ticks.
	if after-before < 50*time.Millisecond {
		t.Errorf("process CPU grew by %v after 100 ms of work (x=%d)", after-before, x)
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// TestPercentile checks the nearest rank.
func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentileMs(lat, 50), percentileMs(lat, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v, want 50 and 99", p50, p99)
	}
	if percentileMs(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
