package jepsen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wimms-dev/wimms/jepsen/nemesis"
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
	f, err := tryLock(LockPath, ErrBusy)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tryLock opens path and takes an exclusive flock on it without waiting;
// when another process holds it, the error wraps busy.
func tryLock(path string, busy error) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s held)", busy, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// CleanupIptables deletes every jump to the harness's chains and the chains
// themselves, whatever run left them (`wimms jepsen --cleanup`). It refuses
// while a run is in progress: those rules are that run's. It is safe to
// call when nothing is installed, and it checks that nothing is left.
func CleanupIptables() error {
	if err := nemesis.CheckIptables(); err != nil {
		return err
	}
	release, err := acquireRunLock()
	if err != nil {
		return err
	}
	defer release()
	return nemesis.RemoveChains()
}
