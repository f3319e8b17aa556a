package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wimms-dev/wimms/cmd/internal/mysqlimport"
	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/store"
)

// Data lifecycle tools (docs/operations.md): import from and export to a
// token-server MySQL database, online backup, restore into a new data dir.

// adminClient is the admin-token client these tools use: the connection
// flags of every client command (clientflags.go).
func (f *clientFlags) adminClient() (*client.Client, error) {
	c, err := f.connect()
	if err != nil {
		return nil, err
	}
	return c.admin, nil
}

// lifecycleTimeout is the default --timeout of the tools here: a call that
// streams or imports a whole state takes longer than an admin command's.
const lifecycleTimeout = 2 * time.Minute

// openMySQL opens a DSN as go-sql-driver/mysql takes it
// (user:pass@tcp(host:3306)/db or user@unix(/path/sock)/db); the password
// may come from WIMMS_MYSQL_PASSWORD instead of the DSN.
func openMySQL(dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, fmt.Errorf("--mysql DSN is required (e.g. user@tcp(db:3306)/tokenserver)")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("--mysql: %w", err)
	}
	if pw, ok := os.LookupEnv("WIMMS_MYSQL_PASSWORD"); ok && cfg.Passwd == "" {
		cfg.Passwd = pw
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("--mysql: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress shows rows/s and ETA as a bar on a terminal, plain lines every
// few seconds otherwise (logs, CI).
type progress struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	out      io.Writer
	last     time.Time
	start    time.Time
	interval time.Duration
}

func newProgress(out *os.File, interval time.Duration) *progress {
	p := &progress{out: out, start: time.Now(), last: time.Now(), interval: interval}
	if term.IsTerminal(int(out.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(out), progressbar.OptionSetDescription("importing users"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		if p.bar.GetMax64() != total {
			p.bar.ChangeMax64(total)
		}
		_ = p.bar.Set64(done)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.interval || done == total {
		p.last = now
		rate := float64(done) / now.Sub(p.start).Seconds()
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(p.out, "import: %d/%d user rows, %.0f rows/s, eta %s\n", done, total, rate, eta)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func newImportCmd() *cobra.Command {
	cf := clientFlags{timeout: lifecycleTimeout}
	var dsn string
	var asJSON bool
	var batch int
	var interval time.Duration
	cmd := cf.toolCmd(&cobra.Command{
		Use:   "import",
		Short: "import a token-server MySQL database (services, nodes, users) into a running cluster; safe to re-run",
		Long: `Read the token server's tables from one consistent snapshot of the
database and write them into the cluster through Raft, keeping every id,
uid and time. Rows wimms cannot hold as they are are repaired by the rules
of docs/operations.md and reported with their uids. Run it again to catch
up: new rows are added, changed ones updated by uid, nothing else changes.

The MySQL password may be given in WIMMS_MYSQL_PASSWORD instead of the DSN.`,
	}, func(cmd *cobra.Command) error {
		c, err := cf.adminClient()
		if err != nil {
			return err
		}
		db, err := openMySQL(dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		prog := newProgress(os.Stderr, interval)
		sum, err := mysqlimport.Import(cmd.Context(), db, mysqlimport.ClientSink{C: c},
			mysqlimport.Options{BatchSize: batch, Progress: prog.update})
		prog.finish()
		if err != nil {
			if sum != nil && sum.Batches > 0 {
				return fmt.Errorf("import stopped after %d batches (%d rows read); re-run to continue: %w", sum.Batches, sum.RowsRead, err)
			}
			return fmt.Errorf("import: %w", err)
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), sum)
		}
		printImportSummary(cmd.OutOrStdout(), sum)
		return nil
	})
	cmd.Flags().StringVar(&dsn, "mysql", "", "token-server database DSN, e.g. user@tcp(db:3306)/tokenserver")
	cmd.Flags().IntVar(&batch, "batch-size", 2000, "records per Raft entry")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().DurationVar(&interval, "progress-interval", 5*time.Second, "how often to print a progress line when stderr is not a terminal")
	return cmd
}

func printImportSummary(w io.Writer, s *mysqlimport.Summary) {
	fmt.Fprintf(w, "schema: %s; services: %s\n", s.Schema, strings.Join(s.ServicesImported, ", "))
	fmt.Fprintf(w, "rows read %d, imported %d, updated %d, unchanged %d, skipped %d, in %d batches, %.1fs (%.0f rows/s)\n",
		s.RowsRead, s.Imported, s.Updated, s.Unchanged, s.Skipped, s.Batches, s.Seconds, s.RowsPerSecond)
	total := int64(0)
	for _, n := range s.AnomalyCounts {
		total += n
	}
	fmt.Fprintf(w, "anomalies: %d\n", total)
	for kind, n := range s.AnomalyCounts {
		fmt.Fprintf(w, "  %s: %d\n", kind, n)
	}
	for _, a := range s.Anomalies {
		fmt.Fprintf(w, "  uid %d %s %s: %s: %s\n", a.UID, a.Service, a.Email, a.Kind, a.Detail)
	}
	if s.AnomaliesElided > 0 {
		fmt.Fprintf(w, "  (%d more not listed; --json lists the first %d)\n", s.AnomaliesElided, len(s.Anomalies))
	}
	for _, d := range s.LoadDrift {
		fmt.Fprintf(w, "load drift: node %d %s stored current_load %d, records %d (drift %+d; recomputed)\n", d.NodeID, d.Node, d.Stored, d.Records, d.Drift)
	}
}

// readBackupFrom returns a verified backup from a file or, with --addr,
// streamed from a running cluster.
func readBackupFrom(ctx context.Context, in string, cf *clientFlags) (store.BackupInfo, *fsm.FSM, error) {
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return store.BackupInfo{}, nil, err
		}
		defer f.Close()
		return store.ReadBackup(f, fsm.Options{})
	}
	c, err := cf.adminClient()
	if err != nil {
		return store.BackupInfo{}, nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, _, err := c.Backup(ctx, pw)
		pw.CloseWithError(err)
	}()
	info, f, err := store.ReadBackup(pr, fsm.Options{})
	pr.CloseWithError(io.ErrClosedPipe)
	return info, f, err
}

func newExportCmd() *cobra.Command {
	cf := clientFlags{timeout: lifecycleTimeout}
	var dsn, in string
	var asJSON bool
	cmd := cf.toolCmd(&cobra.Command{
		Use:   "export",
		Short: "write the cluster's state (or a backup file's) into empty token-server MySQL tables",
	}, func(cmd *cobra.Command) error {
		db, err := openMySQL(dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		info, f, err := readBackupFrom(cmd.Context(), in, &cf)
		if err != nil {
			return fmt.Errorf("export: reading the state: %w", err)
		}
		sum, err := mysqlimport.Export(cmd.Context(), db, f.View())
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), map[string]any{"index": info.Index, "export": sum})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "exported the state at index %d (%s): %d services, %d nodes, %d user rows in %.1fs\n",
			info.Index, sum.Schema, sum.Services, sum.Nodes, sum.Users, sum.Seconds)
		if sum.DroppedKeysChangedAt > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "warning: %d records' keys_changed_at dropped: the target users table has no such column\n", sum.DroppedKeysChangedAt)
		}
		return nil
	})
	cmd.Flags().StringVar(&dsn, "mysql", "", "target database DSN; its services, nodes and users tables must exist and be empty")
	cmd.Flags().StringVar(&in, "in", "", "export this backup file instead of the running cluster's state")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func newBackupCmd() *cobra.Command {
	cf := clientFlags{timeout: lifecycleTimeout}
	var out string
	var asJSON bool
	cmd := cf.toolCmd(&cobra.Command{
		Use:   "backup",
		Short: "stream a consistent backup of a running cluster to a file (verified before it is kept)",
	}, func(cmd *cobra.Command) error {
		if out == "" {
			return fmt.Errorf("--out FILE is required")
		}
		c, err := cf.adminClient()
		if err != nil {
			return err
		}
		start := time.Now()
		tmp := out + ".partial"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer os.Remove(tmp)
		_, _, err = c.Backup(cmd.Context(), f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fetched := time.Since(start)
		vf, err := os.Open(tmp)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		info, state, err := store.ReadBackup(vf, fsm.Options{})
		vf.Close()
		if err != nil {
			return fmt.Errorf("backup: verifying what was received: %w", err)
		}
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		st, _ := os.Stat(out)
		users := int64(0)
		for _, sv := range state.ListServices() {
			if s, err := state.Stats(sv.Name); err == nil {
				users += s.Records
			}
		}
		res := map[string]any{"file": out, "index": info.Index, "term": info.Term, "taken_at": info.TakenAt,
			"bytes": st.Size(), "records": users, "fetch_seconds": fetched.Seconds(), "total_seconds": time.Since(start).Seconds()}
		if asJSON {
			return writeJSON(cmd.OutOrStdout(), res)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "backup of index %d (%d records, %d bytes) written to %s in %s (verified)\n",
			info.Index, users, st.Size(), out, time.Since(start).Round(time.Millisecond))
		return nil
	})
	cmd.Flags().StringVar(&out, "out", "", "file to write")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var in, dataDir, id, raftAddr string
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "prepare an empty data dir from a backup; `wimms server` on it starts a new cluster holding exactly that state",
		Long: `Verify a backup file and write it into an empty data directory as the
snapshot of a new one-member cluster whose only voter is --id at
--raft-addr. Start 'wimms server' on that directory with the same --id and
--raft-addr (or --raft-advertise) and no --join; it becomes leader holding
exactly the backed-up state. Other members join it as usual.`,
		Args: cobra.NoArgs,
		RunE: envFirst(func(cmd *cobra.Command) error {
			if in == "" {
				return fmt.Errorf("--in FILE is required")
			}
			f, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			defer f.Close()
			start := time.Now()
			info, err := store.PrepareRestore(f, dataDir, id, raftAddr, nil)
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(dataDir)
			fmt.Fprintf(cmd.OutOrStdout(), "restored the state at index %d (taken %s) into %s for member %s at %s in %s\n",
				info.Index, info.TakenAt.Format(time.RFC3339), abs, id, raftAddr, time.Since(start).Round(time.Millisecond))
			return nil
		}),
	}
	cmd.Flags().StringVar(&in, "in", "", "backup file")
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "data directory to prepare (must hold no Raft state)")
	cmd.Flags().StringVar(&id, "id", "wimms-1", "member id the server will run with")
	cmd.Flags().StringVar(&raftAddr, "raft-addr", "127.0.0.1:8081", "Raft address the server will advertise")
	return cmd
}
