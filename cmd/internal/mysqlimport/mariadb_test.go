package mysqlimport

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/cmd/internal/mysqlimport/mariadbtest"
	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mariadbtest.Stop()
	os.Exit(code)
}

func newDatabase(t *testing.T, name string, withKCA bool) *sql.DB {
	t.Helper()
	db, _ := mariadbtest.NewDatabase(t, name, withKCA)
	return db
}

// cluster is one real member (Raft on disk, HTTP API) in this process.
type cluster struct {
	st     *store.Store
	url    string
	client *client.Client
}

func startMember(t *testing.T, dataDir, id, raftAddr string) *cluster {
	t.Helper()
	logger := testutil.Logger(t).With("member", id)
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
