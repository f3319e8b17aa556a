package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshotOnDisk is one of a data dir's snapshots, from its meta.json.
type snapshotOnDisk struct {
	ID    string
	Index uint64
}

func snapshotsIn(t *testing.T, dataDir string) []snapshotOnDisk {
	t.Helper()
	metas, _ := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "meta.json"))
	var out []snapshotOnDisk
	for _, p := range metas {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // being written
		}
		var s snapshotOnDisk
		if json.Unmarshal(b, &s) == nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b snapshotOnDisk) int { return int(a.Index) - int(b.Index) })
	return out
}

// TestDamagedNewestSnapshotAtStart runs a member that snapshots every few
// entries, stops it, damages its newest snapshot and starts it again. While
// the log still covers everything since the older snapshot, it starts from
// that one, says so, keeps the damaged one aside and serves every write;
// once the log was compacted past it (--trailing-logs 2), it refuses to
// start (exit 3) naming the damaged snapshot.
func TestDamagedNewestSnapshotAtStart(t *testing.T) {
	for _, c := range []struct {
		name, trailing string
		fallsBack      bool
	}{{"log covers the gap", "10240", true}, {"log compacted", "2", false}} {
		t.Run(c.name, func(t *testing.T) {
			m := newMember(t, "snap", "a")
			m.Flags = append(m.Flags, "--snapshot-threshold", "8", "--snapshot-interval", "100ms", "--trailing-logs", c.trailing)
			m.start()
			m.waitReady(30 * time.Second)
			seedService(t, m, 1000)
			var acked []string
			for round := range 2 {
				for i := range 12 {
					email := fmt.Sprintf("snap%d-%02d@example.com", round, i)
					expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": email}), 201, "allocate "+email)
					acked = append(acked, email)
				}
				eventually(t, 30*time.Second, fmt.Sprintf("snapshot %d", round+1), func() error {
					if n := len(snapshotsIn(t, m.DataDir)); n < round+1 {
						return fmt.Errorf("%d snapshots", n)
					}
					return nil
				})
			}
			if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			snaps := snapshotsIn(t, m.DataDir)
			newest := snaps[len(snaps)-1]
			state := filepath.Join(m.DataDir, "snapshots", newest.ID, "state.bin")
			b, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(state, b, 0o600); err != nil {
				t.Fatal(err)
			}

			if !c.fallsBack {
				code, out := startDamaged(t, m)
				if code != exitCorrupt || !strings.Contains(out, "snapshot "+newest.ID+" is damaged") {
					t.Fatalf("start with a damaged newest snapshot and a compacted log: exit %d, want %d naming %s:\n%s", code, exitCorrupt, newest.ID, out)
				}
				if _, err := os.Stat(state); err != nil {
					t.Fatalf("a refused start moved the damaged snapshot: %v", err)
				}
				return
			}
			m.start()
			m.waitReady(30 * time.Second)
			if log := m.log(t); !strings.Contains(log, "starting from the older intact snapshot") || !strings.Contains(log, newest.ID) {
				t.Fatalf("the fallback to the older snapshot was not logged:\n%s", log)
			}
			if _, err := os.Stat(filepath.Join(m.DataDir, "snapshots.damaged", newest.ID)); err != nil {
				t.Fatalf("the damaged snapshot was not kept aside: %v", err)
			}
			for _, email := range acked {
				expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/users/"+url.PathEscape(email)), nil), 200, "lookup "+email)
			}
		})
	}
}
