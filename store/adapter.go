package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// applyResponse is what the adapter hands back through raft's ApplyFuture.
type applyResponse struct {
	result fsm.Result
	err    error // the entry could not be decoded; the state did not change
	index  uint64
	term   uint64
}

// fsmAdapter is the raft.BatchingFSM around the state machine. raft calls
// ApplyBatch, Snapshot and Restore from a single goroutine; everything the
// rest of the store reads from here is atomic.
type fsmAdapter struct {
	m      machine
	codec  codec
	logger hclog.Logger

	// applied / appliedTerm: index and term of the last entry the machine
	// has seen (commands and configuration changes; raft keeps its no-op
	// and barrier entries from the FSM). Stored only after the machine's
	// state reflects the entry.
	applied     atomic.Uint64
	appliedTerm atomic.Uint64
	// appliedCh is closed and replaced whenever applied advances, so that
	// waiters block on a channel instead of polling.
	appliedCh atomic.Pointer[chan struct{}]

	// stateMu is held while the machine's state and applied move together
	// (ApplyBatch, Restore), so that consistentSnapshot (backup.go) sees a
	// state and the exact index it reflects. Uncontended on the apply path.
	stateMu sync.Mutex

	batches atomic.Uint64 // ApplyBatch calls
	entries atomic.Uint64 // log entries passed to ApplyBatch

	outcomes *outcomeMetrics // logins and allocations as applied (opsmetrics.go)

	// batchMu guards the buffers ApplyBatch reuses from one batch to the
	// next (raft calls it from one goroutine; the lock only makes that a
	// rule): a batch's decoded commands are a few hundred bytes each, and
	// allocating them anew for every batch was a tenth of the write path's
	// garbage.
	batchMu sync.Mutex
	cmdBuf  []fsm.Command
	atBuf   []int
}

var _ raft.BatchingFSM = (*fsmAdapter)(nil)

func newFSMAdapter(m machine, c codec, logger hclog.Logger) *fsmAdapter {
	a := &fsmAdapter{m: m, codec: c, logger: logger, outcomes: newOutcomeMetrics()}
	ch := make(chan struct{})
	a.appliedCh.Store(&ch)
	return a
}

// ApplyBatch applies committed entries in order. raft groups everything that
// committed together (up to MaxAppendEntries) into one call. A machine that
// can apply a batch atomically (batchMachine) gets all its commands at once,
// so readers see the state before the batch or after it; applied advances
// only after that, so a read that waited for index i sees a state ≥ i.
func (a *fsmAdapter) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	if len(logs) == 0 {
		return out
	}
	a.batchMu.Lock()
	defer a.batchMu.Unlock()
	cmds := a.cmdBuf[:0]
	cmdAt := a.atBuf[:0] // index into logs of each cmds entry
	defer func() {
		clear(cmds) // drop the batch's strings; keep the room
		a.cmdBuf, a.atBuf = cmds[:0], cmdAt[:0]
	}()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			// Configuration changes carry no state-machine meaning; they
			// still count as applied (below).
			continue
		}
		cmd, err := a.codec.decode(l.Data)
		if err != nil {
			// Every member decodes the same bytes the same way, so skipping
			// keeps replicas identical; the proposer learns of it through
			// the error, operators through the log.
			a.logger.Error("skipping undecodable log entry", "index", l.Index, "term", l.Term,
				"bytes", len(l.Data), "error", err)
			out[i] = &applyResponse{err: fmt.Errorf("decoding log entry %d: %w", l.Index, err), index: l.Index, term: l.Term}
			continue
		}
		cmds = append(cmds, cmd)
		cmdAt = append(cmdAt, i)
	}
	// stateMu makes (state, applied index) one atomic pair for backups.
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	unknown := a.outcomes.unknownLoginUsers(a.m.reader(), cmds)
	results := a.applyCommands(cmds)
	a.outcomes.observe(cmds, results, unknown)
	resps := make([]applyResponse, len(results)) // one allocation for the batch's answers
	for k, res := range results {
		l := logs[cmdAt[k]]
		resps[k] = applyResponse{result: res, index: l.Index, term: l.Term}
		out[cmdAt[k]] = &resps[k]
	}
	last := logs[len(logs)-1]
	a.batches.Add(1)
	a.entries.Add(uint64(len(logs)))
	a.setApplied(last.Index, last.Term)
	return out
}

