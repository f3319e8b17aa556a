package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/defaults"
)

// Config configures one member's store. Zero durations and sizes take the
// documented defaults.
type Config struct {
	ID      string
	DataDir string
	// LogStore is LogStoreWAL or LogStoreBolt; "" keeps what DataDir holds
	// (DefaultLogStore for a new one). See openLogStore.
	LogStore string
	// WALSegmentSize is raft-wal's segment size in bytes
	// (MinWALSegmentSize..MaxWALSegmentSize; 0: the size of the data dir's
	// newest segment, 64 MiB for a new one). Each segment is preallocated,
	// so a new data dir needs this much free space before it starts.
	WALSegmentSize int
	RaftBind       string // host:port to listen on
	RaftAdvertise  string // defaults to the bound address
	// Bootstrap a one-member cluster iff the data dir holds no Raft state;
	// a restart never bootstraps again.
	Bootstrap bool
	Logger    hclog.Logger
	// ApplyTimeout bounds the wait for commit+apply; then ErrUnknownOutcome.
	ApplyTimeout      time.Duration // default 10s
	SnapshotThreshold uint64        // default 8192
	SnapshotInterval  time.Duration // default 30s
	TrailingLogs      uint64        // default 10240
	// Raft timing; 0 = defaults tuned for a LAN (1000ms/1000ms/500ms/50ms).
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration

	// OnCorruption is called when damaged data is found while the member
	// runs (a log entry failing its checksum on read-back). It should stop
	// the process: raft cannot continue past an unreadable entry. Nil: the
	// error is logged and raft's own failure follows.
	OnCorruption func(error)

	FSMOptions fsm.Options
	// TLS, when set, makes the Raft port mutual TLS (see TransportTLS).
	TLS *TransportTLS
	Now func() time.Time // the proposer's clock (default time.Now)
}

const (
	defaultApplyTimeout       = 10 * time.Second
	defaultSnapshotThreshold  = 8192
	defaultSnapshotInterval   = 30 * time.Second
	defaultTrailingLogs       = 10240
	defaultHeartbeatTimeout   = 1000 * time.Millisecond
	defaultElectionTimeout    = 1000 * time.Millisecond
	defaultLeaderLeaseTimeout = 500 * time.Millisecond
	defaultCommitTimeout      = 50 * time.Millisecond

	// maxAppendEntries is both the group-commit batch (entries per fsync'd
	// append) and the most entries per AppendEntries RPC and per ApplyBatch.
	// Commands are a few hundred bytes, so 256 keeps RPCs small.
	maxAppendEntries  = 256
	snapshotsRetained = 2
	logCacheSize      = 1024
	transportMaxPool  = 5
	transportTimeout  = 10 * time.Second
	// closeTransferWait bounds how long Close waits for a leadership
	// handover before shutting down anyway.
	closeTransferWait = 5 * time.Second
)

