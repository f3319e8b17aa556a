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
				dir := b.TempDir()
				bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = bolt.Close() }()
				l, err := openLogStore(dir, kind, bolt, testutil.Logger(b))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = l.close() }()
				payload := make([]byte, 200)
				logs := make([]*raft.Log, batch)
				next := uint64(1)
				b.SetBytes(int64(batch * len(payload)))
				b.ResetTimer()
				for range b.N {
					for j := range logs {
						logs[j] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: payload}
						next++
					}
					if err := l.store.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
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
				bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = bolt.Close() }()
				l, err := openLogStore(dir, LogStoreWAL, bolt, testutil.Logger(b))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = l.close() }()
				s := newChecksumLogStore(l.store, dir)
				if withMark {
					if s.mark, err = openWatermark(dir, Watermark{}); err != nil {
						b.Fatal(err)
					}
					defer func() { _ = s.mark.Close() }()
				}
				payload := make([]byte, 200)
				logs := make([]*raft.Log, batch)
				next := uint64(1)
				b.SetBytes(int64(batch * len(payload)))
				b.ResetTimer()
				for range b.N {
					for j := range logs {
						logs[j] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: payload}
						next++
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
