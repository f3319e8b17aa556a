package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The log watermark is this member's own durable record of how far its log
// reached: the highest index a StoreLogs call had made durable before it
// returned, so before raft could count the entry towards a commit quorum or
// acknowledge it to a leader. A log that ends below it lost entries that
// may have been acknowledged (a damaged or truncated tail segment, a disk
// that dropped a synced write), which raft-wal's recovery alone would take
// for a torn final batch and drop without a word.
//
// It lives in <data-dir>/log-watermark: two 512-byte slots written in
// turn, each a magic, a sequence number, the durable index, the commit
// index last learned and a CRC32C. A crash while writing one slot leaves
// the other one, which holds an older (so still sound, lower) value.
const (
	watermarkFile     = "log-watermark"
	watermarkSlotSize = 512
	watermarkRecLen   = 4 + 8 + 8 + 8 + 4
)

var watermarkMagic = [4]byte{'w', 'm', 'k', '1'}

// Watermark is what the watermark file holds.
type Watermark struct {
	// Durable is the highest log index made durable (0: none yet).
	Durable uint64
	// Commit is the highest commit index this member had learned when it
	// last wrote the watermark (informational: it never exceeds Durable).
	Commit uint64
	seq    uint64
}

func encodeWatermark(w Watermark) []byte {
	b := make([]byte, watermarkRecLen)
	copy(b, watermarkMagic[:])
	binary.BigEndian.PutUint64(b[4:], w.seq)
	binary.BigEndian.PutUint64(b[12:], w.Durable)
	binary.BigEndian.PutUint64(b[20:], w.Commit)
	binary.BigEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

func decodeWatermark(b []byte) (Watermark, bool) {
	if len(b) < watermarkRecLen || !bytes.Equal(b[:4], watermarkMagic[:]) ||
		binary.BigEndian.Uint32(b[28:]) != crc32.Checksum(b[:28], castagnoli) {
		return Watermark{}, false
	}
	return Watermark{
		seq:     binary.BigEndian.Uint64(b[4:]),
		Durable: binary.BigEndian.Uint64(b[12:]),
		Commit:  binary.BigEndian.Uint64(b[20:]),
	}, true
}

// ReadWatermark reads dataDir's watermark. found is false when the file
// does not exist (a data dir written before watermarks, or a new one).
// Both slots unreadable is damage.
func ReadWatermark(dataDir string) (w Watermark, found bool, err error) {
	path := filepath.Join(dataDir, watermarkFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Watermark{}, false, nil
	}
	if err != nil {
		return Watermark{}, false, fmt.Errorf("reading %s: %w", path, err)
	}
	best, ok := Watermark{}, false
	for off := 0; off+watermarkRecLen <= len(b) && off < 2*watermarkSlotSize; off += watermarkSlotSize {
		if w, valid := decodeWatermark(b[off:]); valid && (!ok || w.seq > best.seq) {
			best, ok = w, true
		}
	}
	if !ok {
		return Watermark{}, true, &CorruptionError{DataDir: dataDir, What: "log watermark " + path + " is unreadable (both slots damaged)"}
	}
	return best, true, nil
}

// watermark is the open watermark file of a running member.
type watermark struct {
	mu   sync.Mutex
	f    *os.File
	cur  Watermark
	path string
}

// openWatermark opens (creating it with initial when missing) dataDir's
// watermark file.
func openWatermark(dataDir string, initial Watermark) (*watermark, error) {
	cur, found, err := ReadWatermark(dataDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, watermarkFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log watermark %s: %w", path, err)
	}
	w := &watermark{f: f, cur: cur, path: path}
	if !found {
		// Both slots, so that a torn first update still leaves one.
		w.cur = initial
		for range 2 {
			if err := w.writeLocked(initial.Durable, initial.Commit); err != nil {
				_ = f.Close()
				return nil, err
			}
		}
		if err := syncDir(dataDir); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return w, nil
}

// set durably records durable and commit as the new watermark.
func (w *watermark) set(durable, commit uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if durable == w.cur.Durable && commit == w.cur.Commit {
		return nil
	}
	return w.writeLocked(durable, commit)
}

// lower moves the watermark down to at most idx (before raft deletes the
// log's tail: a crash between the two must not leave the watermark above
// the log).
func (w *watermark) lower(idx uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur.Durable <= idx {
		return nil
	}
	return w.writeLocked(idx, min(w.cur.Commit, idx))
}

func (w *watermark) writeLocked(durable, commit uint64) error {
	next := Watermark{Durable: durable, Commit: commit, seq: w.cur.seq + 1}
	off := int64(next.seq%2) * watermarkSlotSize
	if _, err := w.f.WriteAt(encodeWatermark(next), off); err != nil {
		return fmt.Errorf("writing log watermark %s: %w", w.path, err)
	}
	if err := datasync(w.f); err != nil {
		return fmt.Errorf("syncing log watermark %s: %w", w.path, err)
	}
	w.cur = next
	return nil
}

func (w *watermark) get() Watermark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

func (w *watermark) Close() error {
	if w == nil {
		return nil
	}
	return w.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync it: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil && cerr != nil && !errors.Is(cerr, io.EOF) {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// withWatermarkClose returns rlog closing mark after the log.
func withWatermarkClose(rlog *raftLog, mark *watermark) *raftLog {
	out := *rlog
	inner := rlog.close
	out.close = func() error { return errors.Join(inner(), mark.Close()) }
	return &out
}