func (c *Config) applyDefaults() {
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "store", Level: hclog.Info})
	}
	defaults.UnlessPositive(&c.ApplyTimeout, defaultApplyTimeout)
	defaults.UnlessPositive(&c.SnapshotThreshold, defaultSnapshotThreshold)
	defaults.UnlessPositive(&c.SnapshotInterval, defaultSnapshotInterval)
	defaults.UnlessPositive(&c.TrailingLogs, defaultTrailingLogs)
	defaults.UnlessPositive(&c.HeartbeatTimeout, defaultHeartbeatTimeout)
	defaults.UnlessPositive(&c.ElectionTimeout, defaultElectionTimeout)
	defaults.UnlessPositive(&c.LeaderLeaseTimeout, defaultLeaderLeaseTimeout)
	defaults.UnlessPositive(&c.CommitTimeout, defaultCommitTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var problems []string
	if c.ID == "" {
		problems = append(problems, "ID is empty")
	}
	if c.DataDir == "" {
		problems = append(problems, "DataDir is empty")
	}
	if c.RaftBind == "" {
		problems = append(problems, "RaftBind is empty")
	}
	if !ValidLogStore(c.LogStore) {
		problems = append(problems, fmt.Sprintf("LogStore %q is neither %q nor %q", c.LogStore, LogStoreWAL, LogStoreBolt))
	}
	if err := ValidWALSegmentSize(c.WALSegmentSize); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid store config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Store is one member's replicated state: hashicorp/raft, its durable log,
// snapshots and transport, and the state machine they drive.
type Store struct {
	cfg    Config
	logger hclog.Logger

	raft      *raft.Raft
	transport *raft.NetworkTransport
	tlsStream *tlsStreamLayer // nil without TLS
	bolt      *raftboltdb.BoltStore
	log       *raftLog
	machine   machine
	codec     codec
	adapter   *fsmAdapter

	// logs is the log as raft reads it (behind its cache); appends sees
	// every append on the way to disk (appendhealth.go).
	logs    raft.LogStore
	appends *appendHealth
	// ctrans reads the leader's commit index off incoming replication
	// RPCs into catchUp (caughtup.go).
	ctrans  *commitTransport
	catchUp *catchUp

	hadState bool
	// openTarget is the last log index at Open whose entry the machine will
	// see; a stale read before the member has caught up with a leader waits
	// until it is applied.
	openTarget uint64

	remoteReadIndex atomic.Pointer[remoteReadIndexFunc]
	peerLeaving     atomic.Pointer[func(id string) bool]
	// readIndexes shares one read-index round among concurrent
	// linearizable reads (readindex_batch.go).
	readIndexes indexBatcher

	// establishing holds a token while EstablishLeadership commits a no-op.
	establishing chan struct{}
	// leaderCh is closed and replaced whenever raft reports a leader change.
	leaderCh  atomic.Pointer[chan struct{}]
	observer  *raft.Observer
	metrics   *storeMetrics
	closing   atomic.Bool
	stopCh    chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open starts this member's raft node on cfg.DataDir, restoring any state it
// holds, and bootstraps a one-member cluster when asked to and the directory
// is empty.
func Open(cfg Config) (*Store, error) {
	return open(cfg, fsmMachine{fsm.New(cfg.FSMOptions)}, fsmCodec)
}

// open is Open with the state machine and codec supplied (tests use a fake).
func open(cfg Config, m machine, c codec) (s *Store, err error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("member", cfg.ID)
	if err := createDataDir(cfg); err != nil {
		return nil, err
	}

	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	// Damaged data can make bbolt or raft panic while reading it (a bad page,
	// an undecodable entry inside NewRaft), or fault reading bolt's mmap
	// past a damaged page header (made a panic here by SetPanicOnFault):
	// report that as corruption, not as a stack trace. Runs before the
	// cleanup above.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, panicAsCorruption(cfg.DataDir, r)
		}
	}()

	storage, err := openStorage(cfg, logger, &undo)
	if err != nil {
		return nil, err
	}
	node, err := startRaft(cfg, logger, storage, m, c, &undo)
	if err != nil {
		return nil, err
	}
	if storage.hadState {
		if err := checkRaftIdentity(node.raft, cfg); err != nil {
			return nil, err
		}
	}
	if node.tlsStream != nil {
		node.tlsStream.setConfiguration(func() []raft.Server {
			f := node.raft.GetConfiguration()
			if f.Error() != nil {
				return nil
			}
			return f.Configuration().Servers
		}, cfg.ID)
	}
	if cfg.Bootstrap && !storage.hadState {
		if err := bootstrapOneMember(node.raft, cfg.ID, node.transport.LocalAddr()); err != nil {
			return nil, err
		}
		logger.Info("bootstrapped a new one-member cluster", "raft_addr", node.transport.LocalAddr())
	}

	s = newStore(cfg, logger, storage, node, m, c)
	logger.Info("store open", "raft_addr", node.transport.LocalAddr(), "data_dir", cfg.DataDir, "log_store", storage.log.kind,
		"had_state", storage.hadState, "open_target_index", storage.openTarget, "applied_index", node.adapter.applied.Load())
	return s, nil
}

// createDataDir creates the data dir once there is room for the log in
// it. Before anything is created: a first start that fails half way must
// not leave a data dir that changes the next one (raft-wal would leave a
// 0-byte segment and start without its reservation).
func createDataDir(cfg Config) error {
	if err := checkRoomForSegment(cfg.DataDir, cfg.LogStore, cfg.WALSegmentSize, freeBytes); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir %s: %w", cfg.DataDir, err)
	}
	return nil
}

