package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bbolt "go.etcd.io/bbolt"
)

// Every log entry this store writes carries a checksum, because BoltDB keeps
// none per value: one flipped byte in raft.db would otherwise replay as a
// different command without a word. The checksum lives in raft.Log's
// Extensions field (stored by raft-boltdb, unused by raft itself), as
// checksumMarker followed by the big-endian CRC32C of the entry's index,
// term, type and data. Entries written before checksums existed have no
// Extensions and still load; anything else in Extensions that is not a
// valid checksum is damage.
var checksumMarker = [4]byte{'w', 'c', 'k', '1'}

const checksumExtLen = len(checksumMarker) + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func entryChecksum(l *raft.Log) uint32 {
	var hdr [17]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	c := crc32.Update(0, castagnoli, hdr[:])
	return crc32.Update(c, castagnoli, l.Data)
}

func checksumExtension(l *raft.Log) []byte {
	ext := make([]byte, checksumExtLen)
	copy(ext, checksumMarker[:])
	binary.BigEndian.PutUint32(ext[len(checksumMarker):], entryChecksum(l))
	return ext
}

// verifyEntry reports whether l, read back for index idx, is intact and
// whether it carried a checksum at all (old data does not).
func verifyEntry(idx uint64, l *raft.Log) (checked bool, problem string) {
	if l.Index != idx {
		return false, fmt.Sprintf("log entry stored under index %d says index %d", idx, l.Index)
	}
	if len(l.Extensions) == 0 {
		return false, ""
	}
	if len(l.Extensions) != checksumExtLen || !bytes.Equal(l.Extensions[:len(checksumMarker)], checksumMarker[:]) {
		return false, "log entry has a damaged checksum trailer"
	}
	want := binary.BigEndian.Uint32(l.Extensions[len(checksumMarker):])
	if got := entryChecksum(l); got != want {
		return true, fmt.Sprintf("log entry fails its checksum (stored %08x, computed %08x)", want, got)
	}
	return true, ""
}

// checksumLogStore is the durable raft.LogStore with a checksum on every
// entry: added on store, verified and stripped on every read (start-up
// replay, replication to followers, apply of entries no longer cached).
type checksumLogStore struct {
	raft.LogStore
	dataDir string
	// onCorrupt, once set, is told of damage found while the member runs.
	// raft panics when a read it depends on fails, so the member must stop
	// with the named cause before that happens.
	onCorrupt atomic.Pointer[func(error)]
	// mark, when set, is the log watermark (watermark.go) that StoreLogs
	// advances after every durable append; nil when only reading (check).
	mark *watermark
	// commitIndex, once raft runs, reports the commit index it learned, which
	// the watermark records beside the durable index.
	commitIndex atomic.Pointer[func() uint64]
}

// IsMonotonic forwards raft.MonotonicLogStore: raft-wal refuses a gap in
// the log, and raft clears the log after a snapshot install only for a
// store that says it is monotonic.
func (c *checksumLogStore) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func newChecksumLogStore(inner raft.LogStore, dataDir string) *checksumLogStore {
	return &checksumLogStore{LogStore: inner, dataDir: dataDir}
}

func (s *checksumLogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores copies: the caller's entries (which raft and the log
// cache keep using) are left without the extension.
func (s *checksumLogStore) StoreLogs(logs []*raft.Log) error {
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		c := *l
		c.Extensions = checksumExtension(l)
		out[i] = &c
	}
	start := time.Now()
	if err := s.LogStore.StoreLogs(out); err != nil {
		return err
	}
	observeStage(stageLogAppend, time.Since(start))
	if s.mark == nil || len(logs) == 0 {
		return nil
	}
	defer func(start time.Time) { observeStage(stageWatermarkSync, time.Since(start)) }(time.Now())
	// Recorded before returning, so before raft acknowledges or counts any
	// of these entries: every index that could be part of a commit quorum
	// is at or below the durable watermark. Costs one small fsync per
	// batch (docs/decisions.md, "The log watermark").
	var commit uint64
	if fn := s.commitIndex.Load(); fn != nil {
		commit = (*fn)()
	}
	last := logs[len(logs)-1].Index
	return s.mark.set(last, min(commit, last))
}

// DeleteRange lowers the watermark first when the deletion reaches the end
// of the log (a follower dropping conflicting entries, raft clearing the
// log after installing a snapshot): a crash between the two then leaves
// the watermark below the log, never above it.
func (s *checksumLogStore) DeleteRange(lo, hi uint64) error {
	if s.mark != nil && lo > 0 {
		last, err := s.LogStore.LastIndex()
		if err != nil {
			return fmt.Errorf("reading last log index before deleting %d..%d: %w", lo, hi, err)
		}
		if hi >= last {
			if err := s.mark.lower(lo - 1); err != nil {
				return err
			}
		}
	}
	return s.LogStore.DeleteRange(lo, hi)
}

func (s *checksumLogStore) GetLog(idx uint64, l *raft.Log) error {
	_, err := s.getVerified(idx, l)
	if errors.Is(err, ErrCorrupt) {
		if fn := s.onCorrupt.Load(); fn != nil {
			(*fn)(err)
		}
	}
	return err
}

func (s *checksumLogStore) getVerified(idx uint64, l *raft.Log) (checked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptionError{DataDir: s.dataDir, Index: idx, What: "log entry unreadable",
				Err: fmt.Errorf("%v", r)}
		}
	}()
	*l = raft.Log{}
	if err := s.LogStore.GetLog(idx, l); err != nil {
		if errors.Is(err, raft.ErrLogNotFound) || errors.Is(err, bbolt.ErrDatabaseNotOpen) {
			return false, err
		}
		return false, &CorruptionError{DataDir: s.dataDir, Index: idx, What: "log entry unreadable", Err: err}
	}
	checked, problem := verifyEntry(idx, l)
	if problem != "" {
		return checked, &CorruptionError{DataDir: s.dataDir, Index: idx, What: problem}
	}
	l.Extensions = nil
	return checked, nil
}

// LogReport is what verifying a log found.
type LogReport struct {
	First, Last uint64
	Checked     int // entries verified against a checksum
	Unchecked   int // intact-looking entries written before checksums existed
	Problems    []error
}

// verifyLog reads every entry of logs (the checksum store) from first to
// last. With stopAtFirst it returns the first problem as its error (start
// up); otherwise it collects up to maxProblems of them (wimms check).
func verifyLog(s *checksumLogStore, stopAtFirst bool, maxProblems int) (LogReport, error) {
	var rep LogReport
	first, err := s.FirstIndex()
	if err != nil {
		return rep, &CorruptionError{DataDir: s.dataDir, What: "raft log unreadable (first index)", Err: err}
	}
	last, err := s.LastIndex()
	if err != nil {
		return rep, &CorruptionError{DataDir: s.dataDir, What: "raft log unreadable (last index)", Err: err}
	}
	rep.First, rep.Last = first, last
	if last == 0 {
		return rep, nil
	}
	var l raft.Log
	for idx := first; idx <= last; idx++ {
		checked, err := s.getVerified(idx, &l)
		if err == nil {
			if checked {
				rep.Checked++
			} else {
				rep.Unchecked++
			}
			continue
		}
		if errors.Is(err, raft.ErrLogNotFound) {
			err = &CorruptionError{DataDir: s.dataDir, Index: idx, What: "log entry missing from the middle of the log"}
		}
		if stopAtFirst {
			return rep, err
		}
		rep.Problems = append(rep.Problems, err)
		if len(rep.Problems) >= maxProblems {
			break
		}
	}
	return rep, nil
}
