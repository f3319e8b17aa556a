package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times.
const clockTicks = 100

// processCPU is the user plus system time of process pid, all threads.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses; fields follow the
	// last ')'. utime and stime are fields 14 and 15 (11 and 12 after it).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat of %d", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse stat of %d: %w", pid, err)
	}
	return time.Duration(u+st) * time.Second / clockTicks, nil
}

// portsMu and nextPort hand out loopback ports below 32768 (the kernel's
// ephemeral range starts there, so no outgoing connection takes them).
var (
	portsMu  sync.Mutex
	nextPort = 20000 + os.Getpid()%4000
)

// freePorts returns the first of n consecutive ports that are free on
// 127.0.0.1 now. Another process may still take one before the member
// binds it; the member then fails with its log.
func freePorts(n int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for tries := 0; tries < 200; tries++ {
		base := nextPort
		if base+n >= 32768 {
			base = 20000
		}
		nextPort = base + n
		if rangeFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports below 32768", n)
}

func rangeFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// member is one server process with its log file.
type member struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startMember starts a server process that dies with this one (Pdeathsig)
// and writes its output to logPath.
func startMember(logPath, bin string, args ...string) (*member, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create member log: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	m := &member{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

func (m *member) pid() int { return m.cmd.Process.Pid }

func (m *member) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and SIGKILL after 10 s.
func (m *member) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-m.done:
	case <-t.C:
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// logTail is the end of a member's log, for an error message.
func (m *member) logTail() string {
	b, _ := os.ReadFile(m.log)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

func stopAll(ms []*member) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(m.stop)
	}
	wg.Wait()
}

func pidsOf(ms []*member) []int {
	pids := make([]int, len(ms))
	for i, m := range ms {
		pids[i] = m.pid()
	}
	return pids
}

// waitUntil polls ready every 100 ms until it returns nil, a member exits
// or the deadline passes; the last error explains a timeout.
func waitUntil(deadline time.Duration, ms []*member, ready func() error) error {
	end := time.Now().Add(deadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		for _, m := range ms {
			if m.exited() {
				return fmt.Errorf("member exited: %s", m.logTail())
			}
		}
		if time.Now().After(end) {
			return fmt.Errorf("not ready after %s: %w", deadline, err)
		}
		<-tick.C
	}
}
