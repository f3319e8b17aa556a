package httpapi

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/netguard"
	wtest "github.com/wimms-dev/wimms/internal/testutil"
)

const waitLong = 10 * time.Second

// dialFrom connects to addr from the loopback address ip.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// keepAlive completes one request on c and leaves it open.
func keepAlive(t *testing.T, c net.Conn) *bufio.Reader {
	t.Helper()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on a held connection: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return br
}

// closedByServer reports whether the server closed c (read ends at once
// with EOF or a reset, not a timeout).
func closedByServer(c net.Conn, br *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(waitLong))
	if br == nil {
		br = bufio.NewReader(c)
	}
	_, err := br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func getFrom(ip, addr string) (int, error) {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitLong}).Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// counter reads the counter name with the given label pairs from m.
func counter(t *testing.T, m *netguard.Metrics, name string, labels ...string) float64 {
	t.Helper()
	n, err := m.Total(name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func idleCount(l *Listener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range l.conns {
		if t.idle {
			n++
		}
	}
	return n
}

// TestMaxConnsRefusesWhenNothingIsIdle: with the cap held by connections
// that have not finished a request, a new client is closed at once, and
// served again once a place frees.
func TestMaxConnsRefusesWhenNothingIsIdle(t *testing.T) {
	e := newEnv(t)
	m := netguard.NewMetrics()
	addr, gl := startGuarded(t, e, ListenConfig{Limits: Limits{MaxConns: 2}, Metrics: m})
	held := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	wtest.WaitFor(t, waitLong, "two connections admitted", func() bool { return gl.Conns() == 2 })
	third := dialFrom(t, "127.0.0.1", addr)
	if !closedByServer(third, nil) {
		t.Fatal("a third connection stayed open while two non-idle ones held the cap")
	}
	if got := counter(t, m, "wimms_listener_refused_total", "listener", "http", "stage", "conn", "reason", "total"); got != 1 {
		t.Fatalf("refused at the cap counted %v, want 1", got)
	}
	held[0].Close()
	wtest.WaitFor(t, waitLong, "a place freed", func() bool { return gl.Conns() == 1 })
	if code, err := getFrom("127.0.0.1", addr); err != nil || code != 200 {
		t.Fatalf("after a place freed: %d %v", code, err)
	}
}

// TestIdleKeepAlivesYieldAtTheCap: with the cap held by idle keep-alives,
// a new client is served and the longest-idle connection is closed.
func TestIdleKeepAlivesYieldAtTheCap(t *testing.T) {
	e := newEnv(t)
	m := netguard.NewMetrics()
	addr, gl := startGuarded(t, e, ListenConfig{Limits: Limits{MaxConns: 2}, Metrics: m})
	first := dialFrom(t, "127.0.0.1", addr)
	br1 := keepAlive(t, first)
	wtest.WaitFor(t, waitLong, "first connection idle", func() bool { return idleCount(gl) == 1 })
	second := dialFrom(t, "127.0.0.1", addr)
	keepAlive(t, second)
	wtest.WaitFor(t, waitLong, "both connections idle", func() bool { return idleCount(gl) == 2 })
	if code, err := getFrom("127.0.0.2", addr); err != nil || code != 200 {
		t.Fatalf("a new client while idle keep-alives held the cap: %d %v", code, err)
	}
	if !closedByServer(first, br1) {
		t.Fatal("the longest-idle connection was not closed")
	}
	if got := counter(t, m, "wimms_listener_idle_evicted_total", "listener", "http"); got != 1 {
		t.Fatalf("evictions counted %v, want 1", got)
	}
}

// TestPerAddressCap: one client address cannot take more than its share;
// another address is still served.
func TestPerAddressCap(t *testing.T) {
	e := newEnv(t)
	m := netguard.NewMetrics()
	addr, gl := startGuarded(t, e, ListenConfig{Limits: Limits{MaxConns: 10, MaxConnsPerAddress: 2}, Metrics: m})
	dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.1", addr)
	wtest.WaitFor(t, waitLong, "two connections admitted", func() bool { return gl.Conns() == 2 })
	if !closedByServer(dialFrom(t, "127.0.0.1", addr), nil) {
		t.Fatal("a third connection from one address stayed open")
	}
	if got := counter(t, m, "wimms_listener_refused_total", "reason", "per_address"); got != 1 {
		t.Fatalf("per-address refusals counted %v, want 1", got)
	}
	if code, err := getFrom("127.0.0.2", addr); err != nil || code != 200 {
		t.Fatalf("another address: %d %v", code, err)
	}
}

// TestBusyIdleTimeout: over three quarters of the cap, keep-alives idle
// longer than BusyIdleTimeout are closed as new clients arrive.
func TestBusyIdleTimeout(t *testing.T) {
	e := newEnv(t)
	addr, gl := startGuarded(t, e, ListenConfig{Limits: Limits{MaxConns: 4, BusyIdleTimeout: 30 * time.Second}})
	now := time.Now()
	gl.mu.Lock()
	gl.now = func() time.Time { return now }
	gl.mu.Unlock()
	var held []net.Conn
	var readers []*bufio.Reader
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		readers = append(readers, keepAlive(t, c))
		held = append(held, c)
	}
	wtest.WaitFor(t, waitLong, "three idle", func() bool { return idleCount(gl) == 3 })
	gl.mu.Lock()
	later := now.Add(31 * time.Second)
	gl.now = func() time.Time { return later }
	gl.mu.Unlock()
	if code, err := getFrom("127.0.0.2", addr); err != nil || code != 200 {
		t.Fatalf("new client: %d %v", code, err)
	}
	for i, c := range held {
		if !closedByServer(c, readers[i]) {
			t.Fatalf("keep-alive %d idle past the busy timeout stayed open", i)
		}
	}
}

// tlsPair is a server config and a client config that trusts it.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	server = ts.TLS.Clone()
	client = ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	ts.Close()
	return server, client
}

