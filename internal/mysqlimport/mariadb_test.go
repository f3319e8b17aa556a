package mysqlimport

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/store"
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
	dir    string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if maria.cmd != nil && maria.cmd.Process != nil {
		_ = maria.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = maria.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = maria.cmd.Process.Kill()
		}
	}
	if maria.dir != "" {
		_ = os.RemoveAll(maria.dir)
	}
	os.Exit(code)
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
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
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

// newDatabase creates an empty database with the token server's tables
// (withKCA: the Rust token server's users.keys_changed_at; without: the
// older Python schema) and returns it open.
func newDatabase(t *testing.T, name string, withKCA bool) *sql.DB {
	t.Helper()
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
	return db
}

// cluster is one real member (Raft on disk, HTTP API) in this process.
type cluster struct {
	st     *store.Store
	url    string
	client *client.Client
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startMember(t *testing.T, dataDir, id, raftAddr string) *cluster {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Error, Output: os.Stderr})
	st, err := store.Open(store.Config{ID: id, DataDir: dataDir, RaftBind: raftAddr, Bootstrap: true, Logger: logger,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond, ApplyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	api := httpapi.New(httpapi.Config{Store: st, Logger: logger, AdminToken: "admin"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler()}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = st.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for !st.Ready() || !st.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatalf("member %s not leader and ready", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u := "http://" + l.Addr().String()
	return &cluster{st: st, url: u, client: client.New(u, client.WithToken("admin"))}
}

// backupState reads the whole state through the API's backup endpoint.
func (c *cluster) backupState(t *testing.T) *fsm.FSM {
	t.Helper()
	pr, pw := newPipe()
	go func() {
		_, _, err := c.client.Backup(context.Background(), pw)
		pw.CloseWithError(err)
	}()
	_, f, err := store.ReadBackup(pr, fsm.Options{})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return f
}

func sqlValue(v *int64) string {
	if v == nil {
		return "NULL"
	}
	return fmt.Sprint(*v)
}

func ptr(v int64) *int64 { return &v }

func joinRows(rows []string) string { return strings.Join(rows, ",\n") }
