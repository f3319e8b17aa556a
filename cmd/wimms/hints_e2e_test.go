package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// toolAnswer runs a wimms tool that must fail at once with a message
// naming what to do: the tools are given --wait 10m, so a tool that polls
// instead of stopping on an answer waiting cannot change runs into the
// context's deadline and the test says so.
func toolAnswer(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stderr, code = testutil.RunSplit(t, testutil.WimmsContext(ctx, t, args...))
	if ctx.Err() != nil {
		t.Fatalf("wimms %s kept waiting on an answer that cannot change: %s", strings.Join(args, " "), stderr)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines > 0 {
		t.Errorf("wimms %s: want one line on stderr, got %d:\n%s", strings.Join(args, " "), lines+1, stderr)
	}
	return stderr, code
}

func TestToolErrorsSayWhatToDo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts members")
	}
	e := newSecureEnv(t)
	secure := e.member("h1", "zone-a")
	secure.start()
	e.waitReady(secure)

	const api, admin = "api-secret", "admin-secret"
	plain := newMember(t, "p1", "zone-a")
	plain.Flags = append(plain.Flags, "--api-token", api, "--admin-token", admin)
	plain.start()
	plain.waitReady(60 * time.Second)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"plain HTTP to an HTTPS member", []string{"status", "--addr", secure.HTTPAddr, "--wait", "10m"},
			"this member speaks HTTPS: add --tls-ca FILE"},
		{"HTTPS to a plain member", []string{"status", "--addr", "https://" + plain.HTTPAddr, "--tls-ca", e.caFile, "--wait", "10m"},
			"this member speaks plain HTTP"},
		{"no token", []string{"status", "--addr", plain.HTTPAddr, "--wait", "10m"},
			"--api-token-file FILE"},
		{"API token on an admin call", []string{"service", "put", "sync-1.5", "--pattern", "{node}/{uid}", "--addr", plain.HTTPAddr, "--api-token", api},
			"this call needs the admin token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := toolAnswer(t, c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want a failure; stderr %q", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr %q does not say %q", stderr, c.want)
			}
		})
	}

	// With the right CA and token, the same waits end healthy.
	out := testutil.WimmsOK(t, "status", "--addr", plain.HTTPAddr, "--api-token", api, "--wait", "60s", "--members", "1")
	if !strings.Contains(out, "p1") {
		t.Fatalf("status does not list p1:\n%s", out)
	}
}

// TestJoinToTheRaftPortSaysWhich: a --join aimed at a member's Raft port
// is logged as one line that names the flag's meaning, not a bare EOF in
// a multi-line block.
func TestJoinToTheRaftPortSaysWhich(t *testing.T) {
	if testing.Short() {
		t.Skip("starts members")
	}
	a := newMember(t, "j1", "zone-a")
	a.start()
	a.waitReady(60 * time.Second)
	b := newMember(t, "j2", "zone-b")
	b.SetJoin([]string{a.RaftAddr})
	b.start()
	const hint = "--join takes a member's HTTP address (its --http-addr), not its Raft or gossip port"
	eventually(t, 60*time.Second, "j2 logs why its join fails", func() error {
		if !strings.Contains(b.log(t), hint) {
			return errors.New("not yet")
		}
		return nil
	})
	for _, line := range strings.Split(b.log(t), "\n") {
		if strings.Contains(line, "join failed") && !strings.Contains(line, hint) {
			t.Errorf("a join failure that does not say what to do: %s", line)
		}
	}
	if strings.Contains(b.log(t), "\t* ") {
		t.Errorf("join errors logged as a multi-line block:\n%s", b.log(t))
	}
}
