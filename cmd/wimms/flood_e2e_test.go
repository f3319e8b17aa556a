package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// openFiles is how many descriptors process pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("needs /proc to count a member's descriptors: %v", err)
	}
	return len(ents)
}

// flood opens up to perAddr silent TCP connections to addr from each of
// the loopback addresses 127.0.0.<first>.. and holds them until the
// returned function is called. Refused or reset dials are part of a
// flood and not errors.
func flood(t *testing.T, addr string, first, addrs, perAddr int) (stop func()) {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	for i := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(first+i))}}
			for range perAddr {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
		conns = nil
	}
}

// raftHandshake completes mutual TLS with the Raft port at addr as a
// member would. A listener that stopped accepting never answers.
func raftHandshake(e *secureEnv, addr string, cert tls.Certificate) error {
	pem, err := os.ReadFile(e.caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	return c.Close()
}

// TestFloods replays the issue-19 floods against a secured three-member
// cluster: a connection flood that runs a member out of descriptors, and
// idle TLS keep-alives that try to hold every HTTPS place of a follower.
func TestFloods(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a secured three-member cluster")
	}
	e := newSecureEnv(t)
	ms, leaderID := e.launchCluster(3, "f", func(m *member) {
		// Small HTTPS caps keep the idle-connection flood light.
		m.Flags = append(m.Flags, "--max-conns", "64", "--max-conns-per-address", "24")
	})
	var followers []*member
	for _, m := range ms {
		if m.ID != leaderID {
			followers = append(followers, m)
		}
	}
	// The descriptor flood hits one follower, the idle keep-alives the
	// other: a lowered limit cannot be raised again without privilege.
	flooded, follower := followers[0], followers[1]
	expect(t, e.call("PUT", e.url(follower, "/v1/services/sync-1.5"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service")
	expect(t, e.call("POST", e.url(follower, "/v1/services/sync-1.5/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 1000}), 201, "node")
	probeCert, probeKey := e.issue("probe")
	probe, err := tls.LoadX509KeyPair(probeCert, probeKey)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("connection flood under a low open-files limit", func(t *testing.T) {
		target := flooded
		// Leave the member some room over what it holds now, far less than
		// the handshake cap (128) a flood from many addresses can fill.
		limit := uint64(openFiles(t, target.PID()) + 48)
		if err := unix.Prlimit(target.PID(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
			t.Skipf("cannot lower the member's open-files limit: %v", err)
		}
		stopRaft := flood(t, target.RaftAddr, 10, 20, 24)
		stopHTTP := flood(t, target.HTTPAddr, 40, 20, 24)
		eventually(t, 30*time.Second, "the member ran out of descriptors", func() error {
			if !logContains(t, target, "accepting a connection failed; retrying") {
				return fmt.Errorf("no accept failure logged yet")
			}
			return nil
		})
		stopRaft()
		stopHTTP()
		if !target.running() {
			t.Fatal("the member exited during the flood")
		}
		// The Raft listener accepts members again: with the old accept
		// loop it stopped for good at the first EMFILE.
		eventually(t, 30*time.Second, "raft port answers a member after the flood", func() error {
			return raftHandshake(e, target.RaftAddr, probe)
		})
		// And it serves: a write through it (forwarded to the leader over
		// HTTPS) commits, and every member reads it linearizably.
		var uid int64
		eventually(t, 30*time.Second, "write through the flooded member", func() error {
			a, err := tryCallWith(e.client, "POST", e.url(target, "/v1/services/sync-1.5/users"), map[string]any{"email": "after-flood@example.com"})
			if err != nil {
				return err
			}
			if a.code != 201 && a.code != 200 {
				return fmt.Errorf("allocate: %d %s", a.code, a.raw)
			}
			uid = a.num("uid")
			return nil
		})
		for _, m := range ms {
			g := expect(t, e.call("GET", e.url(m, "/v1/services/sync-1.5/users/after-flood@example.com?consistency=linearizable"), nil), 200, "read on "+m.ID)
			if g.num("uid") != uid {
				t.Fatalf("%s reads uid %d, wrote %d", m.ID, g.num("uid"), uid)
			}
		}
		// Refusals are counted, and logged once per interval, not per connection.
		metrics := expect(t, e.call("GET", e.url(target, "/metrics"), nil), 200, "metrics").raw
		// (Most of the flood waits in the kernel's backlog while
		// descriptors are out; what was accepted and then dropped failed
		// its handshake.)
		if !strings.Contains(metrics, `wimms_tls_handshake_failures_total{listener="raft"}`) {
			t.Error("metrics lack the Raft handshake failures")
		}
		if n := strings.Count(target.log(t), "refused a connection that did not complete mutual TLS"); n > 10 {
			t.Errorf("%d log lines for refused Raft handshakes; want at most one per interval", n)
		}
	})

	t.Run("idle TLS keep-alives cannot take every HTTPS place", func(t *testing.T) {
		target := follower
		// Each attacker connection completes TLS and one request, then
		// stays idle as a keep-alive.
		var mu sync.Mutex
		var held []net.Conn
		served := map[string]int{}
		hold := func(ip string, n int) {
			d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			for range n {
				c, err := tls.DialWithDialer(d, "tcp", target.HTTPAddr, e.client.Transport.(*http.Transport).TLSClientConfig)
				if err != nil {
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					c.Close()
					continue
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_ = c.SetDeadline(time.Time{})
				mu.Lock()
				held = append(held, c)
				served[ip]++
				mu.Unlock()
			}
		}
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		// One address asks for far more than its share...
		hold("127.0.0.3", 100)
		if served["127.0.0.3"] > 24 {
			t.Fatalf("one address holds %d connections, over --max-conns-per-address 24", served["127.0.0.3"])
		}
		// ...and many addresses together fill every place with idle ones.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() { defer wg.Done(); hold(fmt.Sprintf("127.0.0.%d", 70+i), 24) }()
		}
		wg.Wait()
		// Legitimate clients still get every request through: the CLI
		// (from 127.0.0.1) and a client from 127.0.0.2.
		for i := range 7 {
			out, code := testutil.RunWimms(t, "service", "list", "--addr", "https://"+target.HTTPAddr, "--tls-ca", e.caFile)
			if code != 0 || !strings.Contains(out, "sync-1.5") {
				t.Fatalf("CLI request %d during the idle flood: exit %d: %s", i, code, out)
			}
		}
		tr := e.client.Transport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext
		tr.DisableKeepAlives = true
		other := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		for i := range 7 {
			a, err := tryCallWith(other, "GET", e.url(target, "/v1/services/sync-1.5"), nil)
			if err != nil || a.code != 200 {
				t.Fatalf("request %d from 127.0.0.2 during the idle flood: %v %d", i, err, a.code)
			}
		}
		metrics := expect(t, e.call("GET", e.url(target, "/metrics"), nil), 200, "metrics").raw
		for _, want := range []string{
			`wimms_listener_refused_total{listener="http",reason="per_address",stage="conn"}`,
			`wimms_listener_idle_evicted_total{listener="http"}`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("packets without the gossip key are counted and logged once per interval", func(t *testing.T) {
		target := follower
		c, err := net.Dial("udp", target.GossipAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		junk := []byte(strings.Repeat("not a gossip packet ", 8))
		eventually(t, 30*time.Second, "bad gossip packets counted", func() error {
			for range 200 {
				_, _ = c.Write(junk)
			}
			a, err := tryCallWith(e.client, "GET", e.url(target, "/metrics"), nil)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(a.raw, "\n") {
				if strings.HasPrefix(line, "wimms_gossip_bad_packets_total ") && !strings.HasSuffix(line, " 0") {
					return nil
				}
			}
			return fmt.Errorf("wimms_gossip_bad_packets_total not above 0")
		})
		if n := strings.Count(target.log(t), "dropped a bad packet"); n > 10 {
			t.Errorf("%d log lines for bad gossip packets; want at most one per interval", n)
		}
		for _, line := range strings.Split(target.log(t), "\n") {
			if strings.Contains(line, "[ERROR]") && strings.Contains(line, "Decrypt packet failed") {
				t.Fatalf("memberlist's per-packet ERROR line reached the log: %s", line)
			}
		}
	})
}
