package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// Online backup and restore (docs/operations.md "Backups").
//
// Backup file, version 1:
//
//	magic "WIMMSBAK", byte version (1)
//	header: uint64 index, uint64 term, int64 taken_at_ms (big-endian)
//	body:   chunks of (uint32 length, bytes), ended by a zero length; the
//	        bytes are one fsm snapshot (its own format and version inside)
//	trailer: uint32 CRC-32C (Castagnoli) of everything before it
//
// The index is the exact Raft index the state reflects, and the state
// includes everything a leader had committed when the backup was asked for
// (a read index). The chunking lets both sides stream without knowing the
// length; the trailer catches truncation and corruption of the whole file.
// A newer binary keeps reading every older version (readBackupHeader).

var backupMagic = [8]byte{'W', 'I', 'M', 'M', 'S', 'B', 'A', 'K'}

const (
	backupVersionV1 = 1
	backupChunk     = 256 << 10
	// maxBackupChunk bounds one chunk on read so a corrupt length cannot
	// make the reader allocate gigabytes.
	maxBackupChunk = 16 << 20
)

// ErrBadBackup is wrapped by every failure caused by the backup's content.
var ErrBadBackup = errors.New("bad backup")

// BackupInfo is a backup file's header.
type BackupInfo struct {
	Version int       `json:"version"`
	Index   uint64    `json:"index"`
	Term    uint64    `json:"term"`
	TakenAt time.Time `json:"taken_at"`
}

// consistentSnapshot returns the state with the exact index and term it
// reflects. The snapshot is a frozen copy: writing it does not block
// applies.
func (a *fsmAdapter) consistentSnapshot() (io.WriterTo, uint64, uint64) {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	return a.m.snapshot(), a.applied.Load(), a.appliedTerm.Load()
}

// Backup is a consistent snapshot that can be streamed to a file.
type Backup struct {
	Info  BackupInfo
	state io.WriterTo
}

// Backup captures the state once this member has applied everything the
// leader had committed when Backup was called (the linearizable read
// barrier; any member may serve it). Every write acknowledged before the
// call is in it.
func (s *Store) Backup(ctx context.Context) (*Backup, error) {
	if s.closing.Load() {
		return nil, fmt.Errorf("backup: %w", ErrShutdown)
	}
	if err := s.linearizableBarrier(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	st, index, term := s.adapter.consistentSnapshot()
	return &Backup{Info: BackupInfo{Version: backupVersionV1, Index: index, Term: term, TakenAt: s.cfg.Now()}, state: st}, nil
}

// WriteTo streams the backup file.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w, crc: crc32.New(crcTable)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	var hdr [len(backupMagic) + 1 + 24]byte
	copy(hdr[:], backupMagic[:])
	hdr[len(backupMagic)] = backupVersionV1
	binary.BigEndian.PutUint64(hdr[9:], b.Info.Index)
	binary.BigEndian.PutUint64(hdr[17:], b.Info.Term)
	binary.BigEndian.PutUint64(hdr[25:], uint64(b.Info.TakenAt.UnixMilli()))
	if _, err := bw.Write(hdr[:]); err != nil {
		return cw.n, fmt.Errorf("write backup header: %w", err)
	}
	chunks := &chunkWriter{w: bw, buf: make([]byte, 0, backupChunk)}
	if _, err := b.state.WriteTo(chunks); err != nil {
		return cw.n, fmt.Errorf("write backup body: %w", err)
	}
	if err := chunks.close(); err != nil {
		return cw.n, fmt.Errorf("write backup body: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write backup: %w", err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], cw.crc.Sum32())
	if _, err := cw.w.Write(sum[:]); err != nil {
		return cw.n, fmt.Errorf("write backup trailer: %w", err)
	}
	return cw.n + 4, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type countingWriter struct {
	w   io.Writer
	crc hash.Hash32
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc.Write(p[:n])
	c.n += int64(n)
	return n, err
}

type chunkWriter struct {
	w   io.Writer
	buf []byte
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), cap(c.buf)-len(c.buf))
		c.buf = append(c.buf, p[:n]...)
		p = p[n:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(c.buf)))
	if _, err := c.w.Write(l[:]); err != nil {
		return err
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *chunkWriter) close() error {
	if err := c.flush(); err != nil {
		return err
	}
	_, err := c.w.Write([]byte{0, 0, 0, 0})
	return err
}

// hashingReader checksums exactly the bytes handed out.
type hashingReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.crc.Write(p[:n])
	return n, err
}

// chunkReader presents the chunked body as one stream ending at the zero
// length.
type chunkReader struct {
	r    io.Reader
	left uint32
	done bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		var l [4]byte
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return 0, truncated(err, "chunk length")
		}
		c.left = binary.BigEndian.Uint32(l[:])
		if c.left == 0 {
			c.done = true
			return 0, io.EOF
		}
		if c.left > maxBackupChunk {
			return 0, fmt.Errorf("%w: chunk of %d bytes exceeds %d", ErrBadBackup, c.left, maxBackupChunk)
		}
	}
	if uint32(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= uint32(n)
	if err == io.EOF {
		if c.left > 0 {
			return n, truncated(io.ErrUnexpectedEOF, "chunk")
		}
		err = nil
	}
	return n, err
}

