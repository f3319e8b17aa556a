// Package launch starts and stops `wimms server` processes on this host:
// the one launcher of the load generator (cmd/internal/bench), the chaos
// harness (jepsen) and the end-to-end tests of cmd/wimms.
//
// A Member is one server and everything needed to start it again: its
// addresses, data directory and log. It runs in its own process group, so
// signals reach the server and nothing else, and it dies with its parent
// (Pdeathsig), so a crashed harness leaves no servers behind.
package launch

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Member is one `wimms server` process. Set the exported fields, then
// Start it; Start may be called again after the process has exited.
type Member struct {
	ID         string
	Bin        string // the wimms binary
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	DataDir    string
	Zone       string // "" = no --zone
	// LogPath receives the process's stdout and stderr, appended across
	// restarts, with a line before each start and after each exit.
	LogPath string
	// Flags are more server flags (--log-level, --api-token, ...).
	Flags []string
	// Environ is added to the process's environment (KEY=VALUE), after
	// Env() has dropped the caller's WIMMS_* variables.
	Environ []string
	// GID is the group the process runs as (root only; 0 = the caller's):
	// iptables' owner match identifies a member's packets by it.
	GID    int
	Logger hclog.Logger // nil: discard

	mu      sync.Mutex
	join    []string // HTTP addresses for --join; empty for a bootstrapping member
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	exitErr error         // how the last process ended; valid once done is closed
	expect  bool          // the caller is stopping it: an exit is not a crash
	// allowExit, when not 0, is an exit status of the current process that
	// is not a crash either (StartAllowingExit).
	allowExit int
	paused    bool
	crashes   []string
}

// Args are the command line of `wimms server` for this member.
func (m *Member) Args() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	args := []string{"server", "--id", m.ID, "--data-dir", m.DataDir,
		"--http-addr", m.HTTPAddr, "--raft-addr", m.RaftAddr, "--gossip-addr", m.GossipAddr}
	if m.Zone != "" {
		args = append(args, "--zone", m.Zone)
	}
	if len(m.join) > 0 {
		args = append(args, "--join", strings.Join(m.join, ","))
	}
	return append(args, m.Flags...)
}

// SetJoin sets the HTTP addresses the next Start joins through.
func (m *Member) SetJoin(addrs []string) {
	m.mu.Lock()
	m.join = addrs
	m.mu.Unlock()
}

// Env is the caller's environment without WIMMS_* variables: the server
// reads every flag from the environment, and a stray WIMMS_JOIN or
// WIMMS_API_TOKEN in the caller's shell would silently change the member.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WIMMS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (m *Member) logger() hclog.Logger {
	if m.Logger == nil {
		return hclog.NewNullLogger()
	}
	return m.Logger
}

// Start launches the process. It must not be running.
func (m *Member) Start() error { return m.start(0) }

// StartAllowingExit starts the member like Start, but an exit with status
// code (say, 3: the member found damaged data and refused to start) is an
// outcome the caller expects, not a crash.
func (m *Member) StartAllowingExit(code int) error { return m.start(code) }

