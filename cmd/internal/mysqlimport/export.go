package mysqlimport

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/fsm"
)

// ExportSummary is what Export wrote.
type ExportSummary struct {
	Schema   string `json:"schema"`
	Services int64  `json:"services"`
	Nodes    int64  `json:"nodes"`
	Users    int64  `json:"user_rows"`
	// DroppedKeysChangedAt counts records whose keys_changed_at could not
	// be written because the target has no such column.
	DroppedKeysChangedAt int64   `json:"dropped_keys_changed_at"`
	Seconds              float64 `json:"seconds"`
}

// exportRowsPerInsert bounds one multi-row INSERT (well under
// max_allowed_packet at ~300 bytes a row).
const exportRowsPerInsert = 500

// Export writes the state v holds into the token-server tables of db, in
// one transaction. The three tables must exist and be empty (ErrNotEmpty
// otherwise, and nothing is written): export is for going back, not for
// merging. Ids, uids and times are written as wimms holds them; nodes'
// current_load is the recomputed one.
func Export(ctx context.Context, db *sql.DB, v *fsm.View) (*ExportSummary, error) {
	start := time.Now()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql: connecting: %w", err)
	}
	defer conn.Close()
	sum := &ExportSummary{Schema: "without keys_changed_at"}
	hasKCA, err := hasColumn(ctx, conn, "users", "keys_changed_at")
	if err != nil {
		return nil, err
	}
	if hasKCA {
		sum.Schema = "with keys_changed_at"
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("mysql: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := checkEmptyTables(ctx, tx); err != nil {
		return nil, err
	}
	// Records of removed nodes name node ids that have no row; the Rust
	// token server's schema dropped its foreign keys for the same reason.
	if _, err := tx.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return nil, fmt.Errorf("mysql: disabling foreign key checks: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.Background(), "SET SESSION foreign_key_checks = 1") }()

	svcID, err := exportServicesAndNodes(ctx, tx, v, sum)
	if err != nil {
		return nil, err
	}
	if err := exportRecords(ctx, tx, v, svcID, hasKCA, sum); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("mysql: commit: %w", err)
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// checkEmptyTables refuses to export into tables that hold rows: export
// is for going back, not for merging.
func checkEmptyTables(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{"services", "nodes", "users"} {
		var n int64
		// FOR UPDATE locks the (empty) range so that nobody inserts
		// concurrently with the export.
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" FOR UPDATE").Scan(&n); err != nil {
			return fmt.Errorf("mysql: checking table %s: %w", table, err)
		}
		if n > 0 {
			return fmt.Errorf("mysql: table %s holds %d rows: %w (export writes into empty tables only)", table, n, ErrNotEmpty)
		}
	}
	return nil
}

// exportServicesAndNodes writes every service and its nodes, counting them
// in sum, and returns the service ids by name for the users rows.
func exportServicesAndNodes(ctx context.Context, tx *sql.Tx, v *fsm.View, sum *ExportSummary) (map[string]int64, error) {
	svcID := map[string]int64{}
	for _, sv := range v.ListServices() {
		svcID[sv.Name] = sv.ID
		if _, err := tx.ExecContext(ctx, "INSERT INTO services (id, service, pattern) VALUES (?, ?, ?)", sv.ID, sv.Name, sv.Pattern); err != nil {
			return nil, fmt.Errorf("mysql: writing service %q: %w", sv.Name, err)
		}
		sum.Services++
		nodes, err := v.ListNodes(sv.Name)
		if err != nil {
			return nil, fmt.Errorf("listing nodes of %q: %w", sv.Name, err)
		}
		for _, n := range nodes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, service, node, available, current_load, capacity, downed, backoff)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, n.ID, sv.ID, n.URL, n.Available, n.CurrentLoad, n.Capacity, boolInt(n.Downed), boolInt(n.Backoff)); err != nil {
				return nil, fmt.Errorf("mysql: writing node %q: %w", n.URL, err)
			}
			sum.Nodes++
		}
	}
	return svcID, nil
}

// exportRecords writes every record as a users row, exportRowsPerInsert
// rows to an INSERT, counting them in sum. Without a keys_changed_at
// column a record's value is dropped and counted as such.
func exportRecords(ctx context.Context, tx *sql.Tx, v *fsm.View, svcID map[string]int64, hasKCA bool, sum *ExportSummary) error {
	cols := "uid, service, email, generation, client_state, created_at, replaced_at, nodeid"
	perRow := 8
	if hasKCA {
		cols += ", keys_changed_at"
		perRow = 9
	}
	placeholder := "(" + strings.TrimSuffix(strings.Repeat("?, ", perRow), ", ") + ")"
	args := make([]any, 0, exportRowsPerInsert*perRow)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		q := "INSERT INTO users (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(placeholder+", ", rows), ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("mysql: writing users: %w", err)
		}
		args, rows = args[:0], 0
		return nil
	}
	var werr error
	v.EachRecord(func(r fsm.Record) bool {
		args = append(args, r.UID, svcID[r.Service], r.Email, r.Generation, r.ClientState, r.CreatedAt, nullInt(r.ReplacedAt), r.NodeID)
		if hasKCA {
			args = append(args, nullInt(r.KeysChangedAt))
		} else if r.KeysChangedAt != fsm.Null {
			sum.DroppedKeysChangedAt++
		}
		rows++
		sum.Users++
		if rows == exportRowsPerInsert {
			werr = flush()
		}
		return werr == nil
	})
	if werr == nil {
		werr = flush()
	}
	return werr
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullInt(v int64) any {
	if v == fsm.Null {
		return nil
	}
	return v
}