// undoStack is what open has built so far; run tears it down newest
// first when open fails or panics half way.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u undoStack) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// openStorage opens the data dir's stable store, log and snapshots and
// pushes their closing onto undo as soon as they are open, so that a
// failure or a panic after it (in a seeded bug's dropTail too) closes them.
func openStorage(cfg Config, logger hclog.Logger, undo *undoStack) (*raftStorage, error) {
	storage, err := openRaftStorage(cfg.DataDir, cfg.LogStore, cfg.WALSegmentSize, logger)
	if err != nil {
		return nil, err
	}
	undo.push(func() { _ = storage.log.close(); _ = storage.bolt.Close() })
	if dropTailOnOpen > 0 && storage.hadState {
		if err := dropTail(storage, dropTailOnOpen, logger); err != nil {
			return nil, err
		}
	}
	return storage, nil
}

// raftNode is the running raft instance with the transport pieces the
// Store keeps.
type raftNode struct {
	raft      *raft.Raft
	transport *raft.NetworkTransport
	tlsStream *tlsStreamLayer // nil without TLS
	ctrans    *commitTransport
	catchUp   *catchUp
	adapter   *fsmAdapter
}

// startRaft binds the Raft transport and starts raft on storage, which
// restores the newest snapshot and replays the log. Each piece's shutdown
// goes onto undo as soon as it exists.
func startRaft(cfg Config, logger hclog.Logger, storage *raftStorage, m machine, c codec, undo *undoStack) (*raftNode, error) {
	transport, tlsStream, err := newRaftTransport(cfg, logger)
	if err != nil {
		return nil, err
	}
	undo.push(func() { _ = transport.Close() })
	cu := &catchUp{}
	ctrans := newCommitTransport(transport, func(commit uint64) { cu.observe(commit, time.Now()) })
	undo.push(ctrans.stopForwarding)

	adapter := newFSMAdapter(m, c, logger.Named("fsm"))
	rc, err := raftConfig(cfg, logger)
	if err != nil {
		return nil, err
	}
	r, err := raft.NewRaft(rc, adapter, storage.logs, storage.bolt, storage.snaps, ctrans)
	if err != nil {
		if strings.Contains(err.Error(), "failed to load any existing snapshots") {
			// The CRCs passed (checkSnapshotsAtOpen) but a state failed to
			// decode.
			return nil, &CorruptionError{DataDir: cfg.DataDir, What: "no snapshot could be restored (a snapshot's state does not decode)", Err: err}
		}
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	commitIndex := r.CommitIndex
	storage.durable.commitIndex.Store(&commitIndex)
	undo.push(func() { _ = r.Shutdown().Error() })
	return &raftNode{raft: r, transport: transport, tlsStream: tlsStream, ctrans: ctrans, catchUp: cu, adapter: adapter}, nil
}

// checkRaftIdentity checks a restarted member's raft configuration against
// its id and whether it joins (checkIdentity).
func checkRaftIdentity(r *raft.Raft, cfg Config) error {
	conf := r.GetConfiguration()
	if err := conf.Error(); err != nil {
		return fmt.Errorf("reading the raft configuration: %w", err)
	}
	return checkIdentity(cfg.DataDir, cfg.ID, !cfg.Bootstrap, conf.Configuration())
}

// newStore assembles the Store around the started raft node and starts
// watching it: log corruption, leader changes and raft state.
func newStore(cfg Config, logger hclog.Logger, storage *raftStorage, node *raftNode, m machine, c codec) *Store {
	s := &Store{
		cfg:          cfg,
		logger:       logger,
		raft:         node.raft,
		transport:    node.transport,
		tlsStream:    node.tlsStream,
		bolt:         storage.bolt,
		log:          storage.log,
		logs:         storage.logs,
		appends:      storage.appends,
		ctrans:       node.ctrans,
		catchUp:      node.catchUp,
		machine:      m,
		codec:        c,
		adapter:      node.adapter,
		hadState:     storage.hadState,
		openTarget:   storage.openTarget,
		establishing: make(chan struct{}, 1),
		stopCh:       make(chan struct{}),
	}
	s.watchCorruption(storage.durable)
	lch := make(chan struct{})
	s.leaderCh.Store(&lch)
	s.metrics = newStoreMetrics(s)

	obsCh := make(chan raft.Observation, 64)
	s.observer = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	node.raft.RegisterObserver(s.observer)

	s.wg.Add(1)
	go s.watchObservations(obsCh)
	return s
}

// raftStorage is a member's durable raft state in its data dir: the stable
// store (raft.db), the log (raft-wal or raft.db, see openLogStore), and the
// snapshots.
type raftStorage struct {
	bolt *raftboltdb.BoltStore // the stable store
	log  *raftLog
	// durable is log.store behind checksums (logcheck.go); logs is durable
	// behind raft's cache.
	durable *checksumLogStore
	appends *appendHealth // durable, watched for failing appends
	logs    raft.LogStore
	snaps   raft.SnapshotStore
	// hadState: the dir held raft state already (a restart).
	hadState bool
	// openTarget is the last log index whose entry the machine will see.
	openTarget uint64
}

// openRaftStorage opens (or creates) the raft state in dir.
func openRaftStorage(dir, logStore string, segmentSize int, logger hclog.Logger) (_ *raftStorage, err error) {
	// NoSync stays false: an acknowledged write must survive kill -9; group
	// commit amortises the fsync across concurrent writes.
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, boltOpenError(dir, err)
	}
	// Closed on any way out but success, a panic on damaged data included
	// (open recovers it and may be called again: bolt's file lock must go).
	opened := false
	defer func() {
		if !opened {
			_ = bolt.Close()
		}
	}()
	rlog, err := openLogStoreSized(dir, logStore, bolt, logger, segmentSize)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !opened {
			_ = rlog.close()
		}
	}()
	durable := newChecksumLogStore(rlog.store, dir)
	if _, err := verifyLog(durable, true, 1); err != nil {
		return nil, err
	}
	snaps, err := openSnapshotStore(dir, logger.Named("snapshots"))
	if err != nil {
		return nil, err
	}
	snapState, err := checkSnapshotsAtOpen(dir, snaps, durable, logger)
	if err != nil {
		return nil, err
	}
	// Damage found here means raft never starts on this log: it could not
	// vote or be elected with entries missing that others counted on.
	tail, err := inspectLogTail(dir, rlog, durable, snapState.Index)
	if err != nil {
		return nil, err
	}
	// Every check passed: only now change anything.
	if err := setAsideDamaged(dir, snapState, logger); err != nil {
		return nil, err
	}
	if err := discardTornBatch(tail, logger); err != nil {
		return nil, err
	}
	mark, err := openWatermark(dir, Watermark{Durable: tail.LastIndex})
	if err != nil {
		return nil, err
	}
	durable.mark = mark
	rlog = withWatermarkClose(rlog, mark)
	hadState, err := raft.HasExistingState(durable, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("checking for existing raft state in %s: %w", dir, err)
	}
	openTarget, err := lastMachineIndex(durable)
	if err != nil {
		return nil, err
	}
	// Appends are watched below raft's cache, where they reach the disk.
	appends := newAppendHealth(durable, time.Now)
	logs, err := raft.NewLogCache(logCacheSize, appends)
	if err != nil {
		return nil, fmt.Errorf("creating raft log cache: %w", err)
	}
	opened = true
	return &raftStorage{bolt: bolt, log: rlog, durable: durable, appends: appends, logs: logs, snaps: snaps, hadState: hadState, openTarget: openTarget}, nil
}

