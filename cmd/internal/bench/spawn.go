package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// SpawnConfig describes a throwaway loopback cluster for a benchmark.
type SpawnConfig struct {
	Members  int    // how many members, ≥ 1
	Bin      string // the wimms binary
	APIToken string // passed to every member and used by the readiness probe
	// ReadyTimeout bounds the wait for a formed cluster; default 60s.
	ReadyTimeout time.Duration
	Logger       hclog.Logger // nil: discard
	// BasePort, when set, gives the members the ports BasePort,
	// BasePort+1, ... (HTTP, Raft, gossip per member) instead of free ones
	// the kernel picks: for machines where port ranges are shared out.
	BasePort int
	// ServerFlags are more flags for every member (e.g. --pprof).
	ServerFlags []string
	// TokenServer turns on the members' token server with a fresh FxA
	// signing key and secrets in the cluster's directory; TokenKey
	// returns the key (the token workload mints with it).
	TokenServer bool
}

// Cluster is a spawned set of loopback members. Stop it exactly once.
type Cluster struct {
	dir     string
	members []*launch.Member
	log     hclog.Logger
	token   string
	fxaKey  *fxa.SigningKey // with SpawnConfig.TokenServer
}

// stopGrace is how long a member gets to shut down after SIGTERM.
const stopGrace = 10 * time.Second

// Spawn starts cfg.Members members on 127.0.0.1: the first bootstraps, the
// others join its HTTP address. It returns once every member's
// GET /v1/cluster shows all of them as voters and a leader. On failure it
// stops what it started, removes the temporary directory and returns an
// error carrying the tail of the failing member's log.
func Spawn(ctx context.Context, cfg SpawnConfig) (*Cluster, error) {
	if cfg.Members < 1 || cfg.Members > 99 {
		return nil, fmt.Errorf("spawn: members %d: want 1..99", cfg.Members)
	}
	if cfg.Bin == "" {
		return nil, errors.New("spawn: no wimms binary given")
	}
	if _, err := os.Stat(cfg.Bin); err != nil {
		return nil, fmt.Errorf("spawn: wimms binary: %w", err)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	dir, err := os.MkdirTemp("", "wimms-bench-")
	if err != nil {
		return nil, fmt.Errorf("spawn: temp dir: %w", err)
	}
	c := &Cluster{dir: dir, log: cfg.Logger, token: cfg.APIToken}
	ports, err := spawnPorts(cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn: %w", err)
	}
	var flags []string
	if cfg.APIToken != "" {
		flags = []string{"--api-token", cfg.APIToken}
	}
	if cfg.TokenServer {
		key, tokenFlags, err := tokenServerFiles(dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("spawn: %w", err)
		}
		c.fxaKey = key
		flags = append(flags, tokenFlags...)
	}
	flags = append(flags, cfg.ServerFlags...)
	for i := 0; i < cfg.Members; i++ {
		id := "m" + strconv.Itoa(i+1)
		mdir := filepath.Join(dir, id)
		p := ports[3*i:]
		c.members = append(c.members, &launch.Member{
			ID:         id,
			Bin:        cfg.Bin,
			HTTPAddr:   "127.0.0.1:" + strconv.Itoa(p[0]),
			RaftAddr:   "127.0.0.1:" + strconv.Itoa(p[1]),
			GossipAddr: "127.0.0.1:" + strconv.Itoa(p[2]),
			DataDir:    filepath.Join(mdir, "data"),
			LogPath:    filepath.Join(mdir, "member.log"),
			Flags:      flags,
			Logger:     cfg.Logger,
		})
	}
	if err := c.start(ctx, cfg); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, cfg SpawnConfig) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	first := c.members[0]
	if err := first.Start(); err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	// The others join through the first, which must lead before it can add them.
	if err := c.waitFormed(ctx, first, 1); err != nil {
		return err
	}
	for _, m := range c.members[1:] {
		m.SetJoin([]string{first.HTTPAddr})
		if err := m.Start(); err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
	}
	for _, m := range c.members {
		if err := c.waitFormed(ctx, m, len(c.members)); err != nil {
			return err
		}
	}
	c.log.Info("cluster ready", "members", len(c.members), "dir", c.dir)
	return nil
}

