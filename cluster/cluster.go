package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/wimms-dev/wimms/cluster/routing"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/netguard"
	"github.com/wimms-dev/wimms/store"
)

// Defaults for the zero values of Config's durations.
const (
	DefaultReapAfter      = 72 * time.Hour
	DefaultLeaderWait     = 5 * time.Second
	DefaultForwardTimeout = 15 * time.Second
	// DefaultApplyTimeout is the store's own default (store.Config).
	DefaultApplyTimeout = 10 * time.Second
	// ForwardMargin is what a relay waits beyond the leader's apply
	// timeout: the hop there and back and the leader's own parsing.
	ForwardMargin              = 5 * time.Second
	DefaultReconcileInterval   = time.Second
	DefaultGossipProbeInterval = time.Second
	DefaultGossipSyncInterval  = 5 * time.Second
)

// Config configures one member's membership layer.
type Config struct {
	ID, Zone        string
	HTTPAddr        string   // advertised HTTP host:port of this member
	RaftAddr        string   // advertised Raft address
	GossipBind      string   // host:port for memberlist (TCP+UDP); required
	GossipAdvertise string   // default GossipBind
	Join            []string // HTTP or gossip addresses of existing members
	Store           *store.Store
	Logger          hclog.Logger

	// Bearer tokens for member-to-member calls: a join needs the admin token
	// if one is set, else the API token.
	APIToken, AdminToken string

	// ReapAfter: the leader removes a member gossip has seen failed or left
	// this long (default 72h; tests use seconds).
	ReapAfter time.Duration
	// LeaderWait: how long a forward waits for a leader before answering
	// 503 no-leader (default 5s).
	LeaderWait time.Duration
	// ApplyTimeout is the store's bound on one write's commit (cmd passes
	// --apply-timeout; default DefaultApplyTimeout).
	ApplyTimeout time.Duration
	// ForwardTimeout bounds one forwarded request (default ApplyTimeout +
	// ForwardMargin).
	ForwardTimeout time.Duration

	// ReconcileInterval is the leader loop's period (default 1s).
	ReconcileInterval time.Duration
	// GossipProbeInterval is memberlist's failure-detector period (default
	// 1s); failure is declared a few probe intervals after a member stops
	// answering.
	GossipProbeInterval time.Duration
	// GossipSyncInterval is how often every member re-joins gossip peers
	// it knows of but does not see alive, so that gossip heals after long
	// partitions (default 5s).
	GossipSyncInterval time.Duration

	// PeersFile, when set, is where the addresses of the members gossip has
	// shown are kept across restarts (cmd puts it in the data directory).
	// A restarted member that has no --join (the bootstrap member) or
	// whose peers all restarted too has nobody else to learn their gossip
	// addresses from: the Raft configuration holds only Raft addresses.
	PeersFile string

	// DialTLS, when set, makes every member-to-member HTTP call (forward,
	// join, read index, cluster lookups) HTTPS: it dials addr and completes
	// a mutual TLS handshake (cmd wires tlsconf.Holder.DialContext).
	DialTLS func(ctx context.Context, d *net.Dialer, network, addr string) (*tls.Conn, error)
	// GossipKey, when set (16, 24 or 32 bytes), makes memberlist encrypt and
	// verify every gossip packet: a process without it is never seen.
	GossipKey []byte
	// AuthenticatedJoinOnly: gossip alone never admits a member; only an
	// authenticated HTTP join (member certificate or admin token) adds one.
	// cmd sets it whenever TLS or a gossip key is configured.
	AuthenticatedJoinOnly bool
	// AdmitRaftPeers, when set, is told the member ids another member
	// reported over member-to-member HTTPS (store.Store.AdmitRaftPeers):
	// a member whose configuration is stale then accepts the current
	// leader on its Raft port. cmd sets it with TLS.
	AdmitRaftPeers func(ids []string)
	// GuardMetrics counts gossip packets memberlist dropped (wrong key,
	// garbage); nil counts nothing.
	GuardMetrics *netguard.Metrics
}

// raftStore is everything this package needs of the store, and the only
// way it reaches Raft (*store.Store implements it; tests use a fake Raft
// configuration).
type raftStore interface {
	// RaftStatus is this member's view now: who leads, term, indexes.
	RaftStatus() store.RaftStatus
	// Servers is the Raft configuration; AddServer, RemoveServer and
	// TransferLeadership change it (leader only: store.ErrNotLeader).
	Servers() ([]store.Server, error)
	AddServer(ctx context.Context, srv store.Server) error
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, id string) error
	// ReadIndex is the leader's half of a linearizable read.
	ReadIndex(ctx context.Context) (uint64, error)
	// LeaderCh delivers leadership changes (the latest value is kept);
	// only the leader loop reads it. EstablishLeadership commits the
	// term's no-op, the loop's first step.
	LeaderCh() <-chan bool
	EstablishLeadership(ctx context.Context) error
	// LeaderChanged is closed at the next leader change (a broadcast any
	// number of waiters share): relays wait on it for a leader.
	LeaderChanged() <-chan struct{}
}

