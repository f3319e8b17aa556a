package store

import (
	"os"
	"syscall"
)

// datasync flushes f's data without its timestamps: the watermark file is
// preallocated and rewritten in place, so its size never changes, and
// fdatasync skips the journal commit an fsync makes for the new mtime.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