// newRaftTransport listens on cfg.RaftBind. With TLS it also returns the
// TLS stream layer, which needs the Raft configuration once raft runs.
func newRaftTransport(cfg Config, logger hclog.Logger) (*raft.NetworkTransport, *tlsStreamLayer, error) {
	plainStream, err := newStreamLayer(cfg.RaftBind, cfg.RaftAdvertise)
	if err != nil {
		return nil, nil, err
	}
	var stream raft.StreamLayer = plainStream
	var tlsStream *tlsStreamLayer
	if cfg.TLS != nil {
		if tlsStream, err = newTLSStreamLayer(plainStream, *cfg.TLS, logger.Named("transport")); err != nil {
			_ = plainStream.Close()
			return nil, nil, err
		}
		stream = tlsStream
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  logger.Named("transport"),
	}), tlsStream, nil
}

// raftConfig is hashicorp/raft's configuration for this member; raft
func raftConfig(cfg Config, logger hclog.Logger) (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = raftLogger{logger.Named("raft")}
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = maxAppendEntries
	// BatchApplyCh stays off: the leader loop already gathers every apply
	// whose sender is blocked on the unbuffered channel into one append, and
	// a buffered channel would break raft's enqueue timeout and strand
	// futures (and their waiters) in the buffer at shutdown.
	rc.BatchApplyCh = false
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("invalid raft config: %w", err)
	}
	return rc, nil
}

