package main

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// These tests damage raft-wal's tail segment the way disks and operators
// do, and check that no shorter log is ever served: a member either finds
// every index it made durable (its log watermark) or refuses to start with
// the damage named. They read the segment format themselves (raft-wal's
// segment/format.go: a 32-byte file header, 8-byte frame headers
// {type, 0, 0, 0, length or CRC}, payloads padded to 8 bytes, each append
// batch ending in a commit frame of type 3).

// walFrame is one frame of a segment file.
type walFrame struct {
	off  int64
	typ  byte
	size int64 // header + payload + padding
}

// tailSegment is the path of the data dir's newest raft-wal segment.
func tailSegment(t *testing.T, dataDir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no wal segments in %s: %v", dataDir, err)
	}
	sort.Strings(segs) // named by base index, zero-padded
	return segs[len(segs)-1]
}

// segmentFrames walks a segment's frames up to the first zero header.
func segmentFrames(t *testing.T, b []byte) (frames []walFrame, end int64) {
	t.Helper()
	off := int64(32)
	for off+8 <= int64(len(b)) && b[off] != 0 {
		typ := b[off]
		size := int64(8)
		if typ != 3 {
			n := int64(binary.LittleEndian.Uint32(b[off+4:]))
			size += n + (8-n%8)%8
		}
		frames = append(frames, walFrame{off: off, typ: typ, size: size})
		off += size
	}
	if len(frames) == 0 || frames[len(frames)-1].typ != 3 {
		t.Fatalf("segment does not end in a commit frame (%d frames)", len(frames))
	}
	return frames, off
}

