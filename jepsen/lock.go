package jepsen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockPath is the file every run locks: runs share the member addresses,
// the ports and the iptables chains, so two at once would break each other
// (one run's cleanup would delete the other's partitions).
var LockPath = filepath.Join(os.TempDir(), "wimms-jepsen.lock")

// ErrBusy: another run holds the lock.
var ErrBusy = errors.New("another wimms jepsen run is in progress")

// acquireRunLock takes the lock without waiting. The kernel releases it if
// the process dies, so a killed run never leaves it behind.
func acquireRunLock() (release func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", LockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held)", ErrBusy, LockPath)
		}
		return nil, fmt.Errorf("lock %s: %w", LockPath, err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
