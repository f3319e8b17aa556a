package main

import "testing"

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{"": 0, "1024": 1024, "3GiB": 3 << 30, "512mib": 512 << 20, "2 GB": 2 << 30, "10B": 10}
	for in, want := range good {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "0", "3XB", "GiB", "1.5GiB", "99999999999TiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestStorageFlagsRejectUnknownLogStore(t *testing.T) {
	s := storageFlags{logStore: "rocksdb"}
	if err := s.validate(); err == nil {
		t.Fatal("--log-store rocksdb accepted")
	}
	s = storageFlags{logStore: "wal", memoryLimit: "lots"}
	if err := s.validate(); err == nil {
		t.Fatal("--memory-limit lots accepted")
	}
}

func TestWALSegmentSizeBounds(t *testing.T) {
	for in, want := range map[string]int{"64MiB": 64 << 20, "1MiB": 1 << 20, "1GiB": 1 << 30, "": 0} {
		s := storageFlags{walSegmentSize: in}
		got, err := s.segmentSize()
		if err != nil || got != want || s.validate() != nil {
			t.Errorf("--wal-segment-size %q = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"512KiB", "2GiB", "big"} {
		s := storageFlags{walSegmentSize: in}
		if err := s.validate(); err == nil {
			t.Errorf("--wal-segment-size %q accepted", in)
		}
	}
}
