package mysqlimport

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

// TestMeasure1M measures import throughput and backup/restore times for
// about one million user rows (docs/benchmarks.md). It asserts only
// correctness of counts, never a time; opt in with WIMMS_MEASURE_1M=1.
func TestMeasure1M(t *testing.T) {
	if os.Getenv("WIMMS_MEASURE_1M") == "" {
		t.Skip("measurement only: set WIMMS_MEASURE_1M=1")
	}
	d := genTokenDB(620_000, true)
	db := newDatabase(t, "tokenserver_1m", true)
	start := time.Now()
	d.insert(t, db, 0)
	t.Logf("MariaDB: inserted %d user rows in %s", len(d.src), time.Since(start).Round(time.Millisecond))
	c := startMember(t, t.TempDir(), "m1", testutil.FreeAddr(t, "127.0.0.1"))
	ctx := context.Background()
	sum, err := Import(ctx, db, ClientSink{C: c.client}, Options{BatchSize: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import: %d rows in %.1fs = %.0f rows/s (%d batches)", sum.RowsRead, sum.Seconds, sum.RowsPerSecond, sum.Batches)
	again, err := Import(ctx, db, ClientSink{C: c.client}, Options{BatchSize: 5000})
	if err != nil || again.Imported+again.Updated != 0 {
		t.Fatalf("re-run: %+v %v", again, err)
	}
	t.Logf("re-run (nothing changed): %.1fs = %.0f rows/s", again.Seconds, again.RowsPerSecond)

	var buf bytes.Buffer
	start = time.Now()
	if _, _, err := c.client.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d bytes in %s", buf.Len(), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	dir := filepath.Join(t.TempDir(), "restored")
	info, err := store.PrepareRestore(bytes.NewReader(buf.Bytes()), dir, "r1", testutil.FreeAddr(t, "127.0.0.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore (verify + write data dir) of index %d: %s", info.Index, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	r := startMember(t, dir, "r1", testutil.FreeAddr(t, "127.0.0.1"))
	_ = r
	t.Logf("restored member started and leading: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	out := newDatabase(t, "tokenserver_1m_export", true)
	esum, err := Export(ctx, out, c.backupState(t).View())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %d user rows in %s (including a backup stream)", esum.Users, time.Since(start).Round(time.Millisecond))
}
