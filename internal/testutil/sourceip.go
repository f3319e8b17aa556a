package testutil

import (
	"net"
	"testing"
	"time"
)

// SourceIPs listens on loopback and records the source IP of every
// connection it accepts: tests of member-to-member dialers check that they
// leave from the member's own IP (iptables partitions by source address
// depend on it). Expect waits for the next connection and fails the test
// unless it came from want.
type SourceIPs struct {
	t      testing.TB
	Target string // host:port to dial
	ips    chan string
}

// ListenSourceIPs starts a recorder, closed when the test ends.
func ListenSourceIPs(t testing.TB) *SourceIPs {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	r := &SourceIPs{t: t, Target: ln.Addr().String(), ips: make(chan string, 4)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			r.ips <- host
			_ = conn.Close()
		}
	}()
	return r
}

// Expect fails the test unless the next connection (within 5 s) comes
// from want; what names the dialer in the message.
func (r *SourceIPs) Expect(what, want string) {
	r.t.Helper()
	select {
	case got := <-r.ips:
		if got != want {
			r.t.Errorf("%s: connection came from %s, want %s", what, got, want)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("%s: no connection", what)
	}
}
