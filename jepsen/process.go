package jepsen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// member is one `wimms server` process and everything needed to start it
// again: its addresses, data directory and log. Its stdout and stderr are
// appended to one log file across restarts.
type member struct {
	Index      int
	ID         string
	IP         string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	DataDir    string
	LogPath    string
	// GID is the group the process runs as (root only): iptables' owner
	// match identifies the member's packets by it, whatever source address
	// its sockets use.
	GID int

	bin        string
	seedBug    string
	leaderWait time.Duration
	log        hclog.Logger

	mu      sync.Mutex
	join    []string // HTTP addresses for --join; empty for the bootstrapping member
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	expect  bool          // the harness is stopping it: an exit is not a crash
	paused  bool
	crashes []string
}

func (m *member) args() []string {
	args := []string{"server", "--id", m.ID, "--data-dir", m.DataDir,
		"--http-addr", m.HTTPAddr, "--raft-addr", m.RaftAddr, "--gossip-addr", m.GossipAddr,
		"--zone", fmt.Sprintf("z%d", m.Index+1), "--log-level", "info"}
	if m.leaderWait > 0 {
		args = append(args, "--leader-wait", m.leaderWait.String())
	}
	if len(m.join) > 0 {
		args = append(args, "--join", strings.Join(m.join, ","))
	}
	if m.seedBug != "" {
		args = append(args, "--seed-bug", m.seedBug)
	}
	return args
}

// memberEnv is the harness's environment without WIMMS_* variables, which
// the server reads as flags (an inherited WIMMS_API_TOKEN would lock the
// harness out).
func memberEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WIMMS_") {
			env = append(env, kv)
		}
	}
	return env
}

// start launches the process. It must not be running.
func (m *member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running() {
		return fmt.Errorf("start %s: already running", m.ID)
	}
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		return fmt.Errorf("start %s: %w", m.ID, err)
	}
	logFile, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: open log: %w", m.ID, err)
	}
	args := m.args()
	fmt.Fprintf(logFile, "=== jepsen %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), m.bin, strings.Join(args, " "))
	cmd := exec.Command(m.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = memberEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: the nemesis signals the group, and a
		// terminal's Ctrl-C reaches only the harness, which cleans up.
		Setpgid: true,
		// If the harness dies without cleaning up, so do the members.
		Pdeathsig: syscall.SIGKILL,
	}
	if m.GID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: uint32(m.GID), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", m.ID, err)
	}
	done := make(chan struct{})
	m.cmd, m.done, m.expect, m.paused = cmd, done, false, false
	m.log.Info("member started", "member", m.ID, "pid", cmd.Process.Pid, "gid", m.GID)
	go func() {
		waitErr := cmd.Wait()
		fmt.Fprintf(logFile, "=== jepsen %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), waitErr)
		logFile.Close()
		m.mu.Lock()
		if !m.expect {
			m.crashes = append(m.crashes, fmt.Sprintf("exited on its own (%v) at %s", waitErr, time.Now().Format(time.RFC3339)))
			m.log.Error("member exited unexpectedly", "member", m.ID, "error", waitErr)
		}
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

// running must be called with m.mu held.
func (m *member) running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Running reports whether the process is alive (possibly paused).
func (m *member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running()
}

// signal sends sig to the member's process group.
func (m *member) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.signalLocked(sig)
}

func (m *member) signalLocked(sig syscall.Signal) error {
	if !m.running() {
		return fmt.Errorf("signal %s to %s: not running", sig, m.ID)
	}
	if err := syscall.Kill(-m.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, m.ID, err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (m *member) Kill() error {
	m.mu.Lock()
	if !m.running() {
		m.mu.Unlock()
		return nil
	}
	m.expect = true
	err := m.signalLocked(syscall.SIGKILL)
	done := m.done
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitExit(done, 10*time.Second)
}

func (m *member) waitExit(done chan struct{}, timeout time.Duration) error {
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s", m.ID, timeout)
	}
}

// Pause stops the process group with SIGSTOP; Resume continues it.
func (m *member) Pause() error {
	if err := m.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	m.mu.Lock()
	m.paused = true
	m.mu.Unlock()
	return nil
}

func (m *member) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		m.paused = false
		return nil
	}
	m.paused = false
	return m.signalLocked(syscall.SIGCONT)
}

