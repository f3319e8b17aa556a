package jepsen

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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