func truncated(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated in %s", ErrBadBackup, what)
	}
	return fmt.Errorf("reading backup %s: %w", what, err)
}

// ReadBackup reads and fully verifies a backup (header, every record of the
// state, checksum, end of file) into a new state machine. Any damage is an
// error wrapping ErrBadBackup; nothing is returned half-read.
func ReadBackup(r io.Reader, opts fsm.Options) (BackupInfo, *fsm.FSM, error) {
	hr := &hashingReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(crcTable)}
	info, err := readBackupHeader(hr)
	if err != nil {
		return info, nil, err
	}
	f := fsm.New(opts)
	body := &chunkReader{r: hr}
	if err := f.Restore(body); err != nil {
		if errors.Is(err, ErrBadBackup) || errors.Is(err, fsm.ErrBadEncoding) {
			return info, nil, fmt.Errorf("%w: state at index %d: %w", ErrBadBackup, info.Index, err)
		}
		return info, nil, fmt.Errorf("reading backup state: %w", err)
	}
	if !body.done {
		return info, nil, fmt.Errorf("%w: data after the state", ErrBadBackup)
	}
	want := hr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(hr.r, sum[:]); err != nil {
		return info, nil, truncated(err, "checksum")
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return info, nil, fmt.Errorf("%w: checksum mismatch (file says %08x, content is %08x)", ErrBadBackup, got, want)
	}
	if _, err := hr.r.ReadByte(); err == nil {
		return info, nil, fmt.Errorf("%w: trailing data after the checksum", ErrBadBackup)
	} else if !errors.Is(err, io.EOF) {
		return info, nil, fmt.Errorf("reading backup: %w", err)
	}
	return info, f, nil
}

func readBackupHeader(r io.Reader) (BackupInfo, error) {
	var info BackupInfo
	var pre [len(backupMagic) + 1]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return info, truncated(err, "header")
	}
	if [8]byte(pre[:8]) != backupMagic {
		return info, fmt.Errorf("%w: not a wimms backup (magic %q)", ErrBadBackup, pre[:8])
	}
	info.Version = int(pre[8])
	switch info.Version {
	case backupVersionV1:
		var h [24]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return info, truncated(err, "header")
		}
		info.Index = binary.BigEndian.Uint64(h[0:])
		info.Term = binary.BigEndian.Uint64(h[8:])
		info.TakenAt = time.UnixMilli(int64(binary.BigEndian.Uint64(h[16:]))).UTC()
		return info, nil
	}
	return info, fmt.Errorf("%w: backup version %d is newer than this binary understands (%d)", ErrBadBackup, info.Version, backupVersionV1)
}

// PrepareRestore verifies a backup and writes, into an empty data
// directory, a Raft snapshot of its state whose configuration is one
// voter (memberID at raftAddr). `wimms server` started on that directory
// with the same id and Raft address finds existing state, does not
// bootstrap, and elects itself leader of a new one-member cluster holding
// exactly the backed-up state; other members join it as usual.
func PrepareRestore(backup io.Reader, dataDir, memberID, raftAddr string, logger hclog.Logger) (BackupInfo, error) {
	if memberID == "" || raftAddr == "" {
		return BackupInfo{}, errors.New("restore: member id and raft address are required")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := requireNoRaftState(dataDir); err != nil {
		return BackupInfo{}, err
	}
	info, f, err := ReadBackup(backup, fsm.Options{})
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return info, fmt.Errorf("restore: creating %s: %w", dataDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, snapshotsRetained, logger.Named("snapshots"))
	if err != nil {
		return info, fmt.Errorf("restore: opening snapshot store in %s: %w", dataDir, err)
	}
	// The new cluster's history starts at the backup's index in term 1: its
	// first election is for term 1, and log terms must not go down.
	index := max(info.Index, 1)
	const term = 1
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(memberID), Address: raft.ServerAddress(raftAddr)}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr)) // only encodes peers for the snapshot's legacy field
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return info, fmt.Errorf("restore: creating snapshot: %w", err)
	}
	// The state header says term 0: no entry of the new cluster's terms is
	// applied yet, so its first leader commits one before serving
	// (establishLeadership), as every new leader does.
	snap := &fsmSnapshot{state: f.Snapshot(), index: index, term: 0}
	if err := snap.Persist(sink); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	logger.Info("prepared data directory from backup", "dir", dataDir, "index", info.Index, "member", memberID, "raft_addr", raftAddr)
	return info, nil
}

// requireNoRaftState refuses a directory that already holds a member's
// Raft log or snapshots: restoring over a live member would fork history.
func requireNoRaftState(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err == nil {
		return fmt.Errorf("restore: %s already holds a raft log (raft.db); restore needs an empty data directory", dataDir)
	}
	entries, err := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	if err == nil && len(entries) > 0 {
		return fmt.Errorf("restore: %s already holds raft snapshots; restore needs an empty data directory", dataDir)
	}
	return nil
}
