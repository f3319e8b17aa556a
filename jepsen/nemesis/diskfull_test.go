package nemesis

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The member's filesystem really fills: a write into the data directory
// fails with ENOSPC while it is full, and succeeds again once freed.
func TestDiskMountFillsAndFrees(t *testing.T) {
	if err := CheckDiskFull(); err != nil {
		t.Skip(err)
	}
	d := NewDiskMount(filepath.Join(t.TempDir(), "disk", "n1"))
	if err := d.Mount(); err != nil {
		t.Skip("cannot mount a tmpfs here: ", err)
	}
	defer d.Unmount("")
	if err := os.MkdirAll(d.DataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(d.DataDir(), "probe")
	if n, err := d.Fill(); err != nil || n < 64<<20 {
		t.Fatalf("filled %d bytes: %v", n, err)
	}
	if err := os.WriteFile(probe, make([]byte, 8192), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ENOSPC", err)
	}
	if err := d.Free(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probe, make([]byte, 8192), 0o600); err != nil {
		t.Fatalf("write after freeing: %v", err)
	}
	keep := filepath.Join(t.TempDir(), "kept")
	if err := d.Unmount(keep); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keep, "probe")); err != nil {
		t.Fatalf("data not kept: %v", err)
	}
	if _, err := os.Stat(d.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mount point left: %v", err)
	}
}
