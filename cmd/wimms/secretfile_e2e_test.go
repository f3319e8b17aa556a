package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// secretFile writes data to a new file of mode perm.
func secretFile(t *testing.T, name, data string, perm os.FileMode) string {
	t.Helper()
	p := testutil.TempFile(t, name, []byte(data))
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServerRefusesUnsafeSecretFiles: a token or key file others may read,
// or one holding more than one token, stops the server with one line
// before it listens.
func TestServerRefusesUnsafeSecretFiles(t *testing.T) {
	key, err := tlsconf.NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"world-readable API token", []string{"--api-token-file", secretFile(t, "api", "tok\n", 0o644)}, "is readable or writable by group or others (mode 0644)"},
		{"group-readable admin token", []string{"--admin-token-file", secretFile(t, "admin", "tok\n", 0o640)}, "chmod 600"},
		{"group-readable gossip key", []string{"--gossip-key-file", secretFile(t, "gossip", key+"\n", 0o640)}, "--gossip-key-file"},
		{"world-readable metrics token", []string{"--metrics-token-file", secretFile(t, "metrics", "tok\n", 0o604)}, "--metrics-token-file"},
		{"two-line API token", []string{"--api-token-file", secretFile(t, "api2", "first\nsecond\n", 0o600)}, "want exactly one token"},
		{"two tokens on one line", []string{"--admin-token-file", secretFile(t, "admin2", "first second\n", 0o600)}, "want exactly one token"},
		{"two-line gossip key", []string{"--gossip-key-file", secretFile(t, "gossip2", key+"\n"+key+"\n", 0o600)}, "want exactly one token"},
		{"empty metrics token", []string{"--metrics-token-file", secretFile(t, "metrics2", "\n\n", 0o600)}, "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := startRefused(t, tc.args...)
			want := tc.want
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], want) {
				t.Fatalf("exit %d, stderr %q; want one line with %q", code, stderr, want)
			}
		})
	}
}

// TestReadableSecretFilesAllowedWithFlag: --allow-readable-secret-files
// (for containers reading a mount they cannot own) accepts such a file and
// says so in the log.
func TestReadableSecretFilesAllowedWithFlag(t *testing.T) {
	m := newMember(t, "readable", "z")
	m.Flags = append(m.Flags, "--api-token-file", secretFile(t, "api", "api-secret\n", 0o644), "--allow-readable-secret-files")
	m.start()
	m.waitReady(20 * time.Second)
	expect(t, call(t, "GET", m.url("/v1/cluster"), nil, "Authorization", "Bearer api-secret"), 200, "token from a readable file")
	if !logContains(t, m, "accepted because of --allow-readable-secret-files") {
		t.Fatal("no warning about the readable token file")
	}
}

func TestGossipKeyOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gossip.key")
	testutil.WimmsOK(t, "tls", "gossip-key", "--out", out)
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key written with mode %04o, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconf.DecodeGossipKey(strings.TrimSpace(string(b))); err != nil {
		t.Fatalf("written key does not decode: %v", err)
	}
	// An existing key is never replaced.
	if o, code := testutil.RunWimms(t, "tls", "gossip-key", "--out", out); code == 0 || !strings.Contains(o, "exists") {
		t.Fatalf("overwriting: exit %d: %s", code, o)
	}
	if again, _ := os.ReadFile(out); string(again) != string(b) {
		t.Fatal("the existing key changed")
	}
	// The key it wrote is accepted by a server as is.
	m := newMember(t, "keyed", "z")
	m.Flags = append(m.Flags, "--gossip-key-file", out)
	m.start()
	m.waitReady(20 * time.Second)
}

// TestMetricsTokenFile: /metrics needs the metrics token (or the admin
// token) once --metrics-token-file is set, also from the environment.
func TestMetricsTokenFile(t *testing.T) {
	m := newMember(t, "metrics", "z")
	mt := secretFile(t, "metrics", "scrape-secret\n", 0o600)
	m.Flags = append(m.Flags, "--api-token", "api-secret", "--admin-token", "admin-secret")
	m.Environ = []string{"WIMMS_METRICS_TOKEN_FILE=" + mt}
	m.start()
	m.waitReady(20 * time.Second)
	expect(t, call(t, "GET", m.url("/metrics"), nil), 401, "no token")
	expect(t, call(t, "GET", m.url("/metrics"), nil, "Authorization", "Bearer api-secret"), 401, "API token")
	if a := expect(t, call(t, "GET", m.url("/metrics"), nil, "Authorization", "Bearer scrape-secret"), 200, "metrics token"); !strings.Contains(a.raw, "wimms_tls_handshake_failures_total") && !strings.Contains(a.raw, "wimms_http_requests_total") {
		t.Fatalf("metrics answer lacks wimms metrics: %.300s", a.raw)
	}
	expect(t, call(t, "GET", m.url("/metrics"), nil, "Authorization", "Bearer admin-secret"), 200, "admin token")
	m.stop(syscall.SIGTERM, 20*time.Second)

	// Without the file /metrics stays open, as before.
	m.Environ = nil
	m.start()
	m.waitReady(20 * time.Second)
	expect(t, call(t, "GET", m.url("/metrics"), nil), 200, "open metrics")
}