// bootstrapOneMember makes a new cluster whose only voter is this member.
func bootstrapOneMember(r *raft.Raft, id string, addr raft.ServerAddress) error {
	boot := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(id),
		Address:  addr,
	}}}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		return fmt.Errorf("bootstrapping one-member cluster: %w", err)
	}
	return nil
}

// lastMachineIndex is the index of the last log entry the state machine
// will see (raft keeps its no-op and barrier entries from the FSM, so a log
// ending in one would otherwise never count as applied), or 0.
func lastMachineIndex(logs raft.LogStore) (uint64, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("reading first raft log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("reading last raft log index: %w", err)
	}
	for idx := last; idx >= first && idx > 0; idx-- {
		var l raft.Log
		if err := logs.GetLog(idx, &l); err != nil {
			return 0, fmt.Errorf("reading raft log entry %d: %w", idx, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return idx, nil
		}
	}
	return 0, nil
}

// Close shuts this member down gracefully: a leader with other voters first
// hands leadership over (bounded wait), then raft stops and the log closes.
// Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close(true) })
	return s.closeErr
}

// close stops the member; graceful hands leadership over first (tests
// simulate a crash without it).
func (s *Store) close(graceful bool) error {
	s.closing.Store(true)
	if graceful {
		s.handOver()
	}
	var errs []error
	// The transport closes as soon as raft is told to stop, before waiting
	// for raft's goroutines: raft waits for its replication and heartbeat
	// goroutines, which may sit in an RPC to a peer that is stopping too.
	// That peer's raft no longer answers, and its transport would hold the
	// RPC until its own raft's goroutines ended (it closes the transport only
	// then): in a whole-cluster stop, members waited on each other for the
	// RPC timeout (10 s) with heartbeats still going. Closing here fails
	// such RPCs at once on both sides.
	shutdown := s.raft.Shutdown()
	if err := s.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing raft transport: %w", err))
	}
	if err := shutdown.Error(); err != nil {
		errs = append(errs, fmt.Errorf("shutting raft down: %w", err))
	}
	s.ctrans.stopForwarding()
	s.raft.DeregisterObserver(s.observer)
	close(s.stopCh)
	s.wg.Wait()
	if err := s.log.close(); err != nil {
		errs = append(errs, fmt.Errorf("closing raft log: %w", err))
	}
	if err := s.bolt.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing raft stable store: %w", err))
	}
	s.logger.Info("store closed", "applied_index", s.AppliedIndex())
	return errors.Join(errs...)
}

// HandOverForShutdown hands leadership to another voter before this member
// stops (bounded); a no-op on a follower or when every other voter is
// leaving too. Close does it as well; calling it first lets the caller
// drain requests between the handover and the end of Raft.
func (s *Store) HandOverForShutdown() { s.handOver() }

// handOver transfers leadership away, waiting at most closeTransferWait,
// and stops waiting as soon as every other voter turns out to be leaving
// as well (a whole-cluster stop, where their leaving flags may arrive after
// the transfer began): nobody would be left to lead.
func (s *Store) handOver() {
	if s.raft.State() != raft.Leader || !s.hasStayingVoters() {
		return
	}
	s.logger.Info("handing leadership over before shutdown")
	done := make(chan error, 1)
	f := s.raft.LeadershipTransfer()
	go func() { done <- f.Error() }()
	deadline := time.NewTimer(closeTransferWait)
	defer deadline.Stop()
	recheck := time.NewTicker(s.cfg.CommitTimeout)
	defer recheck.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				s.logger.Warn("leadership transfer before shutdown failed", "error", err)
			}
			return
		case <-recheck.C:
			if !s.hasStayingVoters() {
				s.logger.Info("every other voter is stopping too: not waiting for the leadership transfer")
				return
			}
		case <-deadline.C:
			s.logger.Warn("leadership transfer before shutdown timed out", "waited", closeTransferWait)
			return
		}
	}
}

