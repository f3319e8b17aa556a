package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mariadbPeer is one mariadbd (Debian's) on loopback with InnoDB durable
// as shipped (the redo log flushed at every commit), no binary log and no
// replica: the comparison's single-server baseline.
type mariadbPeer struct {
	bin     string
	members []*member
	db      *sql.DB
	clients int
}

// lookBin finds a Debian MariaDB program in PATH or the usual sbin/bin
// directories (root's PATH has /usr/sbin, a user's often not).
func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// findMariadbd returns the server binary, or why there is none.
func findMariadbd(flagPath string) (string, error) {
	if flagPath != "" {
		if !fileExists(flagPath) {
			return "", fmt.Errorf("-mariadbd %s: no such file", flagPath)
		}
		return flagPath, nil
	}
	if p := lookBin("mariadbd"); p != "" {
		return p, nil
	}
	return "", errors.New("mariadbd not installed (Debian package mariadb-server)")
}

// installDB creates the system tables with Debian's mariadb-install-db,
// found next to mariadbd or in PATH.
func (m *mariadbPeer) installDB(ctx context.Context, data string) error {
	tool := filepath.Join(filepath.Dir(filepath.Dir(m.bin)), "bin", "mariadb-install-db")
	if !fileExists(tool) {
		if tool = lookBin("mariadb-install-db"); tool == "" {
			return errors.New("mariadb-install-db not found")
		}
	}
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, lastBytes(out, 1500))
	}
	return nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

func (m *mariadbPeer) start(ctx context.Context, dir string) error {
	data := filepath.Join(dir, "data")
	if err := m.installDB(ctx, data); err != nil {
		return err
	}
	port, err := freePorts(1)
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "sock")
	args := []string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--pid-file=" + filepath.Join(dir, "pid"), "--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port),
		"--skip-name-resolve", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=1",
		"--innodb-buffer-pool-size=256M", "--max-connections=" + strconv.Itoa(m.clients+20)}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	mem, err := startMember(filepath.Join(dir, "mariadbd.log"), m.bin, args...)
	if err != nil {
		return err
	}
	m.members = []*member{mem}
	if err := m.schema(ctx, sock); err != nil {
		m.stop()
		return err
	}
	// The clients talk TCP over loopback like the other systems' clients;
	// interpolateParams: one round trip per statement, no server-side
	// prepare and close around it.
	m.db, err = sql.Open("mysql", fmt.Sprintf("bench@tcp(127.0.0.1:%d)/?interpolateParams=true", port))
	if err != nil {
		m.stop()
		return fmt.Errorf("open mariadb client: %w", err)
	}
	m.db.SetMaxOpenConns(m.clients + 8)
	m.db.SetMaxIdleConns(m.clients + 8)
	if err := m.db.PingContext(ctx); err != nil {
		m.stop()
		return fmt.Errorf("mariadb over TCP: %w", err)
	}
	return nil
}

// schema waits for the server on its Unix socket, where root (no
// password, mariadb-install-db's "normal" authentication) may log in, and
// creates the tables and the bench user the clients log in as over TCP.
func (m *mariadbPeer) schema(ctx context.Context, sock string) error {
	admin, err := sql.Open("mysql", "root@unix("+sock+")/")
	if err != nil {
		return fmt.Errorf("open mariadb admin client: %w", err)
	}
	defer admin.Close()
	if err := waitUntil(60*time.Second, m.members, func() error { return admin.PingContext(ctx) }); err != nil {
		return fmt.Errorf("mariadbd: %w", err)
	}
	for _, q := range []string{
		"CREATE DATABASE bench",
		"CREATE TABLE bench.nodes (service VARCHAR(64) NOT NULL, id INT NOT NULL, name VARCHAR(64) NOT NULL, " +
			"assigned BIGINT NOT NULL, capacity BIGINT NOT NULL, PRIMARY KEY (service, id)) ENGINE=InnoDB",
		"CREATE TABLE bench.users (service VARCHAR(64) NOT NULL, email VARCHAR(255) NOT NULL, node_id INT NOT NULL, " +
			"PRIMARY KEY (service, email)) ENGINE=InnoDB",
		"CREATE USER 'bench'@'127.0.0.1'",
		"GRANT ALL ON bench.* TO 'bench'@'127.0.0.1'",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mariadb schema (%.40s): %w", q, err)
		}
	}
	return nil
}

