package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func byID(ms []*member, id string) *member {
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func allocate(t *testing.T, m *member, email string) answer {
	t.Helper()
	return call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": email})
}

func TestThreeMemberCluster(t *testing.T) {
	ms := startCluster(t, 3)
	leaderID := waitConverged(t, ms, 3)
	var follower *member
	for _, m := range ms {
		if m.ID != leaderID {
			follower = m
			break
		}
	}

	v, _ := viewOf(follower)
	zones := map[string]bool{}
	for _, mm := range v.Members {
		zones[mm.Zone] = true
		if mm.HTTPAddr == "" {
			t.Fatalf("member %s has no http_addr in %+v", mm.ID, v)
		}
	}
	if len(zones) != 3 {
		t.Fatalf("want three zones in the cluster view, got %v", zones)
	}

	// Writes through every member (followers forward to the leader).
	expect(t, call(t, "PUT", follower.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service via follower")
	for i, m := range ms {
		expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": fmt.Sprintf("https://n%d.example.com", i), "capacity": 10000}), 201, "node via "+m.ID)
		a := expect(t, allocate(t, m, "via-"+m.ID+"@example.com"), 201, "allocate via "+m.ID)
		if a.header.Get("X-Wimms-Member") != leaderID {
			t.Fatalf("a forwarded write is answered by the leader %s, got member %q", leaderID, a.header.Get("X-Wimms-Member"))
		}
	}

	t.Run("racing allocations of one email get one record", func(t *testing.T) {
		for round := 0; round < 5; round++ {
			email := fmt.Sprintf("race-%d@example.com", round)
			var wg sync.WaitGroup
			answers := make([]answer, 9)
			for i := range answers {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					answers[i] = allocate(t, ms[i%3], email)
				}(i)
			}
			wg.Wait()
			created := 0
			for _, a := range answers {
				if a.code == 201 {
					created++
				} else if a.code != 200 {
					t.Fatalf("allocate: %d %s", a.code, a.raw)
				}
				if a.num("uid") != answers[0].num("uid") {
					t.Fatalf("racing allocations returned different uids: %s vs %s", a.raw, answers[0].raw)
				}
			}
			if created != 1 {
				t.Fatalf("%d answers said created, want exactly 1", created)
			}
		}
	})

	t.Run("linearizable read on a follower sees a write made through another member", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			w, r := ms[i%3], ms[(i+1)%3]
			email := fmt.Sprintf("linear-%d@example.com", i)
			a := expect(t, allocate(t, w, email), 201, "allocate")
			g := expect(t, call(t, "GET", userURL(r, "sync-1.5", email, "?consistency=linearizable"), nil), 200, "linearizable read via "+r.ID)
			if g.num("uid") != a.num("uid") {
				t.Fatalf("read %s, wrote %s", g.raw, a.raw)
			}
			idx, _ := strconv.ParseUint(g.header.Get("X-Wimms-Index"), 10, 64)
			widx, _ := strconv.ParseUint(a.header.Get("X-Wimms-Index"), 10, 64)
			if idx < widx {
				t.Fatalf("linearizable read reflects index %d < write index %d", idx, widx)
			}
		}
	})

	t.Run("idempotent write through two members acts once", func(t *testing.T) {
		body := map[string]any{"email": "idem@example.com"}
		a := expect(t, call(t, "POST", ms[0].url("/v1/services/sync-1.5/users"), body, "Idempotency-Key", "k-1"), 201, "first")
		b := expect(t, call(t, "POST", ms[1].url("/v1/services/sync-1.5/users"), body, "Idempotency-Key", "k-1"), 201, "repeat returns the first answer")
		if a.raw != b.raw {
			t.Fatalf("repeat answer differs: %s vs %s", a.raw, b.raw)
		}
		expect(t, call(t, "POST", ms[2].url("/v1/services/sync-1.5/users"), map[string]any{"email": "other@example.com"}, "Idempotency-Key", "k-1"), 409, "same key, other body")
	})

	// Kill -9 the leader: a new leader is elected, writes go on, and the
	// old leader rejoins and catches up.
	old := byID(ms, leaderID)
	old.kill9()
	survivors := []*member{}
	for _, m := range ms {
		if m != old {
			survivors = append(survivors, m)
		}
	}
	var newLeader string
	eventually(t, 30*time.Second, "new leader after kill -9", func() error {
		v, err := viewOf(survivors[0])
		if err != nil {
			return err
		}
		if v.Leader == nil || v.Leader.ID == leaderID {
			return fmt.Errorf("leader %+v", v.Leader)
		}
		newLeader = v.Leader.ID
		return nil
	})
	var lastUID int64
	for i, m := range survivors {
		var a answer
		eventually(t, 20*time.Second, "write after failover via "+m.ID, func() error {
			a = allocate(t, m, fmt.Sprintf("after-failover-%d@example.com", i))
			if a.code != 201 {
				return fmt.Errorf("%d %s", a.code, a.raw)
			}
			return nil
		})
		lastUID = a.num("uid")
	}
	t.Logf("leader %s killed, %s took over", leaderID, newLeader)

	old.start()
	eventually(t, 30*time.Second, "old leader caught up", func() error {
		a, err := tryCall("GET", userURL(old, "sync-1.5", "after-failover-1@example.com", "?consistency=stale"), nil)
		if err != nil {
			return err
		}
		if a.code != 200 || a.num("uid") != lastUID {
			return fmt.Errorf("%d %s", a.code, a.raw)
		}
		return nil
	})
	waitConverged(t, ms, 3)

	t.Run("stale reads honour max_staleness", func(t *testing.T) {
		v, _ := viewOf(ms[0])
		var lone *member
		for _, m := range ms {
			if m.ID != v.Leader.ID {
				lone = m
			}
		}
		for _, m := range ms {
			if m != lone {
				m.kill9()
			}
		}
		time.Sleep(2500 * time.Millisecond) // longer than the bound below
		a := expect(t, call(t, "GET", userURL(lone, "sync-1.5", "after-failover-1@example.com", "?consistency=stale&max_staleness=1s"), nil), 503, "stale read beyond max_staleness")
		if a.str("status") != "stale-read" || a.header.Get("Retry-After") == "" {
			t.Fatalf("want 503 stale-read with Retry-After: %v %s", a.header, a.raw)
		}
		expect(t, call(t, "GET", userURL(lone, "sync-1.5", "after-failover-1@example.com", "?consistency=stale"), nil), 200, "stale read without a bound")
		w := call(t, "POST", lone.url("/v1/services/sync-1.5/users"), map[string]any{"email": "no-quorum@example.com"})
		if w.code != 503 && w.code != 504 {
			t.Fatalf("a write without quorum must not succeed: %d %s", w.code, w.raw)
		}
		if w.code == 503 && w.header.Get("Retry-After") == "" {
			t.Fatalf("503 without Retry-After: %v", w.header)
		}
	})

	// Full-cluster restart keeps everything.
	for _, m := range ms {
		if m.running() {
			if code := m.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
				t.Fatalf("%s: SIGTERM exit code %d", m.ID, code)
			}
		}
	}
	for _, m := range ms {
		m.start()
	}
	waitConverged(t, ms, 3)
	for i, m := range ms {
		g := expect(t, call(t, "GET", userURL(m, "sync-1.5", "race-0@example.com", "?consistency=linearizable"), nil), 200, "after full restart via "+m.ID)
		if g.num("uid") <= 0 {
			t.Fatalf("member %d: %s", i, g.raw)
		}
	}
}