// flipMiddleFrameHeader flips the type byte of an entry frame in the middle
// of the tail segment: raft-wal stops reading there.
func flipMiddleFrameHeader(t *testing.T, dataDir string) {
	t.Helper()
	seg := tailSegment(t, dataDir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	frames, _ := segmentFrames(t, b)
	var entries []walFrame
	for _, f := range frames {
		if f.typ == 1 {
			entries = append(entries, f)
		}
	}
	victim := entries[len(entries)/2]
	b[victim.off] ^= 0x40 // type 1 becomes 0x41, a type raft-wal does not know
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// truncateWrittenTail cuts n bytes off the end of the written data of the
// tail segment (acknowledged batches: the member was stopped cleanly).
func truncateWrittenTail(t *testing.T, dataDir string, n int64) {
	t.Helper()
	seg := tailSegment(t, dataDir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	_, end := segmentFrames(t, b)
	if err := os.Truncate(seg, end-n); err != nil {
		t.Fatal(err)
	}
}

var (
	logTailRe  = regexp.MustCompile(`log tail: last index (\d+), last term (\d+), newest intact snapshot (\d+), watermark (\d+)`)
	wimmsLines = regexp.MustCompile(`(?m)^wimms: .*$`)
)

// checkTail runs wimms check on dir and returns its exit code, output and
// the last index and watermark it printed.
func checkTail(t *testing.T, dir string) (code int, out string, last, watermark uint64) {
	t.Helper()
	out, code = testutil.RunWimms(t, "check", "--data-dir", dir)
	m := logTailRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("wimms check of %s prints no log tail line (exit %d):\n%s", dir, code, out)
	}
	last, _ = strconv.ParseUint(m[1], 10, 64)
	watermark, _ = strconv.ParseUint(m[4], 10, 64)
	return code, out, last, watermark
}

// lastLaunch is what a member printed since its last start.
func lastLaunch(out string) string {
	starts := regexp.MustCompile(`(?m)^=== launch \S+: start `).FindAllStringIndex(out, -1)
	if len(starts) == 0 {
		return out
	}
	return out[starts[len(starts)-1][0]:]
}

// assertTailDamageRefused checks a start refused on tail damage: exit 3 and
// one line naming the data dir, the missing entries and the remedy.
func assertTailDamageRefused(t *testing.T, what string, code int, out, dir string) {
	t.Helper()
	if code != 3 {
		t.Fatalf("%s: exit %d, want 3:\n%s", what, code, out)
	}
	lines := wimmsLines.FindAllString(lastLaunch(out), -1)
	if len(lines) != 1 {
		t.Fatalf("%s: want one 'wimms:' line, got %d:\n%s", what, len(lines), out)
	}
	line := lines[0]
	for _, want := range []string{"data corruption in data directory " + dir, "are missing", "wimms recover", "Replacing a damaged member"} {
		if !strings.Contains(line, want) {
			t.Fatalf("%s: the line does not say %q:\n%s", what, want, line)
		}
	}
	lastStart := lastLaunch(out)
	if strings.Contains(lastStart, "entering follower state") || strings.Contains(out, "panic:") {
		t.Fatalf("%s: raft started or panicked on a damaged log:\n%s", what, out)
	}
}

// TestFlippedTailFrameHeaderRefusesToStart: one flipped frame-header byte in
// the middle of the tail segment made raft-wal open a log cut in half, and
// the member ran with it. Now the start is refused and wimms check names it.
func TestFlippedTailFrameHeaderRefusesToStart(t *testing.T) {
	m := intactStoppedMember(t, "flip")
	_, _, lastBefore, wmBefore := checkTail(t, m.DataDir)
	if wmBefore != lastBefore || lastBefore == 0 {
		t.Fatalf("intact member: last index %d, watermark %d: want equal and > 0", lastBefore, wmBefore)
	}
	flipMiddleFrameHeader(t, m.DataDir)
	code, out := startDamaged(t, m)
	assertTailDamageRefused(t, "flipped frame header", code, out, m.DataDir)
	if !strings.Contains(out, "unreadable frame at offset") {
		t.Fatalf("flipped frame header: cause not named:\n%s", out)
	}
	code, checkOut, last, wm := checkTail(t, m.DataDir)
	if code != 1 || !strings.Contains(checkOut, "DAMAGE:") || strings.Contains(checkOut, "no damage found") {
		t.Fatalf("check of a flipped frame header: exit %d\n%s", code, checkOut)
	}
	if last >= wm || wm != wmBefore {
		t.Fatalf("check: last index %d, watermark %d (before: %d/%d): want the cut log below the watermark", last, wm, lastBefore, wmBefore)
	}
	t.Logf("refusal line: %s", wimmsLines.FindString(out))
}

// TestTornFinalBatchIsDiscarded: a batch that was being written when the
// member crashed is cut short at the end of the written data. By
// construction it was never acknowledged: it is a half copy of the last
// batch placed after it, bytes no StoreLogs ever returned for, and the log
// still reaches the watermark. The member starts, says it discarded the
// torn batch, and keeps every acknowledged write.
func TestTornFinalBatchIsDiscarded(t *testing.T) {
	m := startSolo(t, "torn", "a")
	seedService(t, m, 1000)
	for i := range 20 {
		expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": fmt.Sprintf("user%02d@example.com", i)}), 201, "allocate")
	}
	m.kill9() // a crash: no shutdown code runs
	<-m.Exited()

	seg := tailSegment(t, m.DataDir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	frames, end := segmentFrames(t, b)
	// The last batch: the frames after the second-to-last commit frame.
	start := int64(32)
	for _, f := range frames[:len(frames)-1] {
		if f.typ == 3 {
			start = f.off + f.size
		}
	}
	batch := append([]byte(nil), b[start:end]...)
	half := batch[:len(batch)/2] // never its commit frame, the batch's last 8 bytes
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(half, end); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(end + int64(len(half))); err != nil { // the file ends mid-frame
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	code, checkOut, last, wm := checkTail(t, m.DataDir)
	if code != 0 || !strings.Contains(checkOut, "torn final batch") || !strings.Contains(checkOut, "no damage found") {
		t.Fatalf("check of a torn final batch: exit %d\n%s", code, checkOut)
	}
	if last != wm {
		t.Fatalf("torn batch: last index %d, watermark %d: the acknowledged log must be whole", last, wm)
	}

	m.start()
	m.waitReady(30 * time.Second)
	if n := strings.Count(m.log(t), "discarded a torn final batch"); n != 1 {
		t.Fatalf("the start logged the discarded torn batch %d times, want 1:\n%s", n, m.log(t))
	}
	for i := range 20 {
		email := fmt.Sprintf("user%02d@example.com", i)
		expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/users/"+url.PathEscape(email)+"?consistency=linearizable"), nil), 200, "read "+email)
	}
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": "after@example.com"}), 201, "write after the torn batch")
	if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	// The torn bytes were cleared: the next start finds nothing to discard.
	m.start()
	m.waitReady(30 * time.Second)
	if n := strings.Count(m.log(t), "discarded a torn final batch"); n != 1 {
		t.Fatalf("a later start found the torn batch again (%d mentions)", n)
	}
	expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/users/after%40example.com?consistency=linearizable"), nil), 200, "read after restart")
}

// TestRecoveryDrillAfterTailDamageOnAMajority is the drill of docs/cluster.md
// "Recovering from a damaged majority": three members hold the same
// acknowledged writes; all stop; two get their tail segment damaged (a
// flipped frame header in the middle, 300 bytes cut off the end). Before,
// the two would elect a leader from their shorter logs and overwrite the
// intact member. Now they refuse to start, wimms check shows which member
// holds the longest intact log, wimms recover makes it the only voter, the
// others rejoin empty, and every acknowledged write is there.
func TestRecoveryDrillAfterTailDamageOnAMajority(t *testing.T) {
	ms := startCluster(t, 3)
	leader := ms[0]
	seedService(t, leader, 1000)
	var acked []string
	for i := range 40 {
		email := fmt.Sprintf("drill%02d@example.com", i)
		expect(t, call(t, "POST", leader.url("/v1/services/sync-1.5/users"), map[string]any{"email": email}), 201, "allocate "+email)
		acked = append(acked, email)
	}
	last := acked[len(acked)-1]
	for _, m := range ms {
		eventually(t, 30*time.Second, m.ID+" applied the last write", func() error {
			a, err := tryCall("GET", m.url("/v1/services/sync-1.5/users/"+url.PathEscape(last)+"?consistency=stale"), nil)
			if err == nil && a.code != 200 {
				err = fmt.Errorf("HTTP %d", a.code)
			}
			return err
		})
	}
	// Followers first: the leader then cannot commit anything they lack.
	for _, m := range []*member{ms[1], ms[2], ms[0]} {
		if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
			t.Fatalf("SIGTERM %s: exit %d", m.ID, code)
		}
	}
	intact := map[string]uint64{}
	for _, m := range ms {
		code, out, l, wm := checkTail(t, m.DataDir)
		if code != 0 || l != wm {
			t.Fatalf("%s before the damage: exit %d, last %d, watermark %d\n%s", m.ID, code, l, wm, out)
		}
		intact[m.ID] = l
	}

	flipMiddleFrameHeader(t, ms[1].DataDir)
	truncateWrittenTail(t, ms[2].DataDir, 300)
	for _, m := range ms[1:] {
		code, out := startDamaged(t, m)
		assertTailDamageRefused(t, m.ID, code, out, m.DataDir)
	}

	// The operator's choice: wimms check on each member.
	best, bestLast := "", uint64(0)
	for _, m := range ms {
		code, out, l, wm := checkTail(t, m.DataDir)
		damaged := m != ms[0]
		if damaged && (code != 1 || !strings.Contains(out, "DAMAGE:") || l >= wm) {
			t.Fatalf("check of damaged %s: exit %d, last %d, watermark %d:\n%s", m.ID, code, l, wm, out)
		}
		if !damaged && (code != 0 || l != intact[m.ID]) {
			t.Fatalf("check of intact %s: exit %d, last %d:\n%s", m.ID, code, l, out)
		}
		if code == 0 && l > bestLast {
			best, bestLast = m.ID, l
		}
	}
	if best != ms[0].ID {
		t.Fatalf("the member to recover from would be %q, want %s", best, ms[0].ID)
	}

	// A damaged member is never promoted.
	if out, code := testutil.RunWimms(t, "recover", "--data-dir", ms[1].DataDir, "--id", ms[1].ID, "--raft-addr", ms[1].RaftAddr); code != 3 {
		t.Fatalf("recover of a damaged member: exit %d, want 3:\n%s", code, out)
	}
	out, code := testutil.RunWimms(t, "recover", "--data-dir", ms[0].DataDir, "--id", ms[0].ID, "--raft-addr", ms[0].RaftAddr)
	if code != 0 || !strings.Contains(out, "is now the only voter") {
		t.Fatalf("recover: exit %d\n%s", code, out)
	}
	ms[0].start()
	ms[0].waitReady(30 * time.Second)
	for _, m := range ms[1:] {
		if err := m.WipeData(); err != nil {
			t.Fatal(err)
		}
		m.start() // with --join ms[0], as launched
	}
	waitConverged(t, ms, 3)
	for _, m := range ms {
		for _, email := range acked {
			eventually(t, 30*time.Second, m.ID+" holds "+email, func() error {
				a, err := tryCall("GET", m.url("/v1/services/sync-1.5/users/"+url.PathEscape(email)+"?consistency=stale"), nil)
				if err == nil && a.code != 200 {
					err = fmt.Errorf("HTTP %d: %s", a.code, a.raw)
				}
				return err
			})
		}
	}
	expect(t, call(t, "POST", ms[2].url("/v1/services/sync-1.5/users"), map[string]any{"email": "after-drill@example.com"}), 201, "write after the drill")
}

// TestSmallDiskRefusedThenSmallerSegments: on a 20 MiB file system a first
// start with 64 MiB segments is refused with one line and leaves nothing
// behind; with --wal-segment-size 4MiB the member runs.
func TestSmallDiskRefusedThenSmallerSegments(t *testing.T) {
	mnt := mountSmallDisk(t, "20m")
	m := newMember(t, "tiny", "a")
	m.DataDir = filepath.Join(mnt, "data")
	code, out := startDamaged(t, m)
	lines := wimmsLines.FindAllString(lastLaunch(out), -1)
	if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "not enough disk space for data dir "+m.DataDir) ||
		!strings.Contains(lines[0], "--wal-segment-size") {
		t.Fatalf("first start on 20 MiB: exit %d, lines %q:\n%s", code, lines, out)
	}
	// The launcher creates the (empty) data dir itself; the member must
	// leave it empty.
	if ents, _ := os.ReadDir(m.DataDir); len(ents) != 0 {
		t.Fatalf("the refused start left %v behind", ents)
	}
	m.Flags = append(m.Flags, "--wal-segment-size", "4MiB")
	m.start()
	m.waitReady(30 * time.Second)
	seedService(t, m, 10)
	expect(t, call(t, "POST", m.url("/v1/services/sync-1.5/users"), map[string]any{"email": "tiny@example.com"}), 201, "allocate")

	// The small segments are remembered: recover (which clears the log, so
	// raft-wal creates a new segment) and the next start both fit on the
	// 20 MiB disk without being told the size again.
	if code := m.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	if out, code := testutil.RunWimms(t, "recover", "--data-dir", m.DataDir, "--id", m.ID, "--raft-addr", m.RaftAddr); code != 0 {
		t.Fatalf("recover on the small disk: exit %d\n%s", code, out)
	}
	m.Flags = slices.DeleteFunc(m.Flags, func(f string) bool { return f == "--wal-segment-size" || f == "4MiB" })
	m.start()
	m.waitReady(30 * time.Second)
	expect(t, call(t, "GET", m.url("/v1/services/sync-1.5/users/tiny@example.com"), nil), 200, "lookup after recover")
}

// mountSmallDisk mounts a tmpfs of size (e.g. "20m") for the test's
// duration: a real file system with a real limit. Skips without root.
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	return mnt
}
