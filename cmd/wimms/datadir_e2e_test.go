package main

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// runFailingServer runs `wimms server` with m's flags (changed by edit)
// and expects it to exit by itself: a server that starts serving instead
// runs into the context's deadline and the test says so.
func runFailingServer(t *testing.T, m *member, edit func(args []string) []string) (out string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := edit(m.Args())
	out, code = testutil.Run(t, testutil.WimmsContext(ctx, t, args...))
	if ctx.Err() != nil {
		t.Fatalf("wimms %s kept running; want a refusal:\n%s", strings.Join(args, " "), out)
	}
	return out, code
}

// replaceFlag sets flag's value in a `wimms server` command line.
func replaceFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out[:len(out)-1] {
		if out[i] == flag {
			out[i+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// TestDataDirsCannotLie: a member that cannot bind its HTTP port leaves no
// bootstrapped data dir behind, and a data dir refuses, in one line, to
// start as a member it was not made for.
func TestDataDirsCannotLie(t *testing.T) {
	if testing.Short() {
		t.Skip("starts members")
	}
	m := newMember(t, "d1", "zone-a")

	busy, err := net.Listen("tcp", m.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	out, code := runFailingServer(t, m, func(a []string) []string { return a })
	_ = busy.Close()
	if code == 0 || !strings.Contains(out, "--http-addr "+m.HTTPAddr) {
		t.Fatalf("busy HTTP port: exit %d, want a failure naming --http-addr:\n%s", code, out)
	}
	if strings.Contains(out, "bootstrapped") {
		t.Fatalf("the failed start bootstrapped its data dir:\n%s", out)
	}

	// The next start is the first one that holds state: it bootstraps now
	// and says where its dashboard is.
	m.start()
	m.waitReady(60 * time.Second)
	log := m.log(t)
	if !strings.Contains(log, "bootstrapped a new one-member cluster") {
		t.Fatalf("the start after the failed one did not bootstrap:\n%s", log)
	}
	if !strings.Contains(log, "dashboard=http://"+m.HTTPAddr+"/ui/") {
		t.Fatalf("the server log does not print the dashboard's address:\n%s", log)
	}
	if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}

	out, code = runFailingServer(t, m, func(a []string) []string { return replaceFlag(a, "--id", "d9") })
	if code != exitUsage || !strings.Contains(out, `has no member "d9"`) || !strings.Contains(out, "d1 at "+m.RaftAddr) {
		t.Fatalf("another --id on d1's data dir: exit %d, want %d naming d9 and d1:\n%s", code, exitUsage, out)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 {
		// The refusal is the last line; any log lines before it are the
		// store's, on stderr too.
		last := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
		if !strings.HasPrefix(last, "wimms: ") {
			t.Fatalf("the refusal is not one closing line:\n%s", out)
		}
	}

	// Its own identity still starts.
	m.start()
	m.waitReady(60 * time.Second)
}