// Stop asks the member to shut down (SIGTERM), then kills it after grace.
func (m *member) Stop(grace time.Duration) error {
	m.mu.Lock()
	if !m.running() {
		m.mu.Unlock()
		return nil
	}
	m.expect = true
	done := m.done
	// A paused process would never handle SIGTERM.
	errCont := m.signalLocked(syscall.SIGCONT)
	errTerm := m.signalLocked(syscall.SIGTERM)
	m.mu.Unlock()
	if err := errors.Join(errCont, errTerm); err != nil {
		return m.Kill()
	}
	if m.waitExit(done, grace) == nil {
		return nil
	}
	m.log.Warn("member ignored SIGTERM, killing it", "member", m.ID, "grace", grace)
	return m.Kill()
}

// WipeData deletes the member's data directory (it must not be running).
func (m *member) WipeData() error {
	if m.Running() {
		return fmt.Errorf("wipe %s: still running", m.ID)
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", m.ID, err)
	}
	return nil
}

func (m *member) setJoin(addrs []string) {
	m.mu.Lock()
	m.join = addrs
	m.mu.Unlock()
}

// Crashes lists the unexpected exits seen so far.
func (m *member) Crashes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.crashes...)
}

// localCluster is the target of a loopback run: one `wimms server` process
// per member on 127.0.0.(FirstIP+i), partitions by the host's iptables.
type localCluster struct {
	opts    Options
	log     hclog.Logger
	members []*member
	fw      *Firewall    // nil unless the nemesis partitions
	disks   []*diskMount // per member; nil unless the nemesis fills disks (diskfull.go)
}

func newLocalCluster(o Options, log hclog.Logger) *localCluster {
	c := &localCluster{opts: o, log: log}
	for i := range o.Members {
		ip := fmt.Sprintf("127.0.0.%d", o.FirstIP+i)
		m := &member{
			Index:      i,
			ID:         fmt.Sprintf("n%d", i+1),
			IP:         ip,
			HTTPAddr:   net.JoinHostPort(ip, strconv.Itoa(o.HTTPPort)),
			RaftAddr:   net.JoinHostPort(ip, strconv.Itoa(o.RaftPort)),
			GossipAddr: net.JoinHostPort(ip, strconv.Itoa(o.GossipPort)),
			DataDir:    filepath.Join(o.OutDir, "data", fmt.Sprintf("n%d", i+1)),
			LogPath:    filepath.Join(o.OutDir, fmt.Sprintf("member-%d.log", i+1)),
			bin:        o.Bin,
			seedBug:    o.SeedBug,
			leaderWait: o.LeaderWait,
			log:        log,
		}
		if os.Geteuid() == 0 {
			m.GID = memberGIDBase + i
		}
		if i > 0 {
			m.join = []string{fmt.Sprintf("127.0.0.%d:%d", o.FirstIP, o.HTTPPort)}
		}
		if slices.Contains(o.Nemesis, FaultDiskFull) {
			d := &diskMount{dir: filepath.Join(o.OutDir, "disk", m.ID)}
			m.DataDir = d.dataDir()
			c.disks = append(c.disks, d)
		}
		c.members = append(c.members, m)
	}
	return c
}

func (c *localCluster) Members() []memberInfo {
	var out []memberInfo
	for _, m := range c.members {
		out = append(out, memberInfo{Index: m.Index, ID: m.ID, HTTPAddr: m.HTTPAddr, LogPath: m.LogPath})
	}
	return out
}

// Start installs the firewall chains (when partitioning), then starts the
// first member (it bootstraps) and, once it is ready, the others with
// --join. Data left by an earlier run in the same directory is removed
// first: a run always starts from an empty cluster.
func (c *localCluster) Start(_ context.Context, waitReady func(i int) error) error {
	if err := os.RemoveAll(filepath.Join(c.opts.OutDir, "data")); err != nil {
		return fmt.Errorf("remove old data: %w", err)
	}
	if NeedsIptables(c.opts.Nemesis) {
		fw, err := NewFirewall()
		if err != nil {
			return fmt.Errorf("set up iptables: %w", err)
		}
		c.fw = fw
		for _, m := range c.members {
			if m.GID == 0 {
				continue
			}
			if err := c.fw.MarkProcesses(m.GID, MemberMark(m.Index)); err != nil {
				return fmt.Errorf("set up iptables: %w", err)
			}
		}
	}
	for _, d := range c.disks {
		if err := d.mount(); err != nil {
			return err
		}
	}
	for i, m := range c.members {
		if err := m.start(); err != nil {
			return err
		}
		if i == 0 {
			if err := waitReady(0); err != nil {
				return fmt.Errorf("first member: %w", err)
			}
		}
	}
	return nil
}

