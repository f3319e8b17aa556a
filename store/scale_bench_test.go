package store

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
)

// BenchmarkScale loads WIMMS_SCALE_USERS users (default 100 000) into one
// real member through Raft, then measures what the scale targets of
// docs/benchmarks.md are about:
//
//   - rss_MiB, heap_B/user: after the load and a GC (the process also holds
//     the benchmark's own few MiB); rss_restarted_MiB after the restart;
//   - snapshot_s: a user-requested snapshot (capture + encode + fsync)
//     while writers keep allocating; writes_during_snapshot shows they did;
//   - restart_s: crash, reopen on the same data dir, until Ready (snapshot
//     restore plus log replay plus self-election);
//   - catchup_s: a new member added (as a non-voter) until it has applied the
//     leader's index (the leader's log is compacted, so this is an
//     InstallSnapshot: encode, transfer, persist, restore).
//
// It runs the scenario once per benchmark iteration; use -benchtime 1x:
//
//	WIMMS_SCALE_USERS=1000000 go test ./store/ -run '^$' -bench Scale -benchtime 1x -timeout 60m
//
// WIMMS_SCALE_LOG_STORE picks the log store (default DefaultLogStore).
// GOMEMLIMIT (what `wimms server --memory-limit` sets) applies to the one
// member; it is doubled for the catch-up, when the process holds two.
// Timings use production raft settings; the machine's load shows in them.
func BenchmarkScale(b *testing.B) {
	users := 100_000
	if v := os.Getenv("WIMMS_SCALE_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WIMMS_SCALE_USERS=%q: want a positive integer", v)
		}
		users = n
	}
	for range b.N {
		runScale(b, users, os.Getenv("WIMMS_SCALE_LOG_STORE"))
	}
}

const scaleService = "sync-1.5"

func scaleEmail(i int64) string { return fmt.Sprintf("%032x@api.accounts.firefox.com", i) }

func scaleConfig(b *testing.B, id, logStore string, bootstrap bool) Config {
	return Config{
		ID:        id,
		DataDir:   b.TempDir(),
		RaftBind:  "127.0.0.1:0",
		Bootstrap: bootstrap,
		LogStore:  logStore,
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "scale", Level: hclog.Warn, Output: os.Stderr}),
	}
}

func runScale(b *testing.B, users int, logStore string) {
	cfg := scaleConfig(b, "s0", logStore, true)
	leader, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if leader != nil {
			_ = leader.Close()
		}
	}()
	if err := leader.WaitForLeader(ctxTimeout(b, 30*time.Second)); err != nil {
		b.Fatal(err)
	}
	mustApply(b, leader, fsm.Command{Op: fsm.OpPutService, Service: scaleService, Pattern: fsm.SomeString("{node}/1.5/{uid}"), ReleaseRate: fsm.SomeString("1")})
	for n := range 10 {
		mustApply(b, leader, fsm.Command{Op: fsm.OpAddNode, Service: scaleService, NodeURL: fmt.Sprintf("https://n%d.example", n), Capacity: fsm.SomeInt64(1 << 40)})
	}

	// Load: many concurrent writers keep raft's group-commit batches full
	// (256 entries per fsync'd append and per ApplyBatch).
	b.ResetTimer()
	var next atomic.Int64
	loadStart := time.Now()
	allocate(b, leader, 1024, func() (int64, bool) {
		i := next.Add(1)
		return i, i <= int64(users)
	})
	load := time.Since(loadStart)
	report(b, float64(users)/load.Seconds(), "load_users/s")

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	report(b, float64(ms.HeapAlloc)/float64(users), "heap_B/user")
	report(b, float64(rssBytes(b))/(1<<20), "rss_MiB")

	// Snapshot while writers continue.
	stop := make(chan struct{})
	var during atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		allocate(b, leader, 16, func() (int64, bool) {
			select {
			case <-stop:
				return 0, false
			default:
			}
			during.Add(1)
			return int64(users) + next.Add(1), true
		})
	}()
	snapStart := time.Now()
	if err := leader.raft.Snapshot().Error(); err != nil {
		b.Fatalf("snapshot: %v", err)
	}
	snap := time.Since(snapStart)
	close(stop)
	wg.Wait()
	report(b, snap.Seconds(), "snapshot_s")
	report(b, float64(during.Load()), "writes_during_snapshot")

	// Restart: crash and reopen on the same data dir.
	rcfg := leader.cfg
	rcfg.RaftBind = leader.RaftAddr()
	rcfg.Bootstrap = false
	crash(leader)
	// Nothing may keep the crashed member's state reachable: the restart
	// is measured with one state in memory, as in a fresh process.
	leader = nil
	runtime.GC()
	restartStart := time.Now()
	restarted, err := Open(rcfg)
	if err != nil {
		b.Fatalf("reopen: %v", err)
	}
	defer func() { _ = restarted.Close() }()
	for !restarted.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	report(b, time.Since(restartStart).Seconds(), "restart_s")
	runtime.GC()
	report(b, float64(rssBytes(b))/(1<<20), "rss_restarted_MiB")

	// The joiner's state lives in this process too: give it room under a
	// memory limit (GOMEMLIMIT) meant for one member.
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64/2 {
		debug.SetMemoryLimit(2 * limit)
		defer debug.SetMemoryLimit(limit)
	}

	// Catch-up of a new member by snapshot install.
	jcfg := scaleConfig(b, "s1", logStore, false)
	joiner, err := Open(jcfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = joiner.Close() }()
	target := restarted.AppliedIndex()
	catchStart := time.Now()
	// A non-voter: the transfer is the same InstallSnapshot, but a
	// one-voter leader keeps its quorum while the joiner is busy restoring
	// (as a 3-member cluster's leader would with its other follower).
	if err := restarted.AddNonvoter(ctxTimeout(b, 60*time.Second), joiner.ID(), joiner.RaftAddr()); err != nil {
		b.Fatalf("add non-voter: %v", err)
	}
	if err := joiner.WaitApplied(ctxTimeout(b, 10*time.Minute), target); err != nil {
		b.Fatalf("catch-up: %v", err)
	}
	report(b, time.Since(catchStart).Seconds(), "catchup_s")
	b.StopTimer()
}

// report records a figure and prints it at once: a 10 M run takes many
// minutes, and the benchmark line only appears at its end.
func report(b *testing.B, value float64, unit string) {
	b.ReportMetric(value, unit)
	fmt.Fprintf(os.Stderr, "scale: %s %.3f\n", unit, value)
}

// allocate runs writers goroutines that allocate users while nextUser
// yields them, failing the benchmark on any error.
func allocate(b *testing.B, s *Store, writers int, nextUser func() (int64, bool)) {
	var wg sync.WaitGroup
	var failed atomic.Value
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := nextUser()
				if !ok || failed.Load() != nil {
					return
				}
				res, _, err := s.Apply(context.Background(), fsm.Command{Op: fsm.OpAllocate, Service: scaleService, Email: scaleEmail(i)})
				if err == nil && res.Err != nil {
					err = res.Err
				}
				if err != nil {
					failed.CompareAndSwap(nil, fmt.Errorf("allocate user %d: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

func mustApply(b *testing.B, s *Store, cmd fsm.Command) {
	b.Helper()
	res, _, err := s.Apply(ctxTimeout(b, 10*time.Second), cmd)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err != nil {
		b.Fatalf("%v: %v", cmd.Op, err)
	}
}

// rssBytes is this process's resident set size (Linux).
func rssBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Logf("no RSS: %v", err)
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
