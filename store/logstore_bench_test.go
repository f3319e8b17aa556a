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
