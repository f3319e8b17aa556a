package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// `wimms tls token` makes a token file that a member and the tools take
// as it is: one line, 0600, never an existing file replaced.
func TestTLSTokenMakesAUsableTokenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	file := filepath.Join(t.TempDir(), "api.token")
	testutil.WimmsOK(t, "tls", "token", "--out", file)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	if tok := strings.TrimSpace(string(b)); len(tok) < 40 || strings.Contains(tok, "\n") {
		t.Fatalf("token file holds %q, want one random line", b)
	}
	if out, code := testutil.RunWimms(t, "tls", "token", "--out", file); code == 0 || !strings.Contains(out, "exists") {
		t.Fatalf("a second token over the first: exit %d, %s", code, out)
	}
	if again, _ := os.ReadFile(file); string(again) != string(b) {
		t.Fatal("the refused run changed the token file")
	}

	m := newMember(t, "tok1", "zone-a")
	m.Flags = append(m.Flags, "--api-token-file", file)
	m.start()
	m.waitReady(60 * time.Second)
	if out := testutil.WimmsOK(t, "status", "--addr", m.HTTPAddr, "--api-token-file", file); !strings.Contains(out, "tok1") {
		t.Fatalf("status with the token file:\n%s", out)
	}
	if _, code := testutil.RunWimms(t, "status", "--addr", m.HTTPAddr); code == 0 {
		t.Fatal("status without the token succeeded: the member did not take the token file")
	}
}
