package store

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/internal/tlsconf"
)

func tlsLayer(t *testing.T, caDir, name string) *tlsStreamLayer {
	t.Helper()
	issued, err := tlsconf.CreateCert(caDir, tlsconf.CertRequest{Name: name, Hosts: []string{"127.0.0.1"}}, caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := tlsconf.Load(tlsconf.Files{CA: filepath.Join(caDir, tlsconf.CACertFile), Cert: issued.CertFile, Key: issued.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := newStreamLayer("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newTLSStreamLayer(inner, TransportTLS{Server: h.ServerConfig(true), Client: h.ClientConfig}, hclog.NewNullLogger())
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
