package main

// Helpers for end-to-end tests that run the real `wimms` binary as separate
// processes on loopback, as a user or an operator would.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// wimmsBinary builds ./cmd/wimms once per test binary run.
func wimmsBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wimms-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "wimms")
		gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		cmd := exec.Command(gobin, "build", "-o", builtBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building wimms: %v", buildErr)
	}
	return builtBin
}

// freePorts reserves n distinct loopback TCP ports that are also free for
// UDP (gossip uses both on raft port + 1).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var holds []io.Closer
	defer func() {
		for _, h := range holds {
			h.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserving port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			l.Close()
			continue
		}
		holds = append(holds, l, u)
		ports = append(ports, p)
	}
	return ports
}

type member struct {
	t       *testing.T
	bin     string
	id      string
	dir     string
	http    string
	raft    string
	gossip  string
	zone    string
	join    []string
	extra   []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func newMember(t *testing.T, id string, zone string) *member {
	t.Helper()
	p := freePorts(t, 3)
	dir := t.TempDir()
	return &member{
		t: t, bin: wimmsBinary(t), id: id, zone: zone,
		dir:     filepath.Join(dir, "data"),
		http:    fmt.Sprintf("127.0.0.1:%d", p[0]),
		raft:    fmt.Sprintf("127.0.0.1:%d", p[1]),
		gossip:  fmt.Sprintf("127.0.0.1:%d", p[2]),
		logPath: filepath.Join(dir, id+".log"),
	}
}

func (m *member) url(path string) string { return "http://" + m.http + path }

func (m *member) start() {
	m.t.Helper()
	args := []string{"server", "--id", m.id, "--data-dir", m.dir, "--http-addr", m.http,
		"--raft-addr", m.raft, "--gossip-addr", m.gossip, "--zone", m.zone, "--log-level", "debug"}
	if len(m.join) > 0 {
		args = append(args, "--join", strings.Join(m.join, ","))
	}
	args = append(args, m.extra...)
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatalf("log file: %v", err)
	}
	cmd := exec.Command(m.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting %s: %v", m.id, err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.err = cmd, done, nil
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
	m.t.Cleanup(func() {
		m.kill9()
		if m.t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			m.t.Logf("--- tail of %s log ---\n%s", m.id, b)
		}
	})
}

func (m *member) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
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

// kill9 is `kill -9`: no shutdown code runs.
func (m *member) kill9() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil || !m.running() {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// stop sends sig and returns the exit code (or -1 on timeout, after which
// the process is killed).
func (m *member) stop(sig syscall.Signal, timeout time.Duration) int {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		m.kill9()
		return -1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		return 0
	}
	if ee, ok := m.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func (m *member) waitReady(timeout time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !m.running() {
			m.t.Fatalf("%s exited before becoming ready", m.id)
		}
		resp, err := http.Get(m.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("%s not ready after %v", m.id, timeout)
}

// answer is one HTTP response with its JSON body decoded.
type answer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) str(k string) string {
	v, _ := a.body[k].(string)
	return v
}

// num returns a JSON number field as int64 (bodies are decoded with
// UseNumber, so int64 values survive exactly).
func (a answer) num(k string) int64 {
	n, ok := a.body[k].(json.Number)
	if !ok {
		return -1
	}
	v, err := n.Int64()
	if err != nil {
		return -1
	}
	return v
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

func call(t *testing.T, method, url string, body any, headers ...string) answer {
	t.Helper()
	a, err := tryCall(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

func tryCall(method, url string, body any, headers ...string) (answer, error) {
	return tryCallWith(httpClient, method, url, body, headers...)
}

func tryCallWith(hc *http.Client, method, url string, body any, headers ...string) (answer, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err == nil {
			a.body = m
		}
	}
	return a, nil
}

func expect(t *testing.T, a answer, code int, what string) answer {
	t.Helper()
	if a.code != code {
		t.Fatalf("%s: got HTTP %d, want %d: %s", what, a.code, code, a.raw)
	}
	return a
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %v: %v", what, timeout, err)
}
