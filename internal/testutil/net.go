package testutil

import (
	"net"
	"testing"
)

// FreeAddr is a TCP address on ip ("127.0.0.1", or another loopback
// address) that was free when asked for: nothing listens on it, so a dial
// is refused until something binds it.
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// AcceptingAddr is a TCP address on ip that accepts connections and closes
// them at once until the test ends: a reachable port, such as a Raft port
// for a reachability probe.
func AcceptingAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	return ln.Addr().String()
}
