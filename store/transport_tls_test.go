package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/internal/netguard"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// tlsConfigs is a Raft configuration the test layers share, so a test
// can admit members by adding them.
type tlsConfigs struct {
	mu      sync.Mutex
	servers []raft.Server
}

func (c *tlsConfigs) add(id string, l *tlsStreamLayer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.servers = append(c.servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(l.Addr().String()), Suffrage: raft.Voter})
}

func (c *tlsConfigs) get() []raft.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.servers)
}

// tlsLayer is a member's TLS stream layer with a member certificate for
// name; cfgs (nil: an empty configuration) is its Raft configuration, and
// it is added there.
func tlsLayer(t *testing.T, caDir, name string, cfgs ...*tlsConfigs) *tlsStreamLayer {
	t.Helper()
	return tlsLayerRole(t, caDir, tlsconf.RoleMember, name, 0, cfgs...)
}

// tlsLayerAt is a member's layer listening on ip; wrap, when set, wraps the
// TCP listener; cfgs as tlsLayer's.
func tlsLayerAt(t *testing.T, caDir, name, ip string, wrap func(net.Listener) net.Listener, cfgs ...*tlsConfigs) *tlsStreamLayer {
	t.Helper()
	return tlsLayerOn(t, caDir, tlsconf.RoleMember, name, ip, wrap, 0, cfgs...)
}

func tlsLayerRole(t *testing.T, caDir string, role tlsconf.Role, name string, idle time.Duration, cfgs ...*tlsConfigs) *tlsStreamLayer {
	t.Helper()
	return tlsLayerOn(t, caDir, role, name, "127.0.0.1", nil, idle, cfgs...)
}

