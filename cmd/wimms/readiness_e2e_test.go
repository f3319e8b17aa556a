package main

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestReplacedTailMemberBecomesReady: a leader whose followers are down
// appends writes nobody else gets, then dies; the other two elect a leader
// with a shorter log. Restarted, the old leader has that tail replaced and
// must become ready in the idle cluster, although the log it found on disk
// at start is longer than anything the cluster will ever commit (readiness
// used to wait for that length: 503 not-ready for good).
func TestReplacedTailMemberBecomesReady(t *testing.T) {
	ms := startCluster(t, 3)
	old := byID(ms, waitConverged(t, ms, 3))
	seedService(t, old, 100)
	var followers []*member
	for _, m := range ms {
		if m != old {
			followers = append(followers, m)
		}
	}
	for _, f := range followers {
		f.kill9()
	}
	// Writes the old leader appends but cannot commit; their answers
	// (504, 503) do not matter.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			_, _ = tryCall("POST", old.url("/v1/services/sync-1.5/users"), map[string]any{"email": fmt.Sprintf("tail-%d@example.com", i)})
		})
	}
	eventually(t, 30*time.Second, "an uncommitted tail on the old leader", func() error {
		fams, _ := scrape(t, old)
		last, commit := sample(fams, "wimms_raft_last_log_index"), sample(fams, "wimms_raft_commit_index")
		if last-commit < 10 {
			return fmt.Errorf("last log index %v, commit index %v", last, commit)
		}
		return nil
	})
	old.kill9()
	wg.Wait()

	for _, f := range followers {
		f.start()
	}
	eventually(t, 60*time.Second, "a leader among the two that missed the tail", func() error {
		for _, f := range followers {
			if a, err := tryCall("GET", f.url("/readyz"), nil); err == nil && a.code == 200 {
				return nil
			}
		}
		return fmt.Errorf("neither is ready")
	})
	old.start()
	old.waitReady(60 * time.Second)

	// The precondition that made the old rule hang: the log found on disk
	// at start ends beyond what this member has applied in the idle cluster.
	match := regexp.MustCompile(`store open.*open_target_index=(\d+)`).FindAllStringSubmatch(old.log(t), -1)
	if len(match) < 2 {
		t.Fatalf("no store open line of the restart in the old leader's log")
	}
	target, _ := strconv.ParseFloat(match[len(match)-1][1], 64)
	fams, _ := scrape(t, old)
	if applied := sample(fams, "wimms_raft_applied_index"); applied >= target {
		t.Fatalf("applied %v ≥ the %v entries found at start: the tail was not longer than the new log, the test proves nothing", applied, target)
	}
	a := expect(t, call(t, "GET", old.url("/__heartbeat__"), nil), 200, "heartbeat of the member whose tail was replaced")
	t.Logf("ready with the log found at start ending at %v: %s", target, a.raw)
}
