package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// SpawnConfig describes a throwaway loopback cluster for a benchmark.
type SpawnConfig struct {
	Members  int    // how many members, ≥ 1
	Bin      string // the wimms binary
	APIToken string // passed to every member and used by the readiness probe
	// ReadyTimeout bounds the wait for a formed cluster; default 60s.
	ReadyTimeout time.Duration
	Logger       hclog.Logger // nil: discard
}

// Cluster is a spawned set of loopback members. Stop it exactly once.
type Cluster struct {
	dir     string
	members []*spawned
	log     hclog.Logger
	token   string
}

type spawned struct {
	id                         string
	httpAddr, raftAddr, gossip string
	logPath                    string
	cmd                        *exec.Cmd
	logFile                    *os.File
	exited                     chan struct{} // closed when the process has exited
	exitErr                    error         // valid after exited is closed
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
	base, err := freePortBlock(3 * cfg.Members)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn: %w", err)
	}
	for i := 0; i < cfg.Members; i++ {
		p := base + 3*i
		c.members = append(c.members, &spawned{
			id:       "m" + strconv.Itoa(i+1),
			httpAddr: "127.0.0.1:" + strconv.Itoa(p),
			raftAddr: "127.0.0.1:" + strconv.Itoa(p+1),
			gossip:   "127.0.0.1:" + strconv.Itoa(p+2),
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
	if err := c.launch(first, cfg, ""); err != nil {
		return err
	}
	// The others join through the first, which must lead before it can add them.
	if err := c.waitFormed(ctx, first, 1); err != nil {
		return err
	}
	for _, m := range c.members[1:] {
		if err := c.launch(m, cfg, first.httpAddr); err != nil {
			return err
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

// memberEnv drops WIMMS_* variables: the server reads any flag from the
// environment, and a stray WIMMS_JOIN or WIMMS_DATA_DIR in the caller's
// shell would silently change what the spawned cluster is.
func memberEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WIMMS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (c *Cluster) launch(m *spawned, cfg SpawnConfig, join string) error {
	mdir := filepath.Join(c.dir, m.id)
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return fmt.Errorf("spawn %s: %w", m.id, err)
	}
	m.logPath = filepath.Join(mdir, "member.log")
	f, err := os.Create(m.logPath)
	if err != nil {
		return fmt.Errorf("spawn %s: log file: %w", m.id, err)
	}
	m.logFile = f
	args := []string{"server", "--id", m.id, "--data-dir", filepath.Join(mdir, "data"),
		"--http-addr", m.httpAddr, "--raft-addr", m.raftAddr, "--gossip-addr", m.gossip}
	if join != "" {
		args = append(args, "--join", join)
	}
	if cfg.APIToken != "" {
		args = append(args, "--api-token", cfg.APIToken)
	}
	m.cmd = exec.Command(cfg.Bin, args...)
	m.cmd.Env = memberEnv()
	m.cmd.Stdout, m.cmd.Stderr = f, f
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("spawn %s: starting %s: %w", m.id, cfg.Bin, err)
	}
	m.exited = make(chan struct{})
	go func() {
		m.exitErr = m.cmd.Wait()
		close(m.exited)
	}()
	c.log.Info("member started", "id", m.id, "pid", m.cmd.Process.Pid, "http", m.httpAddr, "raft", m.raftAddr, "join", join)
	return nil
}

// clusterView is the part of GET /v1/cluster the launcher checks.
type clusterView struct {
	Leader  *struct{ ID string } `json:"leader"`
	Members []struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	} `json:"members"`
}

// waitFormed polls m's GET /v1/cluster until it shows a leader and at
// least voters voters, m exits, or ctx ends.
func (c *Cluster) waitFormed(ctx context.Context, m *spawned, voters int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("spawn %s: member exited before the cluster formed (%v); log tail:\n%s", m.id, m.exitErr, tail(m.logPath))
		default:
		}
		view, err := c.fetchCluster(ctx, client, m.httpAddr)
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
			return fmt.Errorf("spawn %s: cluster not formed (%s): %w; log tail:\n%s", m.id, last, ctx.Err(), tail(m.logPath))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) fetchCluster(ctx context.Context, client *http.Client, addr string) (clusterView, error) {
	var v clusterView
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/cluster", nil)
	if err != nil {
		return v, fmt.Errorf("building cluster request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return v, fmt.Errorf("GET /v1/cluster: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return v, fmt.Errorf("reading /v1/cluster: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /v1/cluster: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("decoding /v1/cluster: %w", err)
	}
	return v, nil
}

// HTTPAddrs are the members' HTTP addresses, first member first.
func (c *Cluster) HTTPAddrs() []string {
	addrs := make([]string, len(c.members))
	for i, m := range c.members {
		addrs[i] = m.httpAddr
	}
	return addrs
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
		if m.cmd == nil || m.exited == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stopMember(m); err != nil {
				c.log.Warn("member did not stop cleanly", "id", m.id, "error", err)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, m := range c.members {
		if m.logFile != nil {
			_ = m.logFile.Close()
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

func stopMember(m *spawned) error {
	select {
	case <-m.exited:
		if m.exitErr != nil {
			return fmt.Errorf("%s had already exited: %w", m.id, m.exitErr)
		}
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGTERM: %w", m.id, err)
	}
	select {
	case <-m.exited:
		if m.exitErr != nil {
			return fmt.Errorf("%s: exit after SIGTERM: %w", m.id, m.exitErr)
		}
		return nil
	case <-time.After(stopGrace):
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	return fmt.Errorf("%s: still running %s after SIGTERM, killed", m.id, stopGrace)
}

// freePortBlock finds n consecutive ports on 127.0.0.1 that are free for
// TCP and UDP (gossip uses both). The ports are released again before the
// members bind them, so another process may still take one in between; a
// member that cannot bind then exits and Spawn reports it.
func freePortBlock(n int) (int, error) {
	const lo, hi = 20000, 60000
	for attempt := 0; attempt < 50; attempt++ {
		base := lo + rand.IntN(hi-lo-n)
		if blockFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no block of %d free consecutive loopback ports found", n)
}

func blockFree(base, n int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		addr := "127.0.0.1:" + strconv.Itoa(p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, l)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, u)
	}
	return true
}

// tail is the end of a member's log, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 3000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
