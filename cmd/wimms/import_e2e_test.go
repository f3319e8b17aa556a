package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/cmd/internal/mysqlimport/mariadbtest"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestImportExportCommands runs `wimms import` and `wimms export` against a
// real MariaDB and a real member: JSON and plain summaries, progress lines
// when stderr is not a terminal, re-run idempotence, the export refusing
// non-empty tables.
func TestImportExportCommands(t *testing.T) {
	t.Cleanup(mariadbtest.Stop)
	db, dsn := mariadbtest.NewDatabase(t, "cli_src", true)
	_, outDSN := mariadbtest.NewDatabase(t, "cli_out", true)
	stmts := []string{
		"INSERT INTO services (id, service, pattern) VALUES (1, 'sync-1.5', '{node}/1.5/{uid}')",
		"INSERT INTO nodes (id, service, node, available, current_load, capacity, downed, backoff) VALUES (4, 1, 'https://n4', 5, 9, 100, 0, 1)",
	}
	var rows []string
	for i := 1; i <= 300; i++ {
		rows = append(rows, fmt.Sprintf("(%d, 1, 'u%d@x', 3, 'aa', %d, NULL, 4, 1000)", i, i, 1_600_000_000_000+int64(i)))
	}
	// Two live records for u1: the older is replaced by the import.
	rows = append(rows, "(301, 1, 'u1@x', 4, 'bb', 1600000000301, NULL, 4, 1000)")
	stmts = append(stmts, "INSERT INTO users (uid, service, email, generation, client_state, created_at, replaced_at, nodeid, keys_changed_at) VALUES "+strings.Join(rows, ","))
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	m := newMember(t, "a", "z1")
	m.Flags = append(m.Flags, "--admin-token", "adm")
	m.start()
	m.waitReady(30 * time.Second)

	run := func(args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := testutil.RunSplit(t, testutil.Wimms(t, args...))
		if code != 0 {
			t.Fatalf("wimms %v: exit status %d\n%s\n%s", args, code, stdout, stderr)
		}
		return stdout, stderr
	}
	out, errOut := run("import", "--mysql", dsn, "--addr", m.HTTPAddr, "--admin-token", "adm", "--json", "--progress-interval", "1ns")
	var sum struct {
		RowsRead      int64            `json:"rows_read"`
		Imported      int64            `json:"imported"`
		Updated       int64            `json:"updated"`
		Unchanged     int64            `json:"unchanged"`
		AnomalyCounts map[string]int64 `json:"anomaly_counts"`
		LoadDrift     []struct {
			NodeID int64 `json:"node_id"`
			Drift  int64 `json:"drift"`
		} `json:"load_drift"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	if sum.RowsRead != 303 || sum.Imported != 303 || sum.AnomalyCounts["two-live-records"] != 1 ||
		len(sum.LoadDrift) != 1 || sum.LoadDrift[0].Drift != 9-301 {
		t.Fatalf("summary %+v", sum)
	}
	if !strings.Contains(errOut, "import: 301/301 user rows") {
		t.Fatalf("no progress lines on a non-terminal stderr: %q", errOut)
	}
	a := expect(t, call(t, http.MethodGet, m.url("/v1/services/sync-1.5/users/u1@x/records"), nil), 200, "records")
	if !strings.Contains(a.raw, `"uid":1,`) || !strings.Contains(a.raw, `"replaced_at":1600000000301`) {
		t.Fatalf("u1 records: %s", a.raw)
	}
	out, _ = run("import", "--mysql", dsn, "--addr", m.HTTPAddr, "--admin-token", "adm")
	if !strings.Contains(out, "imported 0, updated 0, unchanged 303") {
		t.Fatalf("re-run: %s", out)
	}
	out, _ = run("export", "--mysql", outDSN, "--addr", m.HTTPAddr, "--admin-token", "adm")
	if !strings.Contains(out, "301 user rows") {
		t.Fatalf("export: %s", out)
	}
	if out, code := testutil.RunWimms(t, "export", "--mysql", outDSN, "--addr", m.HTTPAddr, "--admin-token", "adm"); code == 0 || !strings.Contains(out, "not empty") {
		t.Fatalf("second export: exit status %d %s", code, out)
	}
}