// TestPendingHandshakesCappedAndTimedOut: silent TCP connections hold a
// handshake place only until the deadline, one address only a sixteenth
// of the places, and a client from elsewhere completes HTTPS meanwhile.
func TestPendingHandshakesCappedAndTimedOut(t *testing.T) {
	e := newEnv(t)
	m := netguard.NewMetrics()
	srvTLS, cliTLS := tlsPair(t)
	addr, gl := startGuarded(t, e, ListenConfig{TLS: srvTLS, Metrics: m,
		Limits: Limits{MaxPendingHandshakes: 32, HandshakeTimeout: 500 * time.Millisecond}})
	silent := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	wtest.WaitFor(t, waitLong, "two handshakes pending", func() bool { return gl.pending.Len() == 2 })
	if !closedByServer(dialFrom(t, "127.0.0.1", addr), nil) {
		t.Fatal("a third silent connection from one address got a handshake place")
	}
	if got := counter(t, m, "wimms_listener_refused_total", "stage", "handshake", "reason", "per_address"); got != 1 {
		t.Fatalf("handshake refusals %v, want 1", got)
	}
	tr := &http.Transport{TLSClientConfig: cliTLS,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitLong}).Get("https://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS from another address while handshakes are pending: %v", err)
	}
	resp.Body.Close()
	for _, c := range silent {
		if !closedByServer(c, nil) {
			t.Fatal("a silent connection outlived the handshake deadline")
		}
	}
	wtest.WaitFor(t, waitLong, "handshake failures counted", func() bool {
		return counter(t, m, "wimms_tls_handshake_failures_total", "listener", "http") == 2
	})
	if gl.Conns() > 1 {
		t.Fatalf("%d connections counted; silent ones must not count", gl.Conns())
	}
}

// TestPlainHTTPToHTTPSIsTold: a plain HTTP request to the HTTPS port gets
// Go's 400 "use HTTPS" answer and no data, and counts as a failed handshake.
func TestPlainHTTPToHTTPSIsTold(t *testing.T) {
	e := newEnv(t)
	m := netguard.NewMetrics()
	srvTLS, _ := tlsPair(t)
	addr, _ := startGuarded(t, e, ListenConfig{TLS: srvTLS, Metrics: m})
	resp, body := wtest.RawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(string(body), "HTTPS") {
		t.Fatalf("plain HTTP: %d %s", resp.StatusCode, body)
	}
	if got := counter(t, m, "wimms_tls_handshake_failures_total", "listener", "http"); got != 1 {
		t.Fatalf("handshake failures %v, want 1", got)
	}
}