func (m *mariadbPeer) pids() []int { return pidsOf(m.members) }

func (m *mariadbPeer) stop() {
	if m.db != nil {
		_ = m.db.Close()
	}
	stopAll(m.members)
}

const mariadbService = "bench-1.0"

func (m *mariadbPeer) setupAlloc(ctx context.Context, nodes int, capacity int64) error {
	for i := range nodes {
		if _, err := m.db.ExecContext(ctx, "INSERT INTO bench.nodes VALUES (?, ?, ?, 0, ?)", mariadbService, i, nodeName(i), capacity); err != nil {
			return fmt.Errorf("insert node: %w", err)
		}
	}
	return nil
}

// retryable are InnoDB's deadlock (1213) and lock wait timeout (1205):
// the transaction was rolled back and may simply be run again.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// alloc locks the service's node rows (SELECT ... FOR UPDATE, in primary
// key order), increments the least loaded one with capacity and inserts
// the user, re-running the transaction after a deadlock.
func (m *mariadbPeer) alloc(ctx context.Context, _ int, email string) (int, error) {
	for retries := 0; ; retries++ {
		err := m.allocOnce(ctx, email)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return retries, err
		}
	}
}

func (m *mariadbPeer) allocOnce(ctx context.Context, email string) (err error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, "SELECT id, assigned, capacity FROM bench.nodes WHERE service = ? ORDER BY id FOR UPDATE", mariadbService)
	if err != nil {
		return err
	}
	best, bestCount := -1, int64(0)
	for rows.Next() {
		var id int
		var n, capacity int64
		if err := rows.Scan(&id, &n, &capacity); err != nil {
			rows.Close()
			return err
		}
		if n < capacity && (best < 0 || n < bestCount) {
			best, bestCount = id, n
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if best < 0 {
		return errNoCapacity
	}
	if _, err := tx.ExecContext(ctx, "UPDATE bench.nodes SET assigned = assigned + 1 WHERE service = ? AND id = ?", mariadbService, best); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO bench.users VALUES (?, ?, ?)", mariadbService, email, best); err != nil {
		return err
	}
	return tx.Commit()
}

func (m *mariadbPeer) checkAlloc(ctx context.Context, ok, failed int64) (string, error) {
	var sum, users, over int64
	err := m.db.QueryRowContext(ctx, "SELECT COALESCE(SUM(assigned), 0), COALESCE(SUM(assigned > capacity), 0) FROM bench.nodes WHERE service = ?",
		mariadbService).Scan(&sum, &over)
	if err == nil {
		err = m.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM bench.users WHERE service = ? AND email LIKE 'new-%'", mariadbService).Scan(&users)
	}
	if err != nil {
		return "", fmt.Errorf("read counts: %w", err)
	}
	var overNodes []string
	for range over {
		overNodes = append(overNodes, "?")
	}
	return allocCheck(sum, users, overNodes, ok, failed)
}

func (m *mariadbPeer) setupLookup(ctx context.Context, users int) error {
	const batch = 1000
	for from := 0; from < users; from += batch {
		var q strings.Builder
		q.WriteString("INSERT INTO bench.users VALUES ")
		args := []any{}
		for i := from; i < min(from+batch, users); i++ {
			if i > from {
				q.WriteString(",")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, mariadbService, lookupEmail(i), i%10)
		}
		if _, err := m.db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("prepare users: %w", err)
		}
	}
	return nil
}

// lookup is a plain primary-key SELECT on the one server.
func (m *mariadbPeer) lookup(ctx context.Context, _ int, user int) error {
	var node int
	return m.db.QueryRowContext(ctx, "SELECT node_id FROM bench.users WHERE service = ? AND email = ?", mariadbService, lookupEmail(user)).Scan(&node)
}
