// Package mariadbtest runs a throw-away MariaDB server for tests: its own
// datadir (mariadb-install-db) and a Unix socket in a temporary directory,
// no TCP port. Tests skip with a one-line reason when the server is not
// installed (.ci/run installs mariadb-server).
package mariadbtest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// One MariaDB server per test binary, on a Unix socket in a temporary
// directory with its own datadir (no TCP port), started on first use and
// stopped by TestMain.
var maria struct {
	once   sync.Once
	socket string
	skip   string
	err    error
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited (its only Wait)
	dir    string
}

// Stop stops the server if one was started; call it from TestMain after
// m.Run.
func Stop() {
	if maria.cmd != nil && maria.cmd.Process != nil {
		_ = maria.cmd.Process.Signal(os.Interrupt)
		select {
		case <-maria.done:
		case <-time.After(30 * time.Second):
			_ = maria.cmd.Process.Kill()
			<-maria.done
		}
		maria.cmd = nil
	}
	if maria.dir != "" {
		_ = os.RemoveAll(maria.dir)
	}
}

func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func startMariaDB() {
	server, install := lookBin("mariadbd"), lookBin("mariadb-install-db")
	if server == "" || install == "" {
		maria.skip = "mariadbd / mariadb-install-db not installed (.ci/run installs mariadb-server)"
		return
	}
	dir, err := os.MkdirTemp("", "wimms-maria-")
	if err != nil {
		maria.err = err
		return
	}
	maria.dir = dir
	data := filepath.Join(dir, "data")
	out, err := exec.Command(install, "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		maria.err = fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
		return
	}
	maria.socket = filepath.Join(dir, "sock")
	logFile := filepath.Join(dir, "error.log")
	cmd := exec.Command(server, "--no-defaults", "--user=root", "--datadir="+data, "--socket="+maria.socket,
		"--skip-networking", "--pid-file="+filepath.Join(dir, "pid"), "--log-error="+logFile,
		"--innodb-buffer-pool-size=128M", "--innodb-log-file-size=64M", "--innodb-flush-log-at-trx-commit=2",
		"--skip-log-bin", "--max-allowed-packet=64M")
	if err := cmd.Start(); err != nil {
		maria.err = fmt.Errorf("starting mariadbd: %w", err)
		return
	}
	maria.cmd = cmd
	maria.done = make(chan struct{})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(maria.done) }()
	// Ready when a connection over the socket answers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("mysql", "root@unix("+maria.socket+")/")
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logFile)
			maria.err = fmt.Errorf("mariadbd exited: %v\n%s", werr, log)
			maria.cmd = nil
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			maria.err = fmt.Errorf("mariadbd not answering after 60s: %v\n%s", err, log)
			return
		}
	}
}

// NewDatabase creates an empty database with the token server's tables
// (withKCA: the Rust token server's users.keys_changed_at; without: the
// older Python schema) and returns it open. Under -short it skips t
// instead: the first database starts a MariaDB server.
func NewDatabase(t testing.TB, name string, withKCA bool) (*sql.DB, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a MariaDB server")
	}
	maria.once.Do(startMariaDB)
	if maria.skip != "" {
		t.Skip(maria.skip)
	}
	if maria.err != nil {
		t.Fatal(maria.err)
	}
	root, err := sql.Open("mysql", "root@unix("+maria.socket+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "unix", maria.socket, name
	cfg.MultiStatements = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	kca := ""
	if withKCA {
		kca = ",\n  keys_changed_at bigint DEFAULT NULL"
	}
	ddl := `CREATE TABLE services (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  service varchar(30) DEFAULT NULL,
  pattern varchar(128) DEFAULT NULL,
  UNIQUE KEY service (service)
);
CREATE TABLE nodes (
  id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
  service int NOT NULL,
  node varchar(64) NOT NULL,
  available int NOT NULL DEFAULT 0,
  current_load int NOT NULL DEFAULT 0,
  capacity int NOT NULL DEFAULT 0,
  downed int NOT NULL DEFAULT 0,
  backoff int NOT NULL DEFAULT 0,
  UNIQUE KEY unique_idx (service, node)
);
CREATE TABLE users (
  uid bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
  service int NOT NULL,
  email varchar(255) NOT NULL,
  generation bigint NOT NULL,
  client_state varchar(32) NOT NULL,
  created_at bigint NOT NULL,
  replaced_at bigint DEFAULT NULL,
  nodeid bigint NOT NULL` + kca + `,
  KEY lookup_idx (email, service, created_at),
  KEY replaced_at_idx (service, replaced_at),
  KEY node_idx (nodeid)
);`
	if _, err := db.Exec(ddl); err != nil {
		t.Fatalf("creating tables: %v", err)
	}
	return db, "root@unix(" + maria.socket + ")/" + name
}