// waitFormed polls m's GET /v1/cluster until it shows a leader and at
// least voters voters, m exits, or ctx ends.
func (c *Cluster) waitFormed(ctx context.Context, m *launch.Member, voters int) error {
	api := client.New("http://"+m.HTTPAddr, client.WithToken(c.token), client.WithTimeout(2*time.Second))
	const tailBytes = 3000
	var last string
	for {
		select {
		case <-m.Exited():
			return fmt.Errorf("spawn %s: member exited before the cluster formed (%v); log tail:\n%s", m.ID, m.ExitErr(), m.LogTail(tailBytes))
		default:
		}
		view, _, err := api.Cluster(ctx)
		if err == nil {
			n := 0
			for _, mm := range view.Members {
				if mm.Voter {
					n++
				}
			}
			if view.Leader != nil && n >= voters {
				return nil
			}
			last = fmt.Sprintf("leader known: %v, voters: %d of %d", view.Leader != nil, n, voters)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("spawn %s: cluster not formed (%s): %w; log tail:\n%s", m.ID, last, ctx.Err(), m.LogTail(tailBytes))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TokenKey is the private key whose JWKS the members trust (nil unless
// spawned with TokenServer).
func (c *Cluster) TokenKey() *fxa.SigningKey { return c.fxaKey }

// HTTPAddrs are the members' HTTP addresses, first member first.
func (c *Cluster) HTTPAddrs() []string {
	addrs := make([]string, len(c.members))
	for i, m := range c.members {
		addrs[i] = m.HTTPAddr
	}
	return addrs
}

// MembersCPU is the CPU time the members' current processes have used
// (Config.MembersCPU). A member that is not running is an error: its
// restarted process would start counting from zero.
func (c *Cluster) MembersCPU() (time.Duration, error) {
	var total time.Duration
	for _, m := range c.members {
		pid := m.PID()
		if pid == 0 {
			return 0, fmt.Errorf("cpu time of %s: not running", m.ID)
		}
		d, err := processCPU(pid)
		if err != nil {
			return 0, fmt.Errorf("cpu time of %s: %w", m.ID, err)
		}
		total += d
	}
	return total, nil
}

// Stop sends every member SIGTERM, SIGKILLs any still running after 10 s,
// and removes the temporary directory. It reports members that had to be
// killed or exited with an error: a member must shut down cleanly on
// SIGTERM (docs/api.md), so either is worth knowing.
func (c *Cluster) Stop() error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m.Exited() == nil {
			continue // never started
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stopMember(m); err != nil {
				c.log.Warn("member did not stop cleanly", "id", m.ID, "error", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

func stopMember(m *launch.Member) error {
	if !m.Running() {
		if err := m.ExitErr(); err != nil {
			return fmt.Errorf("%s had already exited: %w", m.ID, err)
		}
		return nil
	}
	if err := m.Stop(stopGrace); err != nil {
		return err
	}
	if err := m.ExitErr(); err != nil {
		return fmt.Errorf("%s: exit after SIGTERM: %w", m.ID, err)
	}
	return nil
}

// spawnPorts are three ports per member: from BasePort on when it is set,
// else free ones.
func spawnPorts(cfg SpawnConfig) ([]int, error) {
	n := 3 * cfg.Members
	if cfg.BasePort <= 0 {
		return launch.FreePorts(n)
	}
	if cfg.BasePort+n-1 > 65535 {
		return nil, fmt.Errorf("base port %d: %d ports do not fit below 65536", cfg.BasePort, n)
	}
	ports := make([]int, n)
	for i := range ports {
		ports[i] = cfg.BasePort + i
	}
	return ports, nil
}