var (
	_ raftStore     = (*store.Store)(nil)
	_ routing.Peers = (*peerDirectory)(nil)
)

// Cluster is one member's view of and actions on the membership.
type Cluster struct {
	cfg   Config
	st    raftStore
	log   hclog.Logger
	now   func() time.Time
	peers *registry
	// members is the member-to-member client (joins, status, probes; the
	// router relays over it too).
	members *routing.MemberClient
	// router decides where requests run and carries them to the leader;
	// it finds members' addresses in peers.
	router *routing.Router
	// reconciles counts finished reconcile passes of the leader loop, so
	// a test can wait for "the leader looked again" instead of sleeping.
	reconciles atomic.Uint64
	// leavingAnnounced: AnnounceLeaving has gossiped the leaving flag.
	leavingAnnounced atomic.Bool
	// memberEvents wakes the leader loop when gossip sees a member join,
	// change or go; buffered(1): one pending wake-up stands for any number
	// of events, since a reconcile reads the whole picture afresh.
	memberEvents chan struct{}

	peersFileMu sync.Mutex  // serialises writes of cfg.PeersFile
	peersSaved  []savedPeer // what was last written there

	mu         sync.Mutex
	metaBytes  []byte // this member's gossip metadata, see nodeMeta
	ml         *memberlist.Memberlist
	removed    bool                 // the leader told us we were removed
	tombstones map[string]tombstone // ids this leader removed on purpose
	started    bool
	closed     bool

	loopCtx    context.Context
	stopLoops  context.CancelFunc
	loopsDone  sync.WaitGroup
	closeOnce  sync.Once
	closeError error
}

// New validates cfg and prepares a member; nothing listens until Start.
func New(cfg Config) (*Cluster, error) {
	if cfg.Store == nil {
		return nil, errors.New("cluster: Config.Store is required")
	}
	c, err := newCluster(cfg, cfg.Store)
	if err != nil {
		return nil, err
	}
	// A follower's linearizable reads ask the leader over HTTP.
	cfg.Store.SetRemoteReadIndex(c.router.RemoteReadIndex)
	return c, nil
}

func newCluster(cfg Config, st raftStore) (*Cluster, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("member", cfg.ID)
	c := &Cluster{
		cfg:          cfg,
		st:           st,
		log:          logger,
		now:          time.Now,
		tombstones:   map[string]tombstone{},
		memberEvents: make(chan struct{}, 1),
	}
	c.peers = newRegistry(func() time.Time { return c.now() })
	c.members = routing.NewMemberClient(routing.MemberClientConfig{
		LocalIP: hostIP(cfg.HTTPAddr), DialTLS: cfg.DialTLS, APIToken: cfg.APIToken, AdminToken: cfg.AdminToken})
	meta, err := encodeMeta(nodeMeta{
		ID:          cfg.ID,
		HTTP:        cfg.HTTPAddr,
		Raft:        cfg.RaftAddr,
		Gossip:      cfg.GossipAdvertise,
		Zone:        cfg.Zone,
		Incarnation: newIncarnation(),
	})
	if err != nil {
		return nil, err
	}
	c.metaBytes = meta
	c.loopCtx, c.stopLoops = context.WithCancel(context.Background())
	c.router = routing.New(c.loopCtx, routing.Config{
		ID: cfg.ID, HTTPAddr: cfg.HTTPAddr, RaftAddr: cfg.RaftAddr,
		Store: st, Peers: &peerDirectory{c: c}, Members: c.members,
		LeaderWait: cfg.LeaderWait, ForwardTimeout: cfg.ForwardTimeout,
		Logger: logger, Now: func() time.Time { return c.now() },
	})
	return c, nil
}

func (cfg *Config) normalize() error {
	if cfg.ID == "" {
		return errors.New("cluster: Config.ID is required")
	}
	if cfg.RaftAddr == "" {
		return errors.New("cluster: Config.RaftAddr is required")
	}
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("cluster: Config.HTTPAddr %q: %w", cfg.HTTPAddr, err)
	}
	if _, _, err := net.SplitHostPort(cfg.GossipBind); err != nil {
		return fmt.Errorf("cluster: Config.GossipBind %q: %w", cfg.GossipBind, err)
	}
	if cfg.GossipAdvertise == "" {
		cfg.GossipAdvertise = cfg.GossipBind
	}
	if hostIP(cfg.GossipAdvertise) == nil {
		return fmt.Errorf("cluster: Config.GossipAdvertise %q must be a specific IP and a port (memberlist advertises IPs only)", cfg.GossipAdvertise)
	}
	join := make([]string, 0, len(cfg.Join))
	for _, addr := range cfg.Join {
		hostPort, err := NormalizeJoinAddr(addr)
		if err != nil {
			return fmt.Errorf("cluster: join address %q: %w", addr, err)
		}
		join = append(join, hostPort)
	}
	cfg.Join = join
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	setDefault := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDefault(&cfg.ReapAfter, DefaultReapAfter)
	setDefault(&cfg.LeaderWait, DefaultLeaderWait)
	setDefault(&cfg.ApplyTimeout, DefaultApplyTimeout)
	// The leader may hold a relayed write for its whole apply timeout
	// before answering; a shorter bound here would answer 504 while the
	// leader still works.
	setDefault(&cfg.ForwardTimeout, cfg.ApplyTimeout+ForwardMargin)
	setDefault(&cfg.ReconcileInterval, DefaultReconcileInterval)
	setDefault(&cfg.GossipProbeInterval, DefaultGossipProbeInterval)
	setDefault(&cfg.GossipSyncInterval, DefaultGossipSyncInterval)
	return nil
}

