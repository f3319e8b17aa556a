package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/store"
)

// storageFlags are the server's storage and memory settings.
type storageFlags struct {
	logStore       string
	memoryLimit    string
	walSegmentSize string
}

func (s *storageFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&s.logStore, "log-store", "", fmt.Sprintf("raft log store: %q or %q (default: what the data dir already uses, %q for a new one; naming the other one migrates the log)",
		store.LogStoreWAL, store.LogStoreBolt, store.DefaultLogStore))
	addWALSegmentSizeFlag(fl, &s.walSegmentSize)
	fl.StringVar(&s.memoryLimit, "memory-limit", "", "soft memory limit for the Go runtime (GOMEMLIMIT), e.g. 3GiB or 512MiB; empty leaves GOMEMLIMIT as the environment sets it")
}

func (s *storageFlags) validate() error {
	if !store.ValidLogStore(s.logStore) {
		return fmt.Errorf("--log-store %q: want %q or %q", s.logStore, store.LogStoreWAL, store.LogStoreBolt)
	}
	if _, err := s.segmentSize(); err != nil {
		return err
	}
	if _, err := parseByteSize(s.memoryLimit); err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	return nil
}

// addWALSegmentSizeFlag registers --wal-segment-size (the server's and
// recover's).
func addWALSegmentSizeFlag(fl *pflag.FlagSet, v *string) {
	fl.StringVar(v, "wal-segment-size", "", "size of each new raft-wal log segment file, preallocated when created (1MiB to 1GiB; default: the size of the data dir's newest segment, 64MiB for a new data dir); a new data dir needs this much free space plus 1 MiB")
}

// segmentSize is --wal-segment-size in bytes (0: not given).
func (s *storageFlags) segmentSize() (int, error) {
	return parseWALSegmentSize(s.walSegmentSize)
}

func parseWALSegmentSize(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := parseByteSize(v)
	if err == nil {
		err = store.ValidWALSegmentSize(int(n))
	}
	if err != nil {
		return 0, fmt.Errorf("--wal-segment-size %q: %w", v, err)
	}
	return int(n), nil
}

// applyMemoryLimit sets the runtime's soft memory limit from --memory-limit.
func (s *storageFlags) applyMemoryLimit(logger hclog.Logger) {
	limit, _ := parseByteSize(s.memoryLimit) // validated
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		logger.Info("memory limit set", "bytes", limit)
	}
}

// parseByteSize reads "", a byte count, or a count with a KiB/MiB/GiB/TiB
// (or KB/MB/GB/TB, same powers of two) suffix.
func parseByteSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"KIB", 10}, {"MIB", 20}, {"GIB", 30}, {"TIB", 40}, {"KB", 10}, {"MB", 20}, {"GB", 30}, {"TB", 40}, {"B", 0}}
	num, shift := strings.ToUpper(v), uint(0)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a positive size like 3GiB, 512MiB or 1073741824", v)
	}
	return n << shift, nil
}