// batchMachine is a machine that applies many commands and makes them
// visible to readers together (*fsm.FSM publishes once per batch).
type batchMachine interface {
	ApplyBatch([]fsm.Command) []fsm.Result
}

func (m fsmMachine) ApplyBatch(cmds []fsm.Command) []fsm.Result { return m.f.ApplyBatch(cmds) }

var _ batchMachine = fsmMachine{}

// applyCommands applies cmds in order; it returns once their effect is
// visible to readers.
func (a *fsmAdapter) applyCommands(cmds []fsm.Command) []fsm.Result {
	if len(cmds) == 0 {
		return nil
	}
	if bm, ok := a.m.(batchMachine); ok {
		return bm.ApplyBatch(cmds)
	}
	out := make([]fsm.Result, len(cmds))
	for i, cmd := range cmds {
		out[i] = a.m.Apply(cmd)
	}
	return out
}

// Apply is raft's single-entry path; raft uses ApplyBatch whenever the FSM
// implements it, so this exists only to satisfy raft.FSM.
func (a *fsmAdapter) Apply(l *raft.Log) interface{} {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

func (a *fsmAdapter) setApplied(index, term uint64) {
	a.appliedTerm.Store(term)
	a.applied.Store(index)
	next := make(chan struct{})
	close(*a.appliedCh.Swap(&next))
}

// appliedChanged returns a channel closed at the next advance of applied.
// Load it before checking the condition you wait for.
func (a *fsmAdapter) appliedChanged() <-chan struct{} { return *a.appliedCh.Load() }

// snapshotMagic starts every snapshot this store writes; the version byte
// after it allows the header to grow.
var snapshotMagic = [8]byte{'w', 'i', 'm', 'm', 's', 'n', 'a', 'p'}

const (
	snapshotVersion    = 1
	snapshotHeaderSize = len(snapshotMagic) + 1 + 8 + 8
)

// Snapshot captures the state cheaply on raft's FSM goroutine; Persist then
// writes it while applies continue. The header records the applied index and
// term the state reflects: raft's own snapshot index may be higher (it counts
// no-op entries the machine never sees), and a restore must report exactly
// what the machine holds.
func (a *fsmAdapter) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{
		state: a.m.snapshot(),
		index: a.applied.Load(),
		term:  a.appliedTerm.Load(),
	}, nil
}

// Restore replaces the state with a snapshot's (at startup, or when the
// leader sends one to a lagging follower).
func (a *fsmAdapter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	var hdr [snapshotHeaderSize]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("reading snapshot header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], snapshotMagic[:]) {
		return fmt.Errorf("snapshot header: bad magic %q", hdr[:len(snapshotMagic)])
	}
	if v := hdr[len(snapshotMagic)]; v != snapshotVersion {
		return fmt.Errorf("snapshot header: unsupported version %d", v)
	}
	index := binary.BigEndian.Uint64(hdr[len(snapshotMagic)+1:])
	term := binary.BigEndian.Uint64(hdr[len(snapshotMagic)+9:])
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	if err := a.m.Restore(br); err != nil {
		return fmt.Errorf("restoring snapshot at index %d: %w", index, err)
	}
	a.logger.Info("restored snapshot", "index", index, "term", term)
	a.setApplied(index, term)
	return nil
}

type fsmSnapshot struct {
	state io.WriterTo
	index uint64
	term  uint64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persisting snapshot at index %d: %w", s.index, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("closing snapshot sink at index %d: %w", s.index, err)
	}
	return nil
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr [snapshotHeaderSize]byte
	copy(hdr[:], snapshotMagic[:])
	hdr[len(snapshotMagic)] = snapshotVersion
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+1:], s.index)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic)+9:], s.term)
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	if _, err := s.state.WriteTo(bw); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