func (c *localCluster) Running(i int) bool { return c.members[i].Running() }

func (c *localCluster) Paused(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running() && m.paused
}

func (c *localCluster) Kill(i int) error    { return c.members[i].Kill() }
func (c *localCluster) Restart(i int) error { return c.members[i].start() }
func (c *localCluster) Pause(i int) error   { return c.members[i].Pause() }
func (c *localCluster) Resume(i int) error  { return c.members[i].Resume() }

// Partition drops, at the receiving end, every packet between each cut
// pair, by address and by the sender's packet mark (see ChainOwner).
func (c *localCluster) Partition(cut []pair) error {
	if c.fw == nil {
		return errors.New("no firewall: the run was started without partitions")
	}
	ips := make([]string, len(c.members))
	marks := make([]uint32, len(c.members))
	for i, m := range c.members {
		ips[i] = m.IP
		if m.GID != 0 {
			marks[i] = MemberMark(i)
		}
	}
	return c.fw.Drop(dropRules(cut, ips, marks))
}

func (c *localCluster) HealNetwork() error {
	if c.fw == nil {
		return nil
	}
	return c.fw.Heal()
}

// Replace wipes the member's data directory and starts it with --join
// towards every other member.
func (c *localCluster) Replace(i int) error {
	m := c.members[i]
	var joinAddrs []string
	for _, o := range c.members {
		if o != m {
			joinAddrs = append(joinAddrs, o.HTTPAddr)
		}
	}
	if err := m.Kill(); err != nil {
		return err
	}
	if err := m.WipeData(); err != nil {
		return err
	}
	m.setJoin(joinAddrs)
	return m.start()
}

func (c *localCluster) StopAll() { c.stopAll(10 * time.Second) }

func (c *localCluster) stopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Stop(grace); err != nil {
				c.log.Error("stop member", "member", m.ID, "error", err)
			}
		}()
	}
	wg.Wait()
}

func (c *localCluster) Crashes(i int) []string { return c.members[i].Crashes() }

func (c *localCluster) Mechanism(kind FaultKind) string {
	switch {
	case kind.isPartition():
		return "iptables DROP on the host"
	case kind == FaultKill || kind == FaultKillLeader:
		return "kill -9"
	case kind == FaultPause || kind == FaultPauseLeader:
		return "SIGSTOP"
	case kind == FaultRestartAll:
		return "kill -9 of every member, all restarted on heal"
	case kind == FaultDiskFull:
		return "a filler file on the member's size-limited tmpfs"
	}
	return string(kind)
}

func (c *localCluster) Audit(note func(format string, args ...any)) { c.auditSourceAddresses(note) }

// Close stops every member and removes the harness's chains.
func (c *localCluster) Close() error {
	c.stopAll(5 * time.Second)
	var errs []error
	for i, d := range c.disks {
		// The data is copied out before the filesystem goes; the runner
		// removes it again when the run was valid.
		if err := d.unmount(filepath.Join(c.opts.OutDir, "data", c.members[i].ID)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.disks != nil {
		os.Remove(filepath.Join(c.opts.OutDir, "disk")) // empty once every member's is unmounted
	}
	if c.fw != nil {
		err := c.fw.Close()
		c.fw = nil
		if err != nil {
			errs = append(errs, fmt.Errorf("remove iptables rules: %w", err))
		}
	}
	return errors.Join(errs...)
}

// FillDisk fills member i's filesystem; FreeDisk empties it again.
func (c *localCluster) FillDisk(i int) (string, error) {
	if c.disks == nil {
		return "", errors.New("no member filesystems: the run was started without disk-full")
	}
	n, err := c.disks[i].fill()
	return fmt.Sprintf("filled its %s tmpfs with %d MB", diskSize, n>>20), err
}

func (c *localCluster) FreeDisk(i int) error {
	if c.disks == nil {
		return nil
	}
	return c.disks[i].free()
}
