package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// damageFile applies edit at every occurrence of marker in path: bolt
// leaves stale copies of rewritten pages in the file, and the live one is
// among them.
func damageFile(t *testing.T, path string, marker []byte, edit func(b []byte, at int)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], marker)
		if i < 0 {
			break
		}
		edit(b, off+i)
		n++
		off += i + len(marker)
	}
	if n == 0 {
		t.Fatalf("%q not found in %s", marker, path)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startDamaged starts m on its (damaged) data dir and returns its exit code
// and everything it printed.
func startDamaged(t *testing.T, m *member) (int, string) {
	t.Helper()
	m.start()
	done := m.Exited()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		m.kill9()
		t.Fatalf("%s started on a damaged log instead of refusing:\n%s", m.ID, m.log(t))
	}
	return m.ExitCode(), m.log(t)
}

func assertRefusedCorrupt(t *testing.T, what string, code int, out, dir string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("%s: exit 0", what)
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Fatalf("%s: a panic trace instead of a named cause:\n%s", what, out)
	}
	if !strings.Contains(out, "data corruption in data directory "+dir) || !strings.Contains(out, "raft index") ||
		!strings.Contains(out, "Replacing a damaged member") {
		t.Fatalf("%s: output does not name the corruption, directory, index and remedy:\n%s", what, out)
	}
}

// intactStoppedMember starts a one-member cluster with flags, allocates
// user00@example.com to user19@example.com, stops it with SIGTERM, and
// checks that wimms check finds its data intact: the data a damage test
// then breaks.
func intactStoppedMember(t *testing.T, id string, flags ...string) *member {
	t.Helper()
	m := startSolo(t, id, "a", flags...)
	seedService(t, m, 1000)
	for i := range 20 {
		expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": fmt.Sprintf("user%02d@example.com", i)}), 201, "allocate")
	}
	if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	if out, code := testutil.RunWimms(t, "check", "--data-dir", m.DataDir); code != 0 || !strings.Contains(out, "no damage found") {
		t.Fatalf("check of an intact member: exit %d\n%s", code, out)
	}
	return m
}

func TestDamagedLogRefusesToStartAndCheckFindsIt(t *testing.T) {
	// raft.db is the log here (--log-store bolt): its damage is what this
	// test makes; TestDamagedWALRefusesToStart does the same to raft-wal.
	m := intactStoppedMember(t, "disk", "--log-store", "bolt")
	pristine := filepath.Join(t.TempDir(), "pristine")
	copyDir(t, m.DataDir, pristine)

	// One flipped byte inside a stored command: user07 becomes user17's twin.
	damageFile(t, filepath.Join(m.DataDir, "raft.db"), []byte("user07@example.com"), func(b []byte, at int) { b[at+4] ^= 0x01 })
	code, out := startDamaged(t, m)
	assertRefusedCorrupt(t, "flipped byte", code, out, m.DataDir)
	if !strings.Contains(out, "fails its checksum") {
		t.Fatalf("flipped byte: cause not named:\n%s", out)
	}
	checkOut, code := testutil.RunWimms(t, "check", "--data-dir", m.DataDir)
	if code != 1 || !strings.Contains(checkOut, "DAMAGE:") || !strings.Contains(checkOut, "fails its checksum") {
		t.Fatalf("check of a flipped byte: exit %d\n%s", code, checkOut)
	}

	// A damaged entry header (the msgpack map header of the entry that
	// holds user03): raft itself would panic on it.
	if err := os.RemoveAll(m.DataDir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, pristine, m.DataDir)
	db := filepath.Join(m.DataDir, "raft.db")
	raw, _ := os.ReadFile(db)
	damageFile(t, db, []byte("user03@example.com"), func(b []byte, at int) {
		// raft-boltdb stores an entry as a msgpack map with sorted keys:
		// the map header, then "AppendedAt", ..., "Data".
		hdr := bytes.LastIndex(raw[:at], []byte("\xaaAppendedAt"))
		if hdr < 1 {
			t.Fatalf("no entry header before offset %d", at)
		}
		b[hdr-1] = 0xc1 // a byte msgpack never uses
	})
	code, out = startDamaged(t, m)
	assertRefusedCorrupt(t, "damaged header", code, out, m.DataDir)
	if !strings.Contains(out, "unreadable") {
		t.Fatalf("damaged header: cause not named:\n%s", out)
	}
	checkOut, code = testutil.RunWimms(t, "check", "--data-dir", m.DataDir)
	if code != 1 || !strings.Contains(checkOut, "DAMAGE:") {
		t.Fatalf("check of a damaged header: exit %d\n%s", code, checkOut)
	}
	t.Logf("refusal line: %s", lastLine(out))
}

