package nemesis

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Tail damage: a majority of members is stopped with kill -9 and the tail
// segment of each one's raft-wal log is damaged the two ways that were
// found to drop acknowledged writes: the last 300 written bytes cut off (a
// torn write), and one frame header in the middle of the segment flipped.
// Then they are restarted. The harness does not know how the server reacts:
// a member may refuse to start, naming the damage (exit status
// ExitDamagedData), or start and recover what it lost from the others. Both
// are fine so long as every acknowledged write survives (the checker's
// lost_acknowledged_writes); serving a shorter log is what must not happen.

// Choosing the members and bringing back the ones that refuse is the
// runner's (jepsen/taildamage.go); this file only damages a stopped
// member's files.

// ExitDamagedData is the server's exit status for damaged data.
const ExitDamagedData = 3

// Tail damage modes.
const (
	DamageTruncate   = "truncate"
	DamageFlipHeader = "flip-header"
)

// truncateBytes is how much of the written end of the tail segment a
// truncation cuts off.
const truncateBytes = 300

// raft-wal's segment format (hashicorp/raft-wal/segment): a 32-byte file
// header, then frames of an 8-byte header (type, 3 reserved bytes, a
// little-endian uint32: the payload length, or a checksum for commit
// frames) and the payload padded to 8 bytes. Unwritten space is zeros.
const (
	walFileHeaderLen  = 32
	walFrameHeaderLen = 8
	walFrameEntry     = 1
	walFrameIndex     = 2
	walFrameCommit    = 3
)

// walFrame is one frame of a segment: where its header starts, its type.
type walFrame struct {
	off int64
	typ byte
}

// tailSegment is the newest raft-wal segment of a data directory.
func tailSegment(dataDir string) (string, error) {
	segs, err := filepath.Glob(filepath.Join(dataDir, "wal", "*.wal"))
	if err != nil {
		return "", err
	}
	if len(segs) == 0 {
		return "", fmt.Errorf("no raft-wal segment in %s", filepath.Join(dataDir, "wal"))
	}
	slices.Sort(segs) // named by zero-padded base index
	return segs[len(segs)-1], nil
}

// walFrames lists a segment's frames up to the end of what was written.
func walFrames(path string) (frames []walFrame, end int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	off := int64(walFileHeaderLen)
	for off+walFrameHeaderLen <= int64(len(b)) {
		h := b[off : off+walFrameHeaderLen]
		typ := h[0]
		if typ == 0 {
			break // zeros: the end of the written data
		}
		size := int64(walFrameHeaderLen)
		switch typ {
		case walFrameEntry, walFrameIndex:
			n := int64(binary.LittleEndian.Uint32(h[4:8]))
			size += (n + 7) &^ 7
		case walFrameCommit:
		default:
			return frames, off, fmt.Errorf("%s: unknown frame type %d at offset %d (already damaged?)", path, typ, off)
		}
		frames = append(frames, walFrame{off: off, typ: typ})
		off += size
	}
	return frames, off, nil
}

// DamageTail damages the tail segment of dataDir as mode says and
// describes what it did.
func DamageTail(dataDir, mode string) (string, error) {
	seg, err := tailSegment(dataDir)
	if err != nil {
		return "", err
	}
	frames, end, err := walFrames(seg)
	if err != nil {
		return "", err
	}
	name := filepath.Base(seg)
	switch mode {
	case DamageTruncate:
		cut := max(int64(walFileHeaderLen), end-truncateBytes)
		if err := os.Truncate(seg, cut); err != nil {
			return "", fmt.Errorf("truncate %s: %w", seg, err)
		}
		return fmt.Sprintf("%s: written end %d cut to %d", name, end, cut), nil
	case DamageFlipHeader:
		var entries []walFrame
		for _, f := range frames {
			if f.typ == walFrameEntry {
				entries = append(entries, f)
			}
		}
		if len(entries) == 0 {
			return "", fmt.Errorf("%s holds no entry frame", seg)
		}
		f := entries[len(entries)/2]
		file, err := os.OpenFile(seg, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer file.Close()
		var typ [1]byte
		if _, err := file.ReadAt(typ[:], f.off); err != nil {
			return "", fmt.Errorf("read %s: %w", seg, err)
		}
		typ[0] ^= 0x80
		if _, err := file.WriteAt(typ[:], f.off); err != nil {
			return "", fmt.Errorf("write %s: %w", seg, err)
		}
		if err := file.Sync(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: type byte of entry frame %d of %d (offset %d) flipped", name, len(entries)/2+1, len(entries), f.off), nil
	}
	return "", fmt.Errorf("unknown tail damage %q", mode)
}

// ReplaceDir makes dst a copy of src (dst removed first).
func ReplaceDir(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	return copyTree(src, dst)
}