func tlsLayerOn(t *testing.T, caDir string, role tlsconf.Role, name, ip string, wrap func(net.Listener) net.Listener, idle time.Duration, cfgs ...*tlsConfigs) *tlsStreamLayer {
	t.Helper()
	issued, err := tlsconf.CreateCert(caDir, tlsconf.CertRequest{Role: role, Name: name, Hosts: []string{"127.0.0.1"}}, caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if role == tlsconf.RoleClient {
		// A tool's certificate cannot load as a member's; build the
		// layer's configs by hand, as an attacker holding one would.
		return clientLayer(t, caDir, issued)
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
	s, err := newTLSStreamLayer(inner, TransportTLS{Server: h.ServerConfig(true), Client: h.ClientConfig, IdleTimeout: idle, Metrics: netguard.NewMetrics()}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cfg := &tlsConfigs{}
	if len(cfgs) > 0 {
		cfg = cfgs[0]
		cfg.add(name, s)
	}
	s.setConfiguration(cfg.get, name)
	return s
}

// clientLayer dials with a client-role certificate and no identity checks
// of its own: what a tool's certificate could do against the Raft port.
func clientLayer(t *testing.T, caDir string, issued tlsconf.Issued) *tlsStreamLayer {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(issued.CertFile, issued.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(caDir, tlsconf.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	inner, err := newStreamLayer("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	client := func(addr string) *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}}
	}
	s, err := newTLSStreamLayer(inner, TransportTLS{Server: &tls.Config{}, Client: client}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// refused asserts that what conn's peer sends gets no answer: the other
// side closed the connection before raft read a byte.
func refused(t *testing.T, what string, conn net.Conn, err error) {
	t.Helper()
	if err != nil {
		return // refused during the handshake
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("\x00append entries"))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, rerr := conn.Read(make([]byte, 1)); rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the connection stayed open (read %d, %v)", what, n, rerr)
	}
}

// rawDial is a dial with no identity check of the dialer's own: the test
// plays a peer that ignores the rules.
func rawDial(t *testing.T, l *tlsStreamLayer, target raft.ServerAddress) (net.Conn, error) {
	t.Helper()
	raw, err := l.streamLayer.Dial(target, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, l.cfg.Client(string(target)))
	if err := conn.Handshake(); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return conn, nil
}

func TestTLSStreamLayerAdmitsOnlyConfiguredMembers(t *testing.T) {
	caDir := t.TempDir()
	if _, err := tlsconf.CreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfgs := &tlsConfigs{}
	a, b := tlsLayer(t, caDir, "a", cfgs), tlsLayer(t, caDir, "b", cfgs)
	outsider := tlsLayer(t, caDir, "c") // a member certificate, not in the configuration
	tool := tlsLayerRole(t, caDir, tlsconf.RoleClient, "tool", 0)
	target := raft.ServerAddress(b.Addr().String())

	conn, err := rawDial(t, tool, target)
	refused(t, "a client certificate", conn, err)
	conn, err = rawDial(t, outsider, target)
	refused(t, "a member certificate for an id not in the configuration", conn, err)

	// b's own id, presented by another process holding b's certificate,
	// is refused too (raft never dials itself).
	conn, err = rawDial(t, b, target)
	refused(t, "this member's own id", conn, err)

	// A configured member gets through.
	conn, err = a.Dial(target, 5*time.Second)
	if err != nil {
		t.Fatalf("configured member: %v", err)
	}
	defer conn.Close()
	in, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in.Close()

	// Vouched for by another member (Store.AdmitRaftPeers), c gets in
	// without being in this member's configuration; only c.
	b.vouch([]string{"c"}, time.Now())
	conn2, err := rawDial(t, outsider, target)
	if err != nil {
		t.Fatalf("vouched-for member: %v", err)
	}
	defer conn2.Close()
	in2, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in2.Close()
	conn, err = rawDial(t, tool, target)
	refused(t, "a client certificate after a vouch", conn, err)
	b.vouch([]string{"x"}, time.Now().Add(-2*vouchFor))
	if b.isVouched("x") {
		t.Fatal("a vouch outlived vouchFor")
	}

	// Outbound: a member at an address the configuration gives to another
	// id is not talked to.
	cfgs.mu.Lock()
	cfgs.servers = append(cfgs.servers, raft.Server{ID: "d", Address: raft.ServerAddress(outsider.Addr().String())})
	cfgs.mu.Unlock()
	if c, err := a.Dial(raft.ServerAddress(outsider.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a dialed the member certificate of c where the configuration holds d")
	} else if !strings.Contains(err.Error(), `names member "c"`) {
		t.Fatalf("dial error %v, want the id mismatch", err)
	}
	if c, err := a.Dial(raft.ServerAddress(tool.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a dialed an address not in the configuration")
	}
}

// A new member (empty configuration) accepts the leader that is adding
// it, whose id it cannot know yet.
func TestTLSStreamLayerEmptyConfigurationAcceptsMembers(t *testing.T) {
	caDir := t.TempDir()
	if _, err := tlsconf.CreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfgs := &tlsConfigs{}
	leader := tlsLayer(t, caDir, "leader", cfgs)
	joiner := tlsLayer(t, caDir, "joiner") // empty configuration
	tool := tlsLayerRole(t, caDir, tlsconf.RoleClient, "tool", 0)
	cfgs.add("joiner", joiner)
	conn, err := leader.Dial(raft.ServerAddress(joiner.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("leader to new member: %v", err)
	}
	defer conn.Close()
	in, err := joiner.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	c, err := rawDial(t, tool, raft.ServerAddress(joiner.Addr().String()))
	refused(t, "a client certificate at a new member", c, err)
}

// An inbound connection that stays silent is closed, so a connection
// cannot be held open indefinitely.
func TestTLSStreamLayerIdleInboundClosed(t *testing.T) {
	caDir := t.TempDir()
	if _, err := tlsconf.CreateCA(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfgs := &tlsConfigs{}
	a := tlsLayer(t, caDir, "a", cfgs)
	b := tlsLayerRole(t, caDir, tlsconf.RoleMember, "b", 200*time.Millisecond, cfgs)
	conn, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Read(make([]byte, 1)); err != nil {
		t.Fatalf("first read: %v", err)
	}
	// Nothing more is sent: the next read ends like a hang-up, not as a
	// timeout raft would log as a decode error.
	if _, err := in.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection read %v, want io.EOF", err)
	}
}

func TestTLSStreamLayerAcceptsOnlyCASignedPeers(t *testing.T) {
	caDir, otherCA := t.TempDir(), t.TempDir()
	for _, d := range []string{caDir, otherCA} {
		if _, err := tlsconf.CreateCA(d, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	cfgs := &tlsConfigs{}
	a, b := tlsLayer(t, caDir, "a", cfgs), tlsLayer(t, caDir, "b", cfgs)
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
	cfg := &tlsConfigs{}
	b := tlsLayerAt(t, caDir, "b", "127.0.0.1", func(ln net.Listener) net.Listener {
		flaky = &emfileListener{Listener: ln}
		flaky.failing.Store(true)
		return flaky
	}, cfg)
	a := tlsLayer(t, caDir, "a", cfg)
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
	cfg := &tlsConfigs{}
	b := tlsLayer(t, caDir, "b", cfg)
	a := tlsLayerAt(t, caDir, "a", "127.0.0.2", nil, cfg)
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
	n, err := m.Total("wimms_listener_refused_total")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
