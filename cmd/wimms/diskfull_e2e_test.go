package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fillFileSystem writes a filler file in dir until its file system is full.
func fillFileSystem(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// TestFullDiskFollowerIsNotReadyAndRefusesStaleReads: a follower whose
// disk fills up cannot append. It must say so (not ready, the reason in
// /__heartbeat__, wimms_store_append_failing) and must not answer a stale
// read with max_staleness from the state it was left with: a user whose
// allocation was acknowledged after the disk filled is refused with 503
// stale-read, never 404. Once space is freed it catches up and answers.
func TestFullDiskFollowerIsNotReadyAndRefusesStaleReads(t *testing.T) {
	mnt := mountSmallDisk(t, "16m")

	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = newMember(t, fmt.Sprintf("m%d", i+1), fmt.Sprintf("zone-%c", 'a'+i))
		if i > 0 {
			ms[i].SetJoin([]string{ms[0].HTTPAddr})
		}
	}
	full := ms[2]
	full.DataDir = filepath.Join(mnt, "data")
	// Small segments run out soon; no snapshot, so no compaction frees
	// space behind the test's back (a member that snapshots deletes old
	// segments and may append again for a while).
	full.Flags = append(full.Flags, "--wal-segment-size", "1MiB", "--snapshot-threshold", "100000000")
	ms[0].start()
	ms[0].waitReady(30 * time.Second)
	ms[1].start()
	full.start()
	leader := byID(ms, waitConverged(t, ms, 3))
	if leader == full {
		t.Fatalf("%s, the member on the small disk, leads: the test needs it to follow", full.ID)
	}
	seedService(t, leader, 1_000_000)
	users := leader.url("/v1/services/sync-1.5/users")
	expect(t, call(t, "POST", users, map[string]any{"email": "before@example.com"}), 201, "allocate before the disk fills")
	fillFileSystem(t, mnt)

	// Writes go on through the leader (the other two commit them) until
	// the full member's preallocated segment runs out and it cannot append.
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				email := fmt.Sprintf("w%d-%d@example.com", w, i)
				if a, err := tryCall("POST", users, map[string]any{"email": email}); err == nil && a.code == 201 {
					acked.Add(1)
				}
			}
		})
	}
	eventually(t, 120*time.Second, full.ID+" failing to append", func() error {
		fams, _ := scrape(t, full)
		if sample(fams, "wimms_store_append_failing") != 1 {
			return fmt.Errorf("append not failing yet (%d allocations acknowledged)", acked.Load())
		}
		return nil
	})
	// The writers go on, so the member keeps falling behind.
	after := "after-full@example.com"
	expect(t, call(t, "POST", users, map[string]any{"email": after}), 201, "allocate while the follower's disk is full")
	ackedAt := time.Now()
	eventually(t, 30*time.Second, full.ID+" not ready, saying why", func() error {
		if a, err := tryCall("GET", full.url("/readyz"), nil); err != nil || a.code != 503 {
			return fmt.Errorf("/readyz: %v %+v", err, a)
		}
		if a, err := tryCall("GET", full.url("/__heartbeat__"), nil); err != nil || a.code != 503 || !strings.Contains(a.raw, "appending to the raft log fails") {
			return fmt.Errorf("/__heartbeat__: %v %+v", err, a)
		}
		return nil
	})
	// A stale read may miss what was acknowledged within max_staleness;
	// from then on, the user must be in the answer or the read refused.
	stale := full.url("/v1/services/sync-1.5/users/" + url.PathEscape(after) + "?consistency=stale&max_staleness=2s")
	eventually(t, 30*time.Second, "a stale read refused as stale-read", func() error {
		issued := time.Now()
		a, err := tryCall("GET", stale, nil)
		switch {
		case err != nil:
			return err
		case issued.Sub(ackedAt) < 2*time.Second+100*time.Millisecond:
			return fmt.Errorf("HTTP %d within max_staleness of the acknowledgement", a.code)
		case a.code == 404:
			t.Fatalf("a user acknowledged more than max_staleness ago read as missing from the member that cannot append: %s", a.raw)
		case a.code != 503 || !strings.Contains(a.raw, "stale-read"):
			return fmt.Errorf("HTTP %d: %s", a.code, a.raw)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	full.waitReady(60 * time.Second)
	expect(t, call(t, "GET", stale, nil), 200, "the same stale read once space is back")
}
