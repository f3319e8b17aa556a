package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"pgregory.net/rapid"
)

// TestScanAgreesWithRaftWALOnEveryBatchShape appends one batch at a time
// with raft-wal itself and, after each, scans the tail segment: the scan
// must keep exactly the entries raft-wal keeps and find nothing torn. It
// goes on until it has seen a batch whose commit frame ends in a zero byte
// (a CRC32C with a zero top byte, about one batch in 256), the shape that
// once made the scan read a complete final batch as torn: the written data
// then ends in zeros, and the scan's "last non-zero byte" cut the commit
// frame short.
func TestScanAgreesWithRaftWALOnEveryBatchShape(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, walDirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Open(dir, wal.WithSegmentSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	zeroEnded := 0
	for i := uint64(1); i <= 4000 && zeroEnded < 2; i++ {
		batch := []*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d", i*7919))}}
		if i%5 == 0 { // some batches of several entries, of varied lengths
			for j := range i % 4 {
				batch[0].Data = append(batch[0].Data, byte(j))
			}
		}
		if err := w.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		seg := walSegmentOf(t, dataDir)
		ts, err := scanTailSegment(seg)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Entries != i || ts.Unaccounted != 0 || ts.Damage != "" {
			t.Fatalf("after batch %d raft-wal holds %d entries, the scan %+v", i, i, ts)
		}
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if commits, _ := segmentLayout(t, b); b[commits[len(commits)-1]+7] == 0 {
			zeroEnded++
		}
	}
	if zeroEnded == 0 {
		t.Fatal("no batch ended in a zero byte: the case this test is for was never exercised")
	}
}

// TestScanAgreesWithRaftWALOnDamage damages a real segment at random (a
// flipped byte, a zeroed range, a truncation) and reopens it with
// raft-wal: the scan must keep exactly the entries raft-wal's recovery
// keeps, whatever it then says about the bytes beyond.
func TestScanAgreesWithRaftWALOnDamage(t *testing.T) {
	orig := t.TempDir()
	w, err := wal.Open(orig, wal.WithSegmentSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 60; i += 3 {
		var batch []*raft.Log
		for j := range uint64(3) {
			batch = append(batch, &raft.Log{Index: i + j, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i + j)}, int(5+(i*j)%40))})
		}
		if err := w.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(orig, "*.wal"))
	intact, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	written := int64(len(intact))
	for written > 0 && intact[written-1] == 0 {
		written--
	}
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		b := append([]byte(nil), intact...)
		at := rapid.Int64Range(walFileHeaderLen, written+7).Draw(rt, "at")
		switch rapid.SampledFrom([]string{"flip", "zero", "truncate"}).Draw(rt, "damage") {
		case "flip":
			b[at] ^= byte(rapid.IntRange(1, 255).Draw(rt, "mask"))
		case "zero":
			clear(b[at:min(int64(len(b)), at+rapid.Int64Range(1, 200).Draw(rt, "len"))])
		case "truncate":
			b = b[:at]
		}
		for _, name := range []string{filepath.Base(segs[0]), "wal-meta.db"} {
			data := b
			if name == "wal-meta.db" {
				if data, err = os.ReadFile(filepath.Join(orig, name)); err != nil {
					rt.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				rt.Fatal(err)
			}
		}
		ts, err := scanTailSegment(filepath.Join(dir, filepath.Base(segs[0])))
		if err != nil {
			rt.Fatal(err)
		}
		w, err := wal.Open(dir, wal.WithSegmentSize(1<<20))
		if err != nil {
			rt.Skipf("raft-wal refuses the segment (%v): nothing kept to compare", err)
		}
		defer w.Close()
		last, err := w.LastIndex()
		if err != nil {
			rt.Fatal(err)
		}
		if ts.Entries != last {
			rt.Fatalf("raft-wal keeps entries 1..%d, the scan %d (%+v)", last, ts.Entries, ts)
		}
	})
}
