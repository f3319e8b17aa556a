//go:build !(linux || darwin || freebsd)

package store

import "math"

// freeBytes cannot ask the file system here; raft-wal's own preallocation
// error is what the operator sees.
func freeBytes(string) (uint64, error) { return math.MaxUint64, nil }
