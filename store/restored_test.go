package store

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// prepared writes what `wimms restore` leaves: one snapshot whose
// configuration holds the one voter id at addr, and no Raft log.
func prepared(t *testing.T, id, addr string) string {
	t.Helper()
	dir := t.TempDir()
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	sink, err := snaps.Create(raft.SnapshotVersionMax, 5, 1, conf, 5, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckRestoredIdentity(t *testing.T) {
	dir := prepared(t, "m1", "10.0.0.1:8081")
	if err := CheckRestoredIdentity(dir, "m1", "10.0.0.1:8081"); err != nil {
		t.Fatalf("the restored member: %v", err)
	}
	for _, c := range []struct{ id, addr string }{{"m2", "10.0.0.1:8081"}, {"m1", "10.0.0.2:8081"}} {
		err := CheckRestoredIdentity(dir, c.id, c.addr)
		if err == nil || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), "restored for member m1 at raft address 10.0.0.1:8081") ||
			!strings.Contains(err.Error(), "--id "+c.id+" at "+c.addr) {
			t.Errorf("%s at %s: %v", c.id, c.addr, err)
		}
	}
	// Once the member ran (a Raft store exists), membership is Raft's business.
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckRestoredIdentity(dir, "m2", "10.0.0.1:8081"); err != nil {
		t.Fatalf("a data dir with Raft state: %v", err)
	}
	// An empty data dir: a new member.
	if err := CheckRestoredIdentity(t.TempDir(), "m2", "x:1"); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
}