func TestFiveMembersAddRemoveTransfer(t *testing.T) {
	ms := startCluster(t, 3)
	// m4 joins through a follower's HTTP address, m5 through a gossip address.
	m4 := newMember(t, "m4", "zone-a")
	m4.SetJoin([]string{ms[1].HTTPAddr})
	m5 := newMember(t, "m5", "zone-b")
	m5.SetJoin([]string{ms[2].GossipAddr})
	m4.start()
	m5.start()
	all := append(ms, m4, m5)
	waitConverged(t, all, 5)

	expect(t, call(t, "PUT", m5.url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service via m5")
	expect(t, call(t, "POST", m4.url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n.example.com", "capacity": 100}), 201, "node via m4")
	for _, m := range all {
		expect(t, allocate(t, m, "five-"+m.ID+"@example.com"), 201, "allocate via "+m.ID)
	}

	// Hand leadership to a chosen member.
	v, _ := viewOf(ms[0])
	target := "m4"
	if v.Leader.ID == "m4" {
		target = "m5"
	}
	expect(t, call(t, "POST", ms[0].url("/v1/cluster/leader"), map[string]any{"id": target}), 200, "leadership transfer")
	eventually(t, 20*time.Second, "leadership moved to "+target, func() error {
		v, err := viewOf(ms[1])
		if err != nil {
			return err
		}
		if v.Leader == nil || v.Leader.ID != target {
			return fmt.Errorf("leader %+v", v.Leader)
		}
		return nil
	})

	// Remove m5 (through any member), then check the rest.
	expect(t, call(t, "DELETE", ms[1].url("/v1/cluster/members/m5"), nil), 200, "remove m5")
	expect(t, call(t, "DELETE", ms[1].url("/v1/cluster/members/nobody"), nil), 404, "remove unknown")
	m5.stop(syscall.SIGTERM, 20*time.Second)
	rest := []*member{ms[0], ms[1], ms[2], m4}
	waitConverged(t, rest, 4)
	for _, m := range rest {
		expect(t, call(t, "GET", userURL(m, "sync-1.5", "five-m5@example.com", "?consistency=linearizable"), nil), 200, "read via "+m.ID)
	}
}

// TestGracefulLeaderShutdownHandsOver: SIGTERM on the leader hands
// leadership to another voter before the process exits 0, and the cluster
// keeps accepting writes.
func TestGracefulLeaderShutdownHandsOver(t *testing.T) {
	ms := startCluster(t, 3)
	leaderID := waitConverged(t, ms, 3)
	old := byID(ms, leaderID)
	var rest []*member
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	expect(t, call(t, "PUT", rest[0].url("/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service")
	expect(t, call(t, "POST", rest[0].url("/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n.example.com", "capacity": 100}), 201, "node")

	if code := old.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("SIGTERM on the leader: exit code %d, want 0", code)
	}
	logText := old.log(t)
	if !strings.Contains(logText, "handing leadership over before shutdown") ||
		strings.Contains(logText, "leadership transfer before shutdown failed") ||
		strings.Contains(logText, "leadership transfer before shutdown timed out") {
		t.Fatalf("the leader did not hand leadership over cleanly; its log:\n%s", logText)
	}
	eventually(t, 10*time.Second, "a write after the handover", func() error {
		a, err := tryCall("POST", rest[1].url("/v1/services/sync-1.5/users"), map[string]any{"email": "after-handover@example.com"})
		if err != nil {
			return err
		}
		if a.code != 201 || a.header.Get("X-Wimms-Member") == leaderID {
			return fmt.Errorf("%d %s (member %s)", a.code, a.raw, a.header.Get("X-Wimms-Member"))
		}
		return nil
	})
}