// TestDamagedWALRefusesToStart: a flipped byte inside a stored command in
// raft-wal's segment files (the default log store) is caught by the
// entry's checksum at start and by wimms check.
func TestDamagedWALRefusesToStart(t *testing.T) {
	m := intactStoppedMember(t, "wal")
	segs, err := filepath.Glob(filepath.Join(m.DataDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no wal segments in %s: %v", m.DataDir, err)
	}
	found := false
	for _, seg := range segs {
		if b, _ := os.ReadFile(seg); bytes.Contains(b, []byte("user07@example.com")) {
			damageFile(t, seg, []byte("user07@example.com"), func(b []byte, at int) { b[at+4] ^= 0x01 })
			found = true
		}
	}
	if !found {
		t.Fatal("no segment holds user07's entry")
	}
	code, out := startDamaged(t, m)
	assertRefusedCorrupt(t, "flipped byte in a wal segment", code, out, m.DataDir)
	checkOut, code := testutil.RunWimms(t, "check", "--data-dir", m.DataDir)
	if code != 1 || !strings.Contains(checkOut, "DAMAGE:") {
		t.Fatalf("check of a damaged wal: exit %d\n%s", code, checkOut)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func metricsLines(t *testing.T, m *member) int {
	t.Helper()
	a := expect(t, call(t, "GET", m.url("/metrics"), nil), 200, "metrics")
	return strings.Count(a.raw, "\n")
}

// TestHostileClients: made-up methods, slow bodies, form posts, bad
// escapes and refusals against a real member.
func TestHostileClients(t *testing.T) {
	const admin = "admin-secret"
	auth := []string{"Authorization", "Bearer " + admin}
	m := newMember(t, "solo", "a")
	m.Flags = append(m.Flags, "--body-timeout", "2s", "--admin-token", admin, "--pprof")
	m.start()
	m.waitReady(20 * time.Second)
	seedService(t, m, 1000, auth...)

	t.Run("made-up methods", func(t *testing.T) {
		// Warm up: the first made-up method on each path and the first
		// GET /metrics create their series once.
		for _, p := range []string{"/v1/services", "/nowhere"} {
			call(t, "WARMUP", m.url(p), nil)
		}
		metricsLines(t, m)
		before := metricsLines(t, m)
		for i := range 100 {
			a := call(t, fmt.Sprintf("MADEUP%03d", i), m.url([]string{"/v1/services", "/nowhere"}[i%2]), nil)
			if a.code != 405 && a.code != 404 {
				t.Fatalf("made-up method: %d %s", a.code, a.raw)
			}
			if a.str("status") == "" {
				t.Fatalf("made-up method answer outside the error shape: %s", a.raw)
			}
		}
		after := metricsLines(t, m)
		t.Logf("/metrics: %d lines before 100 made-up methods, %d after", before, after)
		if after-before > 5 {
			t.Fatalf("/metrics grew by %d lines for 100 made-up methods", after-before)
		}
	})

	t.Run("form-encoded POST", func(t *testing.T) {
		before := call(t, "GET", m.url("/v1/services/sync-1.5/stats"), nil)
		req, _ := http.NewRequest("POST", m.url("/v1/services/sync-1.5/users"), strings.NewReader("email=victim%40example.com"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 415 || !strings.Contains(string(b), `"status":"unsupported-media-type"`) {
			t.Fatalf("form POST: %d %s", resp.StatusCode, b)
		}
		after := call(t, "GET", m.url("/v1/services/sync-1.5/stats"), nil)
		if before.raw != after.raw {
			t.Fatalf("a refused form POST changed state: %s → %s", before.raw, after.raw)
		}
		expect(t, call(t, "GET", userURL(m, "sync-1.5", "victim@example.com", ""), nil), 404, "form POST allocated nobody")
	})

	t.Run("bad percent-escape", func(t *testing.T) {
		resp, body := testutil.RawRequest(t, m.HTTPAddr, "GET /v1/services/sync%zz HTTP/1.1\r\nHost: x\r\n\r\n")
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 400 || ct != "application/json" || !strings.Contains(string(body), `"status":"bad-request"`) {
			t.Fatalf("bad escape: %d %q %s", resp.StatusCode, ct, body)
		}
	})

	t.Run("refusals are 409", func(t *testing.T) {
		a := expect(t, call(t, "DELETE", m.url("/v1/cluster/members/solo"), nil, auth...), 409, "remove the only voter")
		if a.str("status") != "conflict" {
			t.Fatalf("shape: %s", a.raw)
		}
		expect(t, call(t, "POST", m.url("/v1/cluster/leader"), map[string]any{}, auth...), 409, "hand over with no other voter")
		if log := m.log(t); strings.Contains(log, "[ERROR]") {
			t.Fatalf("a refusal was logged at ERROR:\n%s", log)
		}
	})

	t.Run("pprof needs the admin token", func(t *testing.T) {
		expect(t, call(t, "GET", m.url("/debug/pprof/"), nil), 401, "pprof without a token")
		a := call(t, "GET", m.url("/debug/pprof/goroutine?debug=1"), nil, auth...)
		if a.code != 200 {
			t.Fatalf("pprof with the admin token: %d", a.code)
		}
	})

	t.Run("slow body cut off, others served", func(t *testing.T) {
		c, err := net.Dial("tcp", m.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "POST /v1/services/sync-1.5/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
		answered := make(chan int, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answered <- -1
				return
			}
			answered <- resp.StatusCode
		}()
		// Other clients are served while the slow one trickles.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := tryCall("POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": fmt.Sprintf("fast%d@example.com", i)})
				if err == nil && a.code != 201 {
					err = fmt.Errorf("allocate: %d %s", a.code, a.raw)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		sent := 1
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var code int
	trickle:
		for {
			select {
			case code = <-answered:
				break trickle
			case <-tick.C:
				if sent < 3999 {
					if _, err := io.WriteString(c, " "); err == nil {
						sent++
					}
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the slow client was never cut off")
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("a normal client was not served: %v", err)
		}
		if code != http.StatusRequestTimeout {
			t.Fatalf("slow body: answer %d, want 408", code)
		}
		if sent >= 3999 {
			t.Fatal("the body was complete before the cut-off")
		}
		t.Logf("slow client cut off with 408 after %d of 4000 body bytes (--body-timeout 2s, one byte per 100ms)", sent)
	})
}

// TestRestartedMemberNeverServesAnEmptyState: stale reads on a member that
// is replaying its own log answer 503 until it has, never 404.
func TestRestartedMemberNeverServesAnEmptyState(t *testing.T) {
	m := startSolo(t, "replay", "a")
	seedService(t, m, 100000)
	const probe = "probe@example.com"
	want := expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": probe}), 201, "probe user").num("uid")
	allocateFillers(t, m, "u", 8*100)
	if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}

	m.start()
	counts := map[int]int{}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		a, err := tryCall("GET", userURL(m, "sync-1.5", probe, "?consistency=stale"), nil)
		if err != nil {
			continue // not listening yet
		}
		counts[a.code]++
		switch a.code {
		case 200:
			if a.num("uid") != want {
				t.Fatalf("stale read after restart: uid %d, want %d", a.num("uid"), want)
			}
		case 503:
			if a.header.Get("Retry-After") == "" || a.str("status") == "" {
				t.Fatalf("503 without Retry-After or the error shape: %v %s", a.header, a.raw)
			}
		default:
			t.Fatalf("stale read during replay: %d %s (a restarting member must never describe an empty state)", a.code, a.raw)
		}
		if a.code == 200 {
			break
		}
	}
	if counts[200] == 0 {
		t.Fatalf("the restarted member never answered the stale read: %v", counts)
	}
	t.Logf("stale reads during restart: %v", counts)
}

// TestWholeClusterSIGTERM: SIGTERM to every member at once. Each exits 0
// well inside --shutdown-timeout (members used to wait on each other's
// Raft RPCs until the timeout, heartbeats still running), says it shut
// down cleanly, and the cluster restarts from the data with every write.
func TestWholeClusterSIGTERM(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	ms := launchMembers(t, 3, membersSpec{flags: []string{"--shutdown-timeout", shutdownTimeout.String()}})
	leader := waitConverged(t, ms, 3)
	seedService(t, byID(ms, leader), 100)
	for i := range 5 {
		expect(t, allocate(t, ms[i%3], fmt.Sprintf("before-stop-%d@example.com", i)), 201, "allocation before the stop")
	}
	start := time.Now()
	codes := make([]int, len(ms))
	took := make([]time.Duration, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A member that hit the timeout would exit only after it: the
			// bound proves the stop never waited it out.
			codes[i] = m.stop(syscall.SIGTERM, shutdownTimeout)
			took[i] = time.Since(start).Round(10 * time.Millisecond)
		}()
	}
	wg.Wait()
	for i, m := range ms {
		if codes[i] != 0 {
			t.Fatalf("%s exited %d after SIGTERM (-1: still running at the %v shutdown timeout)", m.ID, codes[i], shutdownTimeout)
		}
		log := m.log(t)
		if !strings.Contains(log, "shut down cleanly") || strings.Contains(log, "shutdown timed out") ||
			strings.Contains(log, "leadership transfer before shutdown timed out") {
			t.Fatalf("%s did not shut down cleanly:\n%s", m.ID, lastLines(log, 30))
		}
	}
	t.Logf("whole-cluster SIGTERM (leader %s): exits after %v", leader, took)

	for _, m := range ms {
		m.start()
	}
	waitConverged(t, ms, 3)
	for i := range 5 {
		email := fmt.Sprintf("before-stop-%d@example.com", i)
		a := expect(t, call(t, "GET", userURL(ms[(i+1)%3], "sync-1.5", email, "?consistency=linearizable"), nil), 200, "user after restart")
		if a.str("email") != email {
			t.Fatalf("after restart: %s", a.raw)
		}
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDamageFoundWhileRunningStopsTheMember: an entry damaged on disk
// while the member runs is caught when the leader reads it back to
// replicate it to a new member: the leader stops with the named cause and
// exit 3 instead of sending (or applying) a different command.
func TestDamageFoundWhileRunningStopsTheMember(t *testing.T) {
	m1 := startSolo(t, "m1", "a", "--log-store", "bolt") // the damage is made in raft.db
	seedService(t, m1, 100000)
	expect(t, call(t, "POST", m1.url("/v1/services/sync-1.5/users"), map[string]any{"email": "victim@example.com"}), 201, "victim")
	// Push the victim's entry out of the in-memory log cache (1024 entries),
	// so that replicating it means reading it from disk.
	allocateFillers(t, m1, "filler", 8*140)
	damageFile(t, filepath.Join(m1.DataDir, "raft.db"), []byte("victim@example.com"), func(b []byte, at int) { b[at+1] ^= 0x01 })

	m2 := newMember(t, "m2", "b")
	m2.SetJoin([]string{m1.HTTPAddr})
	m2.start()
	done := m1.Exited()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the leader went on replicating a damaged entry")
	}
	if code := m1.ExitCode(); code != 3 {
		t.Fatalf("leader exit: %v (code %d), want exit status 3", m1.ExitErr(), code)
	}
	log := m1.log(t)
	assertRefusedCorrupt(t, "damage found while running", 3, log, m1.DataDir)
	if strings.Count(log, "data corruption in data directory") != 1 {
		t.Fatalf("want the cause exactly once:\n%s", log)
	}
	t.Logf("leader stopped: %s", lastLine(log))
}

// allocateFillers allocates n users of sync-1.5 through m, from 8 clients
// at once, to grow the log; it fails t if any allocation fails.
func allocateFillers(t *testing.T, m *member, prefix string, n int) {
	t.Helper()
	const clients = 8
	var wg sync.WaitGroup
	failed := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += clients {
				email := fmt.Sprintf("%s-%d@example.com", prefix, i)
				if a, err := tryCall("POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": email}); err != nil || a.code != 201 {
					failed <- fmt.Errorf("allocate %s: %v %d %s", email, err, a.code, a.raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failed)
	if err := <-failed; err != nil {
		t.Fatalf("filler allocation: %v", err)
	}
}
