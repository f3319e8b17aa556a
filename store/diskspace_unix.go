//go:build linux || darwin || freebsd

package store

import "syscall"

// freeBytes is the space available to this (unprivileged) process on the
// file system holding path.
func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:unconvert // field types differ by platform
}
