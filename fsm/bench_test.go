package fsm

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Benchmarks use production-shaped data: FxA emails
// ("<32 hex>@api.accounts.firefox.com", 57 bytes), 32-hex client states,
// millisecond keys_changed_at.

const benchNodes = 10

// benchEmail is the i-th FxA-shaped email; like real FxA uids the hex is
// random, so users arrive in random key order.
func benchEmail(i int) string {
	r := splitmix64(uint64(i))
	return fmt.Sprintf("%016x%016x@api.accounts.firefox.com", r.next(), r.next())
}

func benchClientState(i int) string {
	r := splitmix64(uint64(i) + 1<<62)
	return fmt.Sprintf("%016x%016x", r.next(), r.next())
}

func newBenchFSM(b *testing.B) *FSM {
	f := New(Options{})
	mustApply(b, f, Command{Op: OpPutService, TS: t0, Service: "sync-1.5", Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	for i := 0; i < benchNodes; i++ {
		mustApply(b, f, Command{Op: OpAddNode, TS: t0, Service: "sync-1.5", NodeURL: fmt.Sprintf("https://sync-%d.example.com", i), Capacity: SomeInt64(1 << 40)})
	}
	return f
}

func mustApply(b *testing.B, f *FSM, cmd Command) Result {
	res := f.Apply(cmd)
	if res.Err != nil {
		b.Fatalf("%+v: %v", cmd, res.Err)
	}
	return res
}

func benchAllocate(i int) Command {
	return Command{Op: OpAllocate, TS: t0 + int64(i), Service: "sync-1.5", Email: benchEmail(i),
		Generation: SomeInt64(t0), KeysChangedAt: SomeInt64(t0), ClientState: SomeString(benchClientState(i))}
}

// populate allocates users in batches, as the store applies raft batches
// (and so that setup does not pay a publish per user).
// benchAllocations are the allocations of users 0 to n-1.
func benchAllocations(n int) []Command {
	cmds := make([]Command, n)
	for i := range cmds {
		cmds[i] = benchAllocate(i)
	}
	return cmds
}

func populate(b *testing.B, f *FSM, users int) {
	const batchSize = 256
	batch := make([]Command, 0, batchSize)
	for i := 0; i < users; i += batchSize {
		batch = batch[:0]
		for k := i; k < min(i+batchSize, users); k++ {
			batch = append(batch, benchAllocate(k))
		}
		for k, res := range f.ApplyBatch(batch) {
			if res.Err != nil {
				b.Fatalf("%+v: %v", batch[k], res.Err)
			}
		}
	}
}

func BenchmarkApplyAllocate(b *testing.B) {
	f := newBenchFSM(b)
	cmds := benchAllocations(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range cmds {
		if res := f.Apply(cmds[i]); !res.Created {
			b.Fatalf("not created: %+v", res)
		}
	}
}

// BenchmarkApplyBatchAllocate is BenchmarkApplyAllocate through
// ApplyBatch in batches of 64, as the store applies a Raft batch: one
// publish per batch instead of one per command. ns/op is per command.
func BenchmarkApplyBatchAllocate(b *testing.B) {
	const batchSize = 64
	f := newBenchFSM(b)
	cmds := benchAllocations(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < len(cmds); i += batchSize {
		for _, res := range f.ApplyBatch(cmds[i:min(i+batchSize, len(cmds))]) {
			if !res.Created {
				b.Fatalf("not created: %+v", res)
			}
		}
	}
}

// BenchmarkPublish is the publish step alone on a state of 100 k users
// (one service, 10 nodes): what Apply pays on top of the command, not
// counting the copy-on-write its next writes then do.
func BenchmarkPublish(b *testing.B) {
	f := newBenchFSM(b)
	populate(b, f, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.mu.Lock()
		f.publishLocked()
		f.mu.Unlock()
	}
}

func BenchmarkApplyLogin(b *testing.B) {
	const users = 100_000
	f := newBenchFSM(b)
	populate(b, f, users)
	emails, states := benchUsers(users)
	b.Run("unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			u := i % users
			res := f.Apply(Command{Op: OpLogin, TS: t0 + users, Service: "sync-1.5", Email: emails[u],
				Generation: SomeInt64(t0), KeysChangedAt: SomeInt64(t0), ClientState: SomeString(states[u])})
			if res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	})
	// Sub-benchmarks run more than once on the same state (-count, b.N
	// probing): generations must keep rising across runs.
	gen := int64(t0)
	b.Run("generation-bump", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			u := i % users
			gen++
			res := f.Apply(Command{Op: OpLogin, TS: t0 + users, Service: "sync-1.5", Email: emails[u],
				Generation: SomeInt64(gen), KeysChangedAt: SomeInt64(t0), ClientState: SomeString(states[u])})
			if res.Err != nil {
				b.Fatal(res.Err)
			}
		}
	})
}

func BenchmarkGetUser(b *testing.B) {
	const users = 100_000
	f := newBenchFSM(b)
	populate(b, f, users)
	emails := make([]string, users)
	for i := range emails {
		emails[i] = benchEmail(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.GetUser("sync-1.5", emails[i%users]); err != nil {
			b.Fatal(err)
		}
	}
}

var (
	million     *FSM
	millionSnap []byte
	millionOnce sync.Once
)

func millionUsers(b *testing.B) (*FSM, []byte) {
	if testing.Short() {
		b.Skip("builds 1 M users")
	}
	millionOnce.Do(func() {
		million = newBenchFSM(b)
		populate(b, million, 1_000_000)
		var buf bytes.Buffer
		if _, err := million.Snapshot().WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		millionSnap = buf.Bytes()
	})
	return million, millionSnap
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func BenchmarkSnapshot1M(b *testing.B) {
	f, _ := millionUsers(b)
	b.ResetTimer()
	var w countingWriter
	for i := 0; i < b.N; i++ {
		w.n = 0
		if _, err := f.Snapshot().WriteTo(&w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.n), "snapshot-bytes")
}

// BenchmarkSnapshotTake1M is only the part that holds the lock.
func BenchmarkSnapshotTake1M(b *testing.B) {
	f, _ := millionUsers(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = f.Snapshot()
	}
}

func BenchmarkRestore1M(b *testing.B) {
	_, snap := millionUsers(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := New(Options{})
		if err := f.Restore(bytes.NewReader(snap)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap)), "snapshot-bytes")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkHeapPerRecord1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1 M users")
	}
	const users = 1_000_000
	var perRecord, perRecordRestored float64
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		f := newBenchFSM(b)
		populate(b, f, users)
		after := heapInUse()
		perRecord = float64(after-before) / users

		// The same state loaded from a snapshot (trees filled in key
		// order) has a different shape: measure it too.
		var buf bytes.Buffer
		if _, err := f.Snapshot().WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		f = nil
		snap := buf.Bytes()
		buf = bytes.Buffer{}
		before = heapInUse()
		g := New(Options{})
		if err := g.Restore(bytes.NewReader(snap)); err != nil {
			b.Fatal(err)
		}
		after = heapInUse()
		perRecordRestored = float64(after-before) / users
		// Both must stay reachable through the measurement: the snapshot
		// is part of the baseline, the restored state of the result.
		runtime.KeepAlive(snap)
		runtime.KeepAlive(g)
	}
	b.ReportMetric(perRecord, "B/record")
	b.ReportMetric(perRecordRestored, "B/record-restored")
}