// ID is this member's raft id.
func (s *Store) ID() string { return s.cfg.ID }

// RaftAddr is the address other members reach this one at.
func (s *Store) RaftAddr() string { return string(s.transport.LocalAddr()) }

// HadState reports whether the data dir held Raft state at Open.
func (s *Store) HadState() bool { return s.hadState }

// IsLeader reports whether raft considers this member the leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader is the leader this member knows of, or "", "".
func (s *Store) Leader() (id, raftAddr string) {
	addr, lid := s.raft.LeaderWithID()
	return string(lid), string(addr)
}

// State is "leader", "follower", "candidate" or "shutdown".
func (s *Store) State() string { return strings.ToLower(s.raft.State().String()) }

// Term is the current raft term.
func (s *Store) Term() uint64 { return s.raft.CurrentTerm() }

// CommitIndex is the highest log index this member knows to be committed.
func (s *Store) CommitIndex() uint64 { return s.raft.CommitIndex() }

// AppliedIndex is the index of the last entry the state machine reflects.
func (s *Store) AppliedIndex() uint64 { return s.adapter.applied.Load() }

// LastContact is when this member last heard from a leader: now on the
// leader itself, zero if never.
func (s *Store) LastContact() time.Time {
	if s.IsLeader() {
		return time.Now()
	}
	return s.raft.LastContact()
}

// Ready reports whether this member can serve from a current state: it
// knows a leader, appending to its log works, and it either leads with an
// entry of its term applied or has applied the commit index a leader sent
// it within the last heartbeat timeout (caughtup.go). Nothing read from the
// disk at Open matters: a member whose unacknowledged tail a new leader
// replaced is ready as soon as it has what the leader committed.
func (s *Store) Ready() bool {
	check, _ := s.notReadyReason()
	return check == ""
}

// RaftStatus is this member's view of Raft at one moment: what the layer
// above (cluster) routes on and shows, without knowing Raft.
type RaftStatus struct {
	ID           string // this member
	State        string // leader, follower, candidate or shutdown
	LeaderID     string // "" when no leader is known
	LeaderAddr   string // the leader's Raft address
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastContact  time.Time // when this member last heard from a leader: now on the leader, zero if never
	HadState     bool      // the data dir held Raft state at Open
}

// Leading reports whether this member is the leader.
func (st RaftStatus) Leading() bool { return st.State == "leader" }

// LeaderKnown reports whether this member knows a leader.
func (st RaftStatus) LeaderKnown() bool { return st.LeaderID != "" || st.LeaderAddr != "" }

// Meta is what an answer built from this view reports in X-Wimms-* headers
// (see Store.Meta).
func (st RaftStatus) Meta() Meta {
	m := Meta{Index: st.AppliedIndex, MemberID: st.ID, KnownLeader: st.LeaderID != ""}
	switch {
	case st.Leading():
	case st.LastContact.IsZero():
		m.LastContactMs = -1
	default:
		m.LastContactMs = time.Since(st.LastContact).Milliseconds()
	}
	return m
}

// RaftStatus describes this member's view of Raft now.
func (s *Store) RaftStatus() RaftStatus {
	id, addr := s.Leader()
	return RaftStatus{
		ID:           s.cfg.ID,
		State:        s.State(),
		LeaderID:     id,
		LeaderAddr:   addr,
		Term:         s.Term(),
		CommitIndex:  s.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
		LastContact:  s.LastContact(),
		HadState:     s.hadState,
	}
}

// Meta describes this member's view now. LastContactMs is 0 on the leader
// and -1 when this member has never heard from one.
func (s *Store) Meta() Meta {
	return s.metaAt(s.AppliedIndex())
}

func (s *Store) metaAt(index uint64) Meta {
	id, _ := s.Leader()
	m := Meta{Index: index, MemberID: s.cfg.ID, KnownLeader: id != ""}
	if !s.IsLeader() {
		lc := s.raft.LastContact()
		if lc.IsZero() {
			m.LastContactMs = -1
		} else {
			m.LastContactMs = time.Since(lc).Milliseconds()
		}
	}
	return m
}
