package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft-wal/segment"
)

// raft-wal's tail segment recovery (segment.Writer.recoverTail in v0.4.1)
// reads frames until the first header it cannot decode, a zero header or
// the end of the file, then keeps every batch up to the last commit frame
// and drops the last batch if its CRC fails. That is right for a torn
// final write, and wrong for anything else: one damaged frame header in
// the middle of the segment silently cuts the log there, and every
// complete batch after it is gone. raft-wal cannot tell the two apart
// because it looks no further than the first bad frame.
//
// scanTailSegment is an independent reader of the same on-disk format
// (documented in raft-wal's segment/format.go: a 32-byte file header, then
// 8-byte frame headers {type, 3 reserved zero bytes, length or CRC}, each
// payload padded to 8 bytes, every append batch ending in a commit frame
// carrying the CRC32C of everything written since the previous commit
// frame, the file header included for the first). It keeps what raft-wal
// keeps (a middle batch failing its CRC is left to the per-entry
// checksums), and then looks past the point where it stopped:
// a torn final batch is followed only by zeros (the rest of the
// preallocated file was never written), so a complete batch (a commit
// frame whose CRC matches the bytes since the previous commit-looking
// frame) beyond that point means the segment was damaged, not torn.
const (
	walFileHeaderLen  = 32
	walFrameHeaderLen = 8
	walFrameEntry     = 1
	walFrameIndex     = 2
	walFrameCommit    = 3
)

// tailScan is what scanTailSegment found in one segment file.
type tailScan struct {
	Path string
	// Entries is how many entries the CRC-valid batches hold (the segment's
	// intact log is BaseIndex .. BaseIndex+Entries-1).
	Entries uint64
	// End is the file offset where the last CRC-valid batch ends.
	End int64
	// Unaccounted is how many bytes between End and the last non-zero
	// byte of the file are not part of a valid batch: a torn final batch
	// when Damage is empty.
	Unaccounted int64
	// Damage, when set, says why the bytes after End are not a torn write.
	Damage string
}

func walPad(n uint32) int64 {
	return int64((walFrameHeaderLen - n%walFrameHeaderLen) % walFrameHeaderLen)
}

// scanTailSegment reads the segment file at path.
func scanTailSegment(path string) (tailScan, error) {
	ts := tailScan{Path: path}
	b, err := readWritten(path)
	if err != nil {
		return ts, fmt.Errorf("reading tail segment %s: %w", path, err)
	}
	size := int64(len(b))
	// First as raft-wal reads it: frames until the first header that does
	// not decode (or a zero header, or the end of the file), every batch up
	// to the last commit frame kept, the last batch only if its CRC holds.
	// A middle batch failing its CRC is kept, as raft-wal keeps it: its
	// damaged entry fails the entry checksum when read.
	type commit struct{ end, entries, crcFrom int64 }
	var commits []commit
	off, batchStart, entries := int64(walFileHeaderLen), int64(0), int64(0)
walk:
	for off+walFrameHeaderLen <= size {
		// raft-wal's reader ignores the three reserved bytes of a frame
		// header and counts an entry frame before it knows whether its
		// payload is all there; the scan must keep what raft-wal keeps.
		h := b[off : off+walFrameHeaderLen]
		switch h[0] {
		case walFrameEntry, walFrameIndex:
			if h[0] == walFrameEntry {
				entries++
			}
			n := binary.LittleEndian.Uint32(h[4:])
			next := off + walFrameHeaderLen + int64(n) + walPad(n)
			if next > size {
				break walk
			}
			off = next
		case walFrameCommit:
			commits = append(commits, commit{end: off + walFrameHeaderLen, entries: entries, crcFrom: batchStart})
			off += walFrameHeaderLen
			batchStart = off
		default: // a zero header (end of written data) or an unknown type
			break walk
		}
	}
	// raft-wal checks the last batch's CRC only when no entry frame follows
	// its commit frame: an entry after it means the commit was completed.
	if n := len(commits); n > 0 && commits[n-1].entries == entries {
		c := commits[n-1]
		crcAt := c.end - walFrameHeaderLen
		if crc32.Checksum(b[c.crcFrom:crcAt], castagnoli) != binary.LittleEndian.Uint32(b[crcAt+4:]) {
			commits = commits[:n-1] // a last batch failing its CRC is dropped
		}
	}
	if n := len(commits); n > 0 {
		ts.End, ts.Entries = commits[n-1].end, uint64(commits[n-1].entries)
	}
	last := size
	for last > ts.End && b[last-1] == 0 {
		last--
	}
	if last <= ts.End {
		return ts, nil
	}
	ts.Unaccounted = last - ts.End
	// Look for a complete batch past End: commit-looking frame headers at
	// 8-byte-aligned offsets whose CRC matches the bytes since the previous
	// one. Payload bytes can look like a commit header, but matching a
	// CRC32C by chance is a one in four billion event.
	prev := ts.End
	for p := ts.End + (8-ts.End%8)%8; p+walFrameHeaderLen <= last; p += 8 {
		h := b[p : p+walFrameHeaderLen]
		if h[0] != walFrameCommit || h[1] != 0 || h[2] != 0 || h[3] != 0 {
			continue
		}
		if crc32.Checksum(b[prev:p], castagnoli) == binary.LittleEndian.Uint32(h[4:]) && p > prev {
			ts.Damage = fmt.Sprintf("unreadable frame at offset %d of tail segment %s, followed by a complete batch ending at offset %d",
				ts.End, filepath.Base(path), p+walFrameHeaderLen)
			return ts, nil
		}
		prev = p + walFrameHeaderLen
	}
	return ts, nil
}

// readWritten reads path up to the end of its written data: a segment is
// preallocated (64 MiB by default) and mostly zeros until it fills, and
// nothing after the written data matters to the scan.
func readWritten(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	end := fi.Size()
	for end > 0 {
		from := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-from], from)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		i := n
		for i > 0 && buf[i-1] == 0 {
			i--
		}
		if i > 0 {
			end = from + int64(i)
			break
		}
		end = from
	}
	// Every frame is a multiple of 8 bytes long and starts 8-aligned, so
	// the written data ends on a multiple of 8, and its last bytes can be
	// zeros: a commit frame whose CRC's top byte is 0, an entry's padding.
	// Cutting at the last non-zero byte would cut that frame short and
	// read a complete final batch as torn.
	end = min(fi.Size(), (end+walFrameHeaderLen-1)/walFrameHeaderLen*walFrameHeaderLen)
	b := make([]byte, end)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// walTail scans the tail segment of the open WAL w (the one raft-wal's
// meta db lists as unsealed, else the last one). ok is false when the WAL
// has no segment.
func walTail(w *openedWAL, walDir string) (ts tailScan, base uint64, ok bool, err error) {
	st, err := w.meta.Load(walDir)
	if err != nil {
		return ts, 0, false, fmt.Errorf("reading raft-wal meta db in %s: %w", walDir, err)
	}
	if len(st.Segments) == 0 {
		return ts, 0, false, nil
	}
	tail := st.Segments[len(st.Segments)-1]
	for _, s := range st.Segments {
		if s.SealTime.IsZero() {
			tail = s
		}
	}
	path := filepath.Join(walDir, segment.FileName(tail))
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// A crash while raft-wal rotated: the new tail was listed but not
		// yet written, so it holds nothing to lose (raft-wal's own open has
		// dealt with it).
		return ts, tail.BaseIndex, false, nil
	}
	ts, err = scanTailSegment(path)
	return ts, tail.BaseIndex, true, err
}