// Start brings gossip up, starts the leader and gossip-sync loops, and
// joins the cluster named by Config.Join. A new member (no Raft state) blocks until it has joined or
// ctx is done; a restarted member joins in the background, because in a
// whole-cluster restart the members it names may not be up yet and it must
// not hold up its own start. Call Close even if Start fails.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("cluster: Start called twice or after Close")
	}
	c.started = true
	c.mu.Unlock()

	ml, err := c.createMemberlist()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = ml.Shutdown()
		return errors.New("cluster: closed during Start")
	}
	c.ml = ml
	c.mu.Unlock()

	c.loadPeers()
	// What a relayed request may wait, for operators reading a 504.
	c.log.Info("relaying to the leader", "forward_timeout", c.cfg.ForwardTimeout, "leader_wait", c.cfg.LeaderWait)

	c.goLoop(c.runLeaderLoop)
	c.goLoop(c.runGossipSync)

	if len(c.cfg.Join) == 0 {
		return nil
	}
	if c.st.RaftStatus().HadState {
		c.goLoop(func(ctx context.Context) {
			if err := c.joinWithRetry(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("rejoin failed", "join", c.cfg.Join, "error", err)
			}
		})
		return nil
	}
	// Close must also interrupt a blocking join.
	joinCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.loopCtx, cancel)
	defer stop()
	return c.joinWithRetry(joinCtx)
}

// goLoop runs fn until Close; it refuses once Close has begun, so that
// Close's Wait never races with an Add.
func (c *Cluster) goLoop(fn func(ctx context.Context)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.loopsDone.Add(1)
	go func() {
		defer c.loopsDone.Done()
		fn(c.loopCtx)
	}()
}

// Close leaves gossip gracefully (so peers mark this member "left" at once
// rather than "failed" after a timeout) and stops every loop and relay
// sender, waiting for them (a batch on its way is answered unknown-outcome,
// one not yet sent no-leader). It does not
// touch the Raft configuration: a restarted member keeps its place.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		ml := c.ml
		c.mu.Unlock()
		c.stopLoops()
		c.loopsDone.Wait()
		c.router.Close()
		if ml != nil {
			// Tell peers this is a graceful leave (shown as "left", not
			// "failed"), then leave.
			if !c.leavingAnnounced.Load() {
				if err := c.refreshMeta(func(m *nodeMeta) { m.Leaving = true }); err == nil {
					if err := ml.UpdateNode(leaveWaitStaying); err != nil {
						c.log.Debug("gossip leaving flag", "error", err)
					}
				}
			}
			wait, someoneStays := c.leaveTimeout()
			if err := ml.Leave(wait); err != nil {
				if someoneStays {
					c.log.Warn("leaving gossip", "error", err)
				} else {
					c.log.Debug("leaving gossip: no peer stays to confirm", "error", err)
				}
			}
			if err := ml.Shutdown(); err != nil {
				c.closeError = fmt.Errorf("cluster: shut gossip down: %w", err)
			}
		}
		c.members.CloseIdleConnections()
	})
	return c.closeError
}

// Router is this member's request router (httpapi.Router) and the
// member-to-member endpoints it serves (InternalRoutes); cmd wires it into
// the HTTP API.
func (c *Cluster) Router() *routing.Router { return c.router }

// peerDirectory is the registry as the router sees it: members' HTTP
// addresses, and what a relayed join taught.
type peerDirectory struct{ c *Cluster }

func (d *peerDirectory) HTTPAddr(id, raftAddr string) (string, bool) {
	if p, ok := d.c.peers.get(id); ok && p.meta.HTTP != "" {
		return p.meta.HTTP, true
	}
	if raftAddr != "" {
		if p, ok := d.c.peers.byRaftAddr(raftAddr); ok && p.meta.HTTP != "" {
			return p.meta.HTTP, true
		}
	}
	return "", false
}

func (d *peerDirectory) Changed() <-chan struct{} { return d.c.peers.changes() }

func (d *peerDirectory) Learn(m wire.Member) {
	d.c.peers.learn(nodeMeta{ID: m.ID, HTTP: m.HTTPAddr, Raft: m.RaftAddr, Gossip: m.GossipAddr, Zone: m.Zone})
}

// GossipAddr is the gossip address this member advertises (with the port
// the kernel chose when GossipBind had port 0, once Start has run).
func (c *Cluster) GossipAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.GossipAdvertise
}

func (c *Cluster) memberlist() *memberlist.Memberlist {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ml
}

// newIncarnation tells a restarted process apart from its previous life in
// gossip metadata, so a removal tombstone does not outlive a restart.
func newIncarnation() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
