package netguard

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBackoffDoublesToOneSecondAndResets(t *testing.T) {
	var b Backoff
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("step %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != MinAcceptDelay {
		t.Fatalf("after reset: %v", got)
	}
}

// flakyListener fails its first fails Accepts with EMFILE, as a process
// out of descriptors does, then hands out conns, then reports closed.
type flakyListener struct {
	mu    sync.Mutex
	fails int
	conns []net.Conn
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	if len(l.conns) > 0 {
		c := l.conns[0]
		l.conns = l.conns[1:]
		return c, nil
	}
	return nil, net.ErrClosed
}
func (l *flakyListener) Close() error   { return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestAcceptLoopRetriesUntilClosed(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ln := &flakyListener{fails: 4, conns: []net.Conn{a}}
	var delays []time.Duration
	var handled []net.Conn
	AcceptLoop(ln, make(chan struct{}), func(err error, d time.Duration) {
		if !errors.Is(err, syscall.EMFILE) {
			t.Errorf("error %v, want EMFILE", err)
		}
		delays = append(delays, d)
	}, func(c net.Conn) { handled = append(handled, c) })
	if len(handled) != 1 || handled[0] != a {
		t.Fatalf("handled %v, want the one connection after the failures", handled)
	}
	if len(delays) != 4 || delays[0] != MinAcceptDelay || delays[3] != 8*MinAcceptDelay {
		t.Fatalf("delays %v", delays)
	}
}

func TestAcceptLoopStopsWhenClosingDuringBackoff(t *testing.T) {
	ln := &flakyListener{fails: 1 << 30}
	closing := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		AcceptLoop(ln, closing, func(error, time.Duration) { once.Do(func() { close(closing) }) }, func(net.Conn) {})
	}()
	<-done
}

func TestGateCapsTotalAndPerKey(t *testing.T) {
	g := NewGate(3, 2)
	for _, k := range []string{"a", "a"} {
		if r := g.Enter(k); r != Admitted {
			t.Fatalf("enter %s: %q", k, r)
		}
	}
	if r := g.Enter("a"); r != RefusedKey {
		t.Fatalf("third a: %q, want per-address refusal", r)
	}
	if r := g.Enter("b"); r != Admitted {
		t.Fatalf("b: %q", r)
	}
	if r := g.Enter("c"); r != RefusedFull {
		t.Fatalf("c at the cap: %q", r)
	}
	g.Leave("a")
	if r := g.Enter("c"); r != Admitted || g.Len() != 3 {
		t.Fatalf("c after a left: %q, len %d", r, g.Len())
	}
}

func TestRateLogWritesOncePerIntervalWithSuppressedCount(t *testing.T) {
	var buf bytes.Buffer
	r := NewRateLog(hclog.New(&hclog.LoggerOptions{Output: &buf}), 10*time.Second)
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	for range 1000 {
		r.Warn("refused", "remote", "x")
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Fatalf("%d lines in one interval, want 1:\n%s", n, buf.String())
	}
	now = now.Add(10 * time.Second)
	r.Warn("refused", "remote", "y")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=999") {
		t.Fatalf("second line should carry the 999 held back:\n%s", buf.String())
	}
}

func TestMetricsCountAndNilIsSafe(t *testing.T) {
	var none *Metrics
	none.HandshakeFailed("raft")
	none.Refused("raft", "handshake", RefusedKey)
	none.BadGossipPacket()
	m := NewMetrics()
	m.HandshakeFailed("raft")
	m.HandshakeFailed("raft")
	m.Refused("http", "conn", RefusedFull)
	m.Evicted("http", 3)
	m.BadGossipPacket()
	if got := testutil.ToFloat64(m.handshakeFailures.WithLabelValues("raft")); got != 2 {
		t.Fatalf("handshake failures %v", got)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues("http", "conn", "total")); got != 1 {
		t.Fatalf("refused %v", got)
	}
	if got := testutil.ToFloat64(m.evicted.WithLabelValues("http")); got != 3 {
		t.Fatalf("evicted %v", got)
	}
	if got := testutil.ToFloat64(m.badGossip); got != 1 {
		t.Fatalf("bad gossip %v", got)
	}
}
