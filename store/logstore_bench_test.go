package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// BenchmarkLogStoreAppend measures one durable StoreLogs call (what raft's
// leader does per group commit, and a follower per AppendEntries) on each
// log store, for a single entry (one client) and a batch of 64. Entries
// are 200 bytes, about an encoded allocate command. Run with e.g.
//
//	go test ./store/ -run '^$' -bench LogStoreAppend -benchtime 2000x
func BenchmarkLogStoreAppend(b *testing.B) {
	for _, kind := range []string{LogStoreBolt, LogStoreWAL} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, batch), func(b *testing.B) {
				l := openBenchLogStore(b, b.TempDir(), kind)
				benchAppend(b, l.store, batch)
			})
		}
	}
}

// BenchmarkLogStoreAppendWatermark measures what the log watermark
// (watermark.go) adds to a durable append: the same StoreLogs through the
// checksum store, without and with the watermark's write and fsync.
//
//	go test ./store/ -run '^$' -bench LogStoreAppendWatermark -benchtime 2000x
func BenchmarkLogStoreAppendWatermark(b *testing.B) {
	for _, batch := range []int{1, 64} {
		for _, withMark := range []bool{false, true} {
			b.Run(fmt.Sprintf("wal/batch=%d/watermark=%v", batch, withMark), func(b *testing.B) {
				dir := b.TempDir()
				l := openBenchLogStore(b, dir, LogStoreWAL)
				s := newChecksumLogStore(l.store, dir)
				if withMark {
					var err error
					if s.mark, err = openWatermark(dir, Watermark{}); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = s.mark.Close() })
				}
				benchAppend(b, s, batch)
			})
		}
	}
}

// openBenchLogStore opens a log store of kind in dir, closed when b ends.
func openBenchLogStore(b *testing.B, dir, kind string) *raftLog {
	b.Helper()
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bolt.Close() })
	l, err := openLogStore(dir, kind, bolt, testutil.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.close() })
	return l
}

// benchAppend stores b.N batches of batch 200-byte entries (about an
// encoded allocate command) in logs.
func benchAppend(b *testing.B, logs raft.LogStore, batch int) {
	payload := make([]byte, 200)
	entries := make([]*raft.Log, batch)
	next := uint64(1)
	b.SetBytes(int64(batch * len(payload)))
	b.ResetTimer()
	for range b.N {
		for j := range entries {
			entries[j] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: payload}
			next++
		}
		if err := logs.StoreLogs(entries); err != nil {
			b.Fatal(err)
		}
	}
}
