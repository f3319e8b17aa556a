package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestBackupRestoreEndToEnd: `wimms backup` of a member that 16 clients
// write to, `wimms restore` into a new data dir, `wimms server` on it
// serves every write acknowledged before the backup began, a third member
// joins it; damaged backups are refused with a clear error.
func TestBackupRestoreEndToEnd(t *testing.T) {
	src := newMember(t, "a", "z1")
	src.Flags = append(src.Flags, "--admin-token", "adm")
	src.start()
	src.waitReady(30 * time.Second)
	admin := []string{"Authorization", "Bearer adm"}
	expect(t, call(t, http.MethodPut, src.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/1.5/{uid}"}, admin...), 201, "create service")
	expect(t, call(t, http.MethodPost, src.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1", "capacity": 1000000, "available": 1000000}, admin...), 201, "add node")

	writers := testutil.StartWriters(16, 5, func(w, i int) (string, int64, bool, bool) {
		email := fmt.Sprintf("w%d-%d@x", w, i)
		a, err := tryCall(http.MethodPost, src.url("/v1/services/sync-1.5/users"), map[string]any{"email": email})
		if err == nil && a.code == 201 {
			return email, a.num("uid"), true, true
		}
		return email, 0, false, true
	})
	writers.WaitWarm()
	before := writers.Acked()
	file := filepath.Join(t.TempDir(), "wimms.backup")
	out, code := testutil.RunWimms(t, "backup", "--addr", src.HTTPAddr, "--admin-token", "adm", "--out", file)
	writers.Stop()
	if code != 0 {
		t.Fatalf("wimms backup: exit status %d\n%s", code, out)
	}
	if !strings.Contains(out, "verified") {
		t.Fatalf("backup output: %s", out)
	}
	if out, code := testutil.RunWimms(t, "backup", "--addr", src.HTTPAddr, "--out", file+".2"); code == 0 {
		t.Fatalf("backup without the admin token succeeded: %s", out)
	}

	// Damaged copies are refused, each with a reason.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[string][]byte{"truncated": data[:len(data)-7], "checksum": append(append([]byte{}, data[:len(data)-1]...), data[len(data)-1]^1)}
	for want, b := range damaged {
		p := testutil.TempFile(t, "bad.backup", b)
		out, code := testutil.RunWimms(t, "restore", "--in", p, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "x", "--raft-addr", "127.0.0.1:1")
		if code == 0 || !strings.Contains(out, "bad backup") || !strings.Contains(out, want) {
			t.Fatalf("restore of a %s backup: exit status %d, output %q", want, code, out)
		}
	}

	dst := newMember(t, "restored", "z1")
	testutil.WimmsOK(t, "restore", "--in", file, "--data-dir", dst.DataDir, "--id", dst.ID, "--raft-addr", dst.RaftAddr)
	if out, code := testutil.RunWimms(t, "restore", "--in", file, "--data-dir", dst.DataDir, "--id", dst.ID, "--raft-addr", dst.RaftAddr); code == 0 {
		t.Fatalf("restore over a prepared data dir succeeded: %s", out)
	}
	// Started with another id, the member exits with one line naming the
	// id and address the data dir was restored for, instead of waiting.
	wrongOut, wrongCode := testutil.RunWimms(t, "server", "--id", "not-"+dst.ID, "--data-dir", dst.DataDir, "--raft-addr", dst.RaftAddr,
		"--http-addr", testutil.FreeAddr(t, "127.0.0.1"))
	if wrongCode == 0 || !strings.Contains(wrongOut, "restored for member "+dst.ID+" at raft address "+dst.RaftAddr) || !strings.Contains(wrongOut, "--id not-"+dst.ID) {
		t.Fatalf("server with the wrong id on a restored dir: exit %d, output %q", wrongCode, wrongOut)
	}
	src.kill9() // the old cluster is gone; the restored one stands alone
	dst.start()
	dst.waitReady(30 * time.Second)
	for email, uid := range before {
		a := call(t, http.MethodGet, dst.url("/v1/services/sync-1.5/users/"+url.PathEscape(email)), nil)
		if a.code != 200 || a.num("uid") != uid {
			t.Fatalf("acknowledged write %s (uid %d) after restore: %d %s", email, uid, a.code, a.raw)
		}
	}
	// Others join the restored member as usual and see the same state.
	joiner := newMember(t, "b", "z2")
	joiner.SetJoin([]string{dst.HTTPAddr})
	joiner.start()
	joiner.waitReady(60 * time.Second)
	for email, uid := range before {
		eventually(t, 30*time.Second, "joined member has "+email, func() error {
			a, err := tryCall(http.MethodGet, joiner.url("/v1/services/sync-1.5/users/"+url.PathEscape(email)+"?consistency=linearizable"), nil)
			if err != nil {
				return err
			}
			if a.code != 200 || a.num("uid") != uid {
				return fmt.Errorf("%d %s", a.code, a.raw)
			}
			return nil
		})
		break
	}
	a := expect(t, call(t, http.MethodPost, dst.url("/v1/services/sync-1.5/users"), map[string]any{"email": "after-restore@x"}), 201, "write after restore")
	maxUID := int64(0)
	for _, uid := range before {
		maxUID = max(maxUID, uid)
	}
	if a.num("uid") <= maxUID {
		t.Fatalf("uid after restore %d not above %d", a.num("uid"), maxUID)
	}
}
