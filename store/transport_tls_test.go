package store

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/internal/netguard"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/internal/tlsconf"
)

func tlsLayer(t *testing.T, caDir, name string) *tlsStreamLayer {
	t.Helper()
	return tlsLayerAt(t, caDir, name, "127.0.0.1", nil)
}

// tlsLayerAt listens on ip; wrap, when set, wraps the TCP listener.
func tlsLayerAt(t *testing.T, caDir, name, ip string, wrap func(net.Listener) net.Listener) *tlsStreamLayer {
	t.Helper()
	issued, err := tlsconf.CreateCert(caDir, tlsconf.CertRequest{Name: name, Hosts: []string{"127.0.0.1"}}, caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := tlsconf.Load(tlsconf.Files{CA: filepath.Join(caDir, tlsconf.CACertFile), Cert: issued.CertFile, Key: issued.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := newStreamLayer(ip+":0", "")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		inner.Listener = wrap(inner.Listener)
	}
	s, err := newTLSStreamLayer(inner, TransportTLS{Server: h.ServerConfig(true), Client: h.ClientConfig, Metrics: netguard.NewMetrics()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestTLSStreamLayerAcceptsOnlyCASignedPeers(t *testing.T) {
	caDir, otherCA := t.TempDir(), t.TempDir()
	for _, d := range []string{caDir, otherCA} {
		if _, err := tlsconf.CreateCA(d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	a, b := tlsLayer(t, caDir, "a"), tlsLayer(t, caDir, "b")
	stranger := tlsLayer(t, otherCA, "s")
	target := raft.ServerAddress(b.Addr().String())

	// A plain TCP peer: closed without a byte.
	raw, err := net.Dial("tcp", string(target))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("\x00plain raft rpc"))
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(raw); len(got) != 0 {
		t.Fatalf("a plain peer read %q", got)
	}
	raw.Close()

	// A peer of another CA: its RPC never reaches raft.
	if conn, err := stranger.Dial(target, 5*time.Second); err == nil {
		_, _ = conn.Write([]byte("x"))
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("a peer of another CA got an answer")
		}
		conn.Close()
	}

	// A member: its bytes arrive, and it is the first connection raft sees.
	conn, err := a.Dial(target, 5*time.Second)
	if err != nil {
		t.Fatalf("member dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	in, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("accepted connection read %q, %v", buf, err)
	}

	// Close unblocks Accept.
	_ = b.Close()
	if _, err := b.Accept(); err == nil {
		t.Fatal("Accept after Close returned a connection")
	}
}

// emfileListener fails Accept with EMFILE while failing is set, as a
// process out of descriptors does.
type emfileListener struct {
	net.Listener
	failing  atomic.Bool
	failures atomic.Int64
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		l.failures.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestTLSStreamLayerSurvivesAcceptErrors: a Raft port that ran out of
// descriptors accepts members again once descriptors are back.
func TestTLSStreamLayerSurvivesAcceptErrors(t *testing.T) {
	caDir := t.TempDir()
	if _, err := tlsconf.CreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	var flaky *emfileListener
	b := tlsLayerAt(t, caDir, "b", "127.0.0.1", func(ln net.Listener) net.Listener {
		flaky = &emfileListener{Listener: ln}
		flaky.failing.Store(true)
		return flaky
	})
	a := tlsLayer(t, caDir, "a")
	testutil.WaitFor(t, 10*time.Second, "accept failures", func() bool { return flaky.failures.Load() >= 3 })
	flaky.failing.Store(false)
	conn, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("member dial after the accept errors: %v", err)
	}
	defer conn.Close()
	in, err := b.Accept()
	if err != nil {
		t.Fatalf("accept after the accept errors: %v", err)
	}
	in.Close()
}

// TestTLSStreamLayerCapsPendingHandshakes: one address flooding the Raft
// port with silent connections holds at most its share of handshake
// places; further ones are closed at once and a member from another
// address still connects.
func TestTLSStreamLayerCapsPendingHandshakes(t *testing.T) {
	caDir := t.TempDir()
	if _, err := tlsconf.CreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	b := tlsLayer(t, caDir, "b")
	a := tlsLayerAt(t, caDir, "a", "127.0.0.2", nil)
	target := b.Addr().String()
	var silent []net.Conn
	for range MaxPendingHandshakesPerAddress {
		c, err := net.Dial("tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	testutil.WaitFor(t, 10*time.Second, "pending handshakes", func() bool {
		return b.pending.Len() == MaxPendingHandshakesPerAddress
	})
	extra, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * handshakeTimeout))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection beyond the per-address cap: %v, want closed", err)
	}
	// Closed by the cap, not by the handshake deadline.
	if got := refusedCount(t, b.cfg.Metrics); got != 1 {
		t.Fatalf("refusals counted %v, want 1", got)
	}
	conn, err := a.Dial(raft.ServerAddress(target), 5*time.Second)
	if err != nil {
		t.Fatalf("member dial during the flood: %v", err)
	}
	defer conn.Close()
	in, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	// The flooding address never held more than its share: the one
	// connection over it was refused, not queued.
	if got := refusedCount(t, b.cfg.Metrics); got != 1 {
		t.Fatalf("refusals counted %v after the member connected, want still 1", got)
	}
}

func refusedCount(t *testing.T, m *netguard.Metrics) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wimms_listener_refused_total" {
			var sum float64
			for _, mt := range mf.GetMetric() {
				sum += mt.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}
