package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A process that exits on its own is a crash, logged with its command
// line; one stopped by the caller is not.
func TestExitOnItsOwnIsACrash(t *testing.T) {
	sh, err := os.Stat("/bin/sh")
	if err != nil || sh.IsDir() {
		t.Skip("needs /bin/sh")
	}
	dir := t.TempDir()
	m := &Member{ID: "x", Bin: "/bin/sh", HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2", GossipAddr: "127.0.0.1:3",
		DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "x.log"), Zone: "z"}
	m.SetJoin([]string{"127.0.0.1:9"})
	// sh treats "server" as a script that does not exist and fails.
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitExit(m.Exited(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if m.Running() || m.ExitCode() <= 0 || m.ExitErr() == nil {
		t.Fatalf("running %v, exit code %d, exit error %v; want a failed exit", m.Running(), m.ExitCode(), m.ExitErr())
	}
	if c := m.Crashes(); len(c) != 1 {
		t.Fatalf("crashes %q, want one", c)
	}
	log := m.LogTail(4096)
	if !strings.Contains(log, "=== launch") || !strings.Contains(log, "--join 127.0.0.1:9") || !strings.Contains(log, "--zone z") {
		t.Fatalf("log lacks the start line with the command: %q", log)
	}
	if err := m.Stop(time.Second); err != nil {
		t.Fatalf("stopping an exited member: %v", err)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 6 distinct", ports)
		}
		seen[p] = true
	}
}

func TestEnvDropsWimmsVariables(t *testing.T) {
	t.Setenv("WIMMS_JOIN", "elsewhere:1")
	for _, kv := range Env() {
		if strings.HasPrefix(kv, "WIMMS_") {
			t.Fatalf("member environment keeps %s", kv)
		}
	}
}

// An exit with the status the caller allowed is not a crash; any other is.
func TestAllowedExitIsNotACrash(t *testing.T) {
	if sh, err := os.Stat("/bin/sh"); err != nil || sh.IsDir() {
		t.Skip("needs /bin/sh")
	}
	dir := t.TempDir()
	m := &Member{ID: "x", Bin: "/bin/sh", HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2", GossipAddr: "127.0.0.1:3",
		DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "x.log"), Zone: "z"}
	// sh cannot open the script "server" and fails with its own status.
	run := func(allow int) int {
		t.Helper()
		if err := m.StartAllowingExit(allow); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitExit(m.Exited(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return m.ExitCode()
	}
	code := run(0)
	if code <= 0 || len(m.Crashes()) != 1 {
		t.Fatalf("exit %d with nothing allowed: crashes %q, want one", code, m.Crashes())
	}
	if run(code); len(m.Crashes()) != 1 {
		t.Fatalf("exit %d allowed: crashes %q, want still one", code, m.Crashes())
	}
	if run(code + 1); len(m.Crashes()) != 2 {
		t.Fatalf("exit %d with only %d allowed: crashes %q, want two", code, code+1, m.Crashes())
	}
}