func (m *Member) start(allowExit int) error {
	args := m.Args()
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
	fmt.Fprintf(logFile, "=== launch %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), m.Bin, strings.Join(args, " "))
	cmd := exec.Command(m.Bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(Env(), m.Environ...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: signals go to the group, and a terminal's
		// Ctrl-C reaches only the caller, which cleans up.
		Setpgid: true,
		// If the caller dies without cleaning up, so do the members.
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
	m.cmd, m.done, m.exitErr, m.expect, m.paused, m.allowExit = cmd, done, nil, false, false, allowExit
	log := m.logger()
	log.Info("member started", "member", m.ID, "pid", cmd.Process.Pid, "gid", m.GID, "http", m.HTTPAddr)
	go func() {
		waitErr := cmd.Wait()
		fmt.Fprintf(logFile, "=== launch %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), waitErr)
		logFile.Close()
		m.mu.Lock()
		m.exitErr = waitErr
		if allowed := m.allowExit != 0 && cmd.ProcessState.ExitCode() == m.allowExit; !m.expect && !allowed {
			m.crashes = append(m.crashes, fmt.Sprintf("exited on its own (%v) at %s", waitErr, time.Now().Format(time.RFC3339)))
			log.Error("member exited unexpectedly", "member", m.ID, "error", waitErr)
		}
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

// running must be called with m.mu held.
func (m *Member) running() bool {
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
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running()
}

// PID is the running process's id; 0 when it is not running.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		return 0
	}
	return m.cmd.Process.Pid
}

// Paused reports whether the process is alive and stopped by Pause.
func (m *Member) Paused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running() && m.paused
}

// Exited is closed when the current process has exited (nil before the
// first Start).
func (m *Member) Exited() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

// ExitErr is how the last process ended (cmd.Wait's error: nil for exit
// status 0); nil while it runs.
func (m *Member) ExitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running() {
		return nil
	}
	return m.exitErr
}

// ExitCode is the last process's exit status: -1 when a signal ended it
// or it still runs.
func (m *Member) ExitCode() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running() || m.cmd == nil {
		return -1
	}
	return m.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the member's process group, and counts the exit it
// may cause as expected (not a crash).
func (m *Member) Signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expect = true
	return m.signalLocked(sig)
}

func (m *Member) signalLocked(sig syscall.Signal) error {
	if !m.running() {
		return fmt.Errorf("signal %s to %s: not running", sig, m.ID)
	}
	if err := syscall.Kill(-m.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, m.ID, err)
	}
	return nil
}

// Kill sends SIGKILL (kill -9: no shutdown code runs) and waits for the
// process to be gone.
func (m *Member) Kill() error {
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
	return m.WaitExit(done, 10*time.Second)
}

// WaitExit waits up to timeout for done (from Exited) to close.
func (m *Member) WaitExit(done <-chan struct{}, timeout time.Duration) error {
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s", m.ID, timeout)
	}
}

// Pause stops the process group with SIGSTOP; Resume continues it.
func (m *Member) Pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.signalLocked(syscall.SIGSTOP); err != nil {
		return err
	}
	m.paused = true
	return nil
}

func (m *Member) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = false
	if !m.running() {
		return nil
	}
	return m.signalLocked(syscall.SIGCONT)
}

// ErrKilled: the member did not exit within the grace period after
// SIGTERM and was killed.
var ErrKilled = errors.New("ignored SIGTERM, killed")

// Stop asks the member to shut down (SIGTERM) and kills it after grace,
// returning ErrKilled (wrapped) then. ExitErr tells how it ended.
func (m *Member) Stop(grace time.Duration) error {
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
	if m.WaitExit(done, grace) == nil {
		return nil
	}
	m.logger().Warn("member ignored SIGTERM, killing it", "member", m.ID, "grace", grace)
	if err := m.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w after %s", m.ID, ErrKilled, grace)
}

// WipeData deletes the member's data directory (it must not be running).
func (m *Member) WipeData() error {
	if m.Running() {
		return fmt.Errorf("wipe %s: still running", m.ID)
	}
	if err := os.RemoveAll(m.DataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", m.ID, err)
	}
	return nil
}

// Crashes lists the exits nobody asked for, so far.
func (m *Member) Crashes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.crashes...)
}

// LogTail is the last n bytes of the member's log, for error messages.
func (m *Member) LogTail(n int) string {
	b, err := os.ReadFile(m.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Test members take their ports from [freePortLow, freePortHigh): below
// Linux's ephemeral range (32768 and up by default), from which the kernel
// draws the local port of every outgoing connection. A port picked from
// that range stays free only until some connection happens to take it, so
// a member restarted on its port could find it in use.
const (
	freePortLow  = 20000
	freePortHigh = 32768
)

// FreePorts picks n distinct loopback ports that are free for TCP and UDP
// (gossip uses both), at random below the ephemeral range.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var holds []io.Closer
	defer func() {
		for _, h := range holds {
			h.Close()
		}
	}()
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt > 100*n+100 {
			return nil, fmt.Errorf("no %d free loopback ports for TCP and UDP in [%d, %d)", n, freePortLow, freePortHigh)
		}
		p := freePortLow + rand.IntN(freePortHigh-freePortLow)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // taken (possibly by one already picked: it is held)
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			l.Close()
			continue
		}
		holds = append(holds, l, u)
		ports = append(ports, p)
	}
	return ports, nil
}
