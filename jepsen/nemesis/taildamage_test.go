package nemesis

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// writeWAL makes dataDir/wal a raft-wal log of n entries, written in
// batches of 10 as raft does.
func writeWAL(t *testing.T, dataDir string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dataDir, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Open(filepath.Join(dataDir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i += 10 {
		var batch []*raft.Log
		for j := i; j < i+10 && j <= n; j++ {
			batch = append(batch, &raft.Log{Index: uint64(j), Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d of the test log", j))})
		}
		if err := w.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func lastIndexOf(t *testing.T, dataDir string) uint64 {
	t.Helper()
	w, err := wal.Open(filepath.Join(dataDir, "wal"))
	if err != nil {
		t.Fatalf("reopen the damaged log: %v", err)
	}
	defer w.Close()
	last, err := w.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// Both damages hit the written part of the tail segment, where raft-wal's
// recovery silently drops what follows: the log reopens shorter. (What
// the server makes of that is its business; the nemesis only damages.)
func TestDamageTailShortensTheLogAsRaftWALReadsIt(t *testing.T) {
	for _, mode := range []string{DamageTruncate, DamageFlipHeader} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			writeWAL(t, dir, 200)
			seg, err := tailSegment(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, end, err := walFrames(seg)
			if err != nil || end <= walFileHeaderLen {
				t.Fatalf("intact segment: end %d, %v", end, err)
			}
			detail, err := DamageTail(dir, mode)
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case DamageTruncate:
				if fi, err := os.Stat(seg); err != nil || fi.Size() != end-truncateBytes {
					t.Fatalf("after truncation: %v, %v; want %d bytes", fi.Size(), err, end-truncateBytes)
				}
			case DamageFlipHeader:
				if _, _, err := walFrames(seg); err == nil || !strings.Contains(err.Error(), "unknown frame type") {
					t.Fatalf("after the flip, parsing: %v; want an unknown frame type", err)
				}
			}
			if last := lastIndexOf(t, dir); last >= 200 {
				t.Fatalf("%s (%s): the log still ends at %d; the damage missed the written entries", mode, detail, last)
			}
		})
	}
}

func TestDamageTailRefusesWhatItCannotDamage(t *testing.T) {
	if _, err := DamageTail(t.TempDir(), DamageTruncate); err == nil || !strings.Contains(err.Error(), "no raft-wal segment") {
		t.Fatalf("empty data dir: %v", err)
	}
	dir := t.TempDir()
	writeWAL(t, dir, 5)
	if _, err := DamageTail(dir, "melt"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}