// BenchmarkGetUserParallelWithWriter measures GetUser from b.RunParallel
// readers while one goroutine applies logins as fast as it can, each of
// which replaces a user in the tree (the read path's worst case: every
// write touches the structure readers walk). "idle" is the same read load
// with no writer; "batch64" applies through ApplyBatch, 64 commands per
// publish, as the store does. writes/s shows how much the writer got done
// meanwhile.
func BenchmarkGetUserParallelWithWriter(b *testing.B) {
	const users = 100_000
	f := newBenchFSM(b)
	populate(b, f, users)
	emails, states := benchUsers(users)
	// Generations must keep rising across sub-benchmarks and -count runs.
	gen := int64(t0)
	login := func(i int) Command {
		gen++
		u := i % users
		return Command{Op: OpLogin, TS: t0 + users, Service: "sync-1.5", Email: emails[u],
			Generation: SomeInt64(gen), KeysChangedAt: SomeInt64(t0), ClientState: SomeString(states[u])}
	}
	writers := map[string]func(stop <-chan struct{}) int{
		"idle": func(stop <-chan struct{}) int { <-stop; return 0 },
		"apply": func(stop <-chan struct{}) int {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return n
				default:
				}
				if res := f.Apply(login(n * 7919)); res.Err != nil {
					b.Error(res.Err)
					return n
				}
			}
		},
		"batch64": func(stop <-chan struct{}) int {
			batch := make([]Command, 64)
			for n := 0; ; n += len(batch) {
				select {
				case <-stop:
					return n
				default:
				}
				for k := range batch {
					batch[k] = login((n + k) * 7919)
				}
				for _, res := range f.ApplyBatch(batch) {
					if res.Err != nil {
						b.Error(res.Err)
						return n
					}
				}
			}
		},
	}
	for _, mode := range []string{"idle", "apply", "batch64"} {
		b.Run("writer="+mode, func(b *testing.B) {
			stop := make(chan struct{})
			wrote := make(chan int)
			go func() { wrote <- writers[mode](stop) }()
			var seed atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1)) * 104729
				for pb.Next() {
					i++
					if _, err := f.GetUser("sync-1.5", emails[i%users]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			close(stop)
			b.ReportMetric(float64(<-wrote)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// benchUsers are the emails and client states populate gives n users.
func benchUsers(n int) (emails, states []string) {
	emails, states = make([]string, n), make([]string, n)
	for i := range emails {
		emails[i], states[i] = benchEmail(i), benchClientState(i)
	}
	return emails, states
}

// BenchmarkCodec is the log encoding of an allocation and of its answer:
// the leader encodes every command, every replica decodes it to apply it,
// and an idempotent command's result is encoded into the table.
func BenchmarkCodec(b *testing.B) {
	cmd := benchAllocate(1)
	cmd.IdempotencyKey, cmd.RequestHash = "f0e1d2c3-b4a5-4697-8899-aabbccddeeff", 0xfeedface
	res := newBenchFSM(b).Apply(cmd)
	encodedCmd, encodedRes := EncodeCommand(cmd), EncodeResult(res)
	for _, bench := range []struct {
		name string
		run  func() error
	}{
		{"encode-command", func() error { EncodeCommand(cmd); return nil }},
		{"decode-command", func() error { _, err := DecodeCommand(encodedCmd); return err }},
		{"encode-result", func() error { EncodeResult(res); return nil }},
		{"decode-result", func() error { _, err := DecodeResult(encodedRes); return err }},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bench.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
