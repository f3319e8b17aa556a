package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ValidWALSegmentSize checks a raft-wal segment size (0 = the default).
func ValidWALSegmentSize(n int) error {
	if n == 0 || (n >= MinWALSegmentSize && n <= MaxWALSegmentSize) {
		return nil
	}
	return fmt.Errorf("WAL segment size %d is outside %d (1 MiB) .. %d (1 GiB)", n, MinWALSegmentSize, MaxWALSegmentSize)
}

// CheckRoomForLog refuses, before anything is created, a data dir whose
// file system cannot hold the raft-wal segment its first start creates
// (nil when the dir already has one, or keeps its log in raft.db).
func CheckRoomForLog(dataDir, logStore string, segmentSize int) error {
	return checkRoomForSegment(dataDir, logStore, segmentSize, freeBytes)
}

// segmentHeadroom is what a new data dir needs besides its first segment:
// raft.db, raft-wal's meta db and the watermark file start well below it.
const segmentHeadroom = 1 << 20

// checkRoomForSegment refuses a data dir that will need a new raft-wal
// segment (a new data dir, or a wal/ without segments) on a file system
// that cannot hold one: raft-wal creates the segment file and then fails
// to preallocate it, leaving a 0-byte segment behind that the next start
// uses without any reservation. free reports the free bytes of the file
// system holding a path (tests inject it). Nothing is created here.
func checkRoomForSegment(dataDir, logStore string, segmentSize int, free func(string) (uint64, error)) error {
	segmentSize = resolveSegmentSize(filepath.Join(dataDir, walDirName), segmentSize)
	need, err := needsNewSegment(dataDir, logStore)
	if err != nil || !need {
		return err
	}
	probe := dataDir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return nil
		}
		probe = parent
	}
	avail, err := free(probe)
	if err != nil {
		return fmt.Errorf("checking free space for data dir %s: %w", dataDir, err)
	}
	want := uint64(segmentSize) + segmentHeadroom
	if avail < want {
		return fmt.Errorf("not enough disk space for data dir %s: %d bytes free on its file system, a new raft log needs %d "+
			"(one %d-byte raft-wal segment, preallocated, plus 1 MiB); free space or choose a smaller --wal-segment-size (at least %d)",
			dataDir, avail, want, segmentSize, MinWALSegmentSize)
	}
	return nil
}

// needsNewSegment reports whether opening dataDir will make raft-wal create
// a segment: the log will be (or become) raft-wal and wal/ holds none yet.
func needsNewSegment(dataDir, logStore string) (bool, error) {
	if logStore == LogStoreBolt {
		return false, nil
	}
	segs, err := filepath.Glob(filepath.Join(dataDir, walDirName, "*.wal"))
	if err != nil {
		return false, err
	}
	if len(segs) > 0 {
		return false, nil
	}
	if logStore == "" {
		// An existing bolt log stays bolt (openLogStore's rule 2).
		if _, err := os.Stat(filepath.Join(dataDir, walDirName)); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err == nil {
				return false, nil
			}
		}
	}
	return true, nil
}
