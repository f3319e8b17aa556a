package nemesis

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Disk-full faults. With `disk-full` in the nemesis, each member's data
// directory lives on its own size-limited tmpfs (a real filesystem with a
// real limit: writes beyond it fail with ENOSPC, as on a full disk). The
// fault fills the member's filesystem with a filler file next to the data
// directory; the heal deletes it. Nothing else is touched: the server sees
// exactly what it would see on a full disk.

// DiskSize is each member's filesystem. A 5-minute run writes a few MB of
// Raft log and snapshots; the rest is headroom, filled by the fault.
const DiskSize = "96m"

const fillerName = "jepsen-disk-filler"

// CheckDiskFull says why disk-full faults cannot run here, or nil: they
// mount filesystems, which needs root.
func CheckDiskFull() error {
	if os.Geteuid() != 0 {
		return errors.New("disk-full needs root (it mounts a size-limited tmpfs per member)")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		return fmt.Errorf("disk-full needs mount: %w", err)
	}
	return nil
}

// DiskMount is the filesystem of one member: the member's data directory
// is data inside it, and the filler sits beside it.
type DiskMount struct {
	dir     string
	mounted bool
}

// NewDiskMount is the filesystem to be mounted on dir (see Mount).
func NewDiskMount(dir string) *DiskMount { return &DiskMount{dir: dir} }

// DataDir is the member's data directory inside the filesystem.
func (d *DiskMount) DataDir() string { return filepath.Join(d.dir, "data") }

// Mount mounts the size-limited tmpfs on the directory.
func (d *DiskMount) Mount() error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d.dir, err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+DiskSize+",mode=0700", "tmpfs", d.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount a %s tmpfs on %s: %v: %s", DiskSize, d.dir, err, strings.TrimSpace(string(out)))
	}
	d.mounted = true
	return nil
}

// Fill writes the filler until the filesystem is full. It returns how
// many bytes it wrote.
func (d *DiskMount) Fill() (int64, error) {
	f, err := os.OpenFile(filepath.Join(d.dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create filler: %w", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var written int64
	for {
		n, err := f.Write(chunk)
		written += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			return written, fmt.Errorf("fill %s: %w", d.dir, err)
		}
	}
	// The last bytes a page at a time: nothing is left to write into.
	for _, size := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			n, err := f.Write(chunk[:size])
			written += int64(n)
			if err != nil {
				break
			}
		}
	}
	return written, nil
}

// Free deletes the filler: the heal.
func (d *DiskMount) Free() error {
	if err := os.Remove(filepath.Join(d.dir, fillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove filler: %w", err)
	}
	return nil
}

// Unmount drops the filesystem. keepIn, when not empty, first receives a
// copy of the member's data (evidence of an invalid run).
func (d *DiskMount) Unmount(keepIn string) error {
	if !d.mounted {
		return nil
	}
	var errs []error
	if keepIn != "" {
		if err := copyTree(d.DataDir(), keepIn); err != nil {
			errs = append(errs, fmt.Errorf("keep data of %s: %w", d.dir, err))
		}
	}
	if err := syscall.Unmount(d.dir, 0); err != nil {
		if err := syscall.Unmount(d.dir, syscall.MNT_DETACH); err != nil {
			return errors.Join(append(errs, fmt.Errorf("unmount %s: %w", d.dir, err))...)
		}
	}
	d.mounted = false
	if err := os.Remove(d.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
