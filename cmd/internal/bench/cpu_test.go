package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks: 3 s. The command name holds ") " to
	// show fields are counted from the last parenthesis.
	line := "4242 (wim) ms) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500 18446744073709551615"
	got, err := parseProcStatCPU(line)
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseProcStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{
		"",
		"4242 wimms S 1 2 3",
		"4242 (wimms) S 1 4242",
		"4242 (wimms) S 1 4242 4242 0 -1 4194560 1234 0 0 0 x 50 0",
		"4242 (wimms) S 1 4242 4242 0 -1 4194560 1234 0 0 0 -5 50 0",
	} {
		if d, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q) = %v, want an error", bad, d)
		}
	}
}

func TestProcessCPUOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	// Burn CPU until the kernel has counted at least two ticks for us.
	deadline := time.Now().Add(10 * time.Second)
	for selfCPU() < 50*time.Millisecond && time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
	}
	got, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got < 20*time.Millisecond {
		t.Fatalf("processCPU(self) = %v after burning %v of CPU", got, selfCPU())
	}
	if _, err := processCPU(-1); err == nil {
		t.Fatal("processCPU(-1) gave no error")
	}
}

func TestCPUCost(t *testing.T) {
	from := cpuSample{client: 1 * time.Second, members: 10 * time.Second, membersKnown: true}
	to := cpuSample{client: 1500 * time.Millisecond, members: 12 * time.Second, membersKnown: true}
	c := cpuCost(from, to, 1000, 2*time.Second)
	want := CPUCost{MembersMicrosPerOp: 2000, MembersCores: 1, ClientMicrosPerOp: 500, ClientCores: 0.25}
	if c == nil || *c != want {
		t.Fatalf("cpuCost = %+v, want %+v", c, want)
	}
	to.membersKnown = false
	if c := cpuCost(from, to, 1000, 2*time.Second); c == nil || c.MembersMicrosPerOp != 0 || c.ClientMicrosPerOp != 500 {
		t.Fatalf("members unknown: cpuCost = %+v, want client only", c)
	}
	if c := cpuCost(from, to, 0, time.Second); c != nil {
		t.Fatalf("no operations: cpuCost = %+v, want nil", c)
	}
}
