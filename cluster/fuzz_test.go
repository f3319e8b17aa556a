package cluster

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzReadPeersFile: whatever the peers file holds (it survives crashes
// and operators), reading it either fails with an error or yields peers
// the registry can learn without panicking, and that write back the same.
func FuzzReadPeersFile(f *testing.F) {
	for _, s := range []string{`[]`, `[{"id":"m2","http":"127.0.0.1:8080","raft":"127.0.0.1:8081","gossip":"127.0.0.1:8082","zone":"a"}]`,
		`null`, `[{"id":""}]`, `{"id":"m2"}`, `[{"id":"m2","http":1}]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "gossip-peers.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		peers, err := readPeersFile(path)
		if err != nil {
			return
		}
		r := newRegistry(time.Now)
		for _, p := range peers {
			r.learn(nodeMeta{ID: p.ID, HTTP: p.HTTP, Raft: p.Raft, Gossip: p.Gossip, Zone: p.Zone})
		}
		if err := writeFileAtomic(path, peers); err != nil {
			t.Fatal(err)
		}
		again, err := readPeersFile(path)
		if err != nil || !reflect.DeepEqual(normalisePeers(again), normalisePeers(peers)) {
			t.Fatalf("peers do not round-trip: %+v vs %+v (%v)", peers, again, err)
		}
	})
}

func normalisePeers(p []savedPeer) []savedPeer {
	if len(p) == 0 {
		return nil
	}
	return p
}

// FuzzDecodeMeta: gossip metadata arrives from the network; decoding never
// panics and what decodes re-encodes (when small enough) to the same.
func FuzzDecodeMeta(f *testing.F) {
	for _, s := range []string{`{"id":"m1","http":"127.0.0.1:1","raft":"127.0.0.1:2","gossip":"127.0.0.1:3","zone":"z","inc":"x","leaving":true}`,
		`{}`, `null`, `{"removed":"yes"}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc, err := encodeMeta(m)
		if err != nil {
			return // too large to gossip: refused, not truncated
		}
		again, err := decodeMeta(enc)
		if err != nil || again != m {
			t.Fatalf("metadata does not round-trip: %+v vs %+v (%v)", m, again, err)
		}
	})
}

// FuzzRelayBatch: whatever bytes a batch holds (they come from another
// member over the network), the leader either refuses it whole or reads
// at most maxRelayBatch relayable writes; a batch the follower writes is
// read back request for request.
func FuzzRelayBatch(f *testing.F) {
	one := "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	for _, s := range []string{one, one + one, "", "GET / HTTP/1.1\r\n\r\n", one + "POST /v1/x HTTP/1.1\r\nContent-Length: 99\r\n\r\n{}",
		"POST /v1/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"} {
		f.Add([]byte(s), "/v1/services/s/users/a%2Fb?x=1", []byte(`{"email":"a@b"}`))
	}
	f.Fuzz(func(t *testing.T, raw []byte, uri string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/internal/v1/relay", bytes.NewReader(raw))
		req.Header.Set("Content-Type", relayBatchContentType)
		if subs, err := readRelayBatch(req); err == nil {
			if len(subs) == 0 || len(subs) > maxRelayBatch {
				t.Fatalf("accepted a batch of %d", len(subs))
			}
			for _, s := range subs {
				if isRead(s.Method) || isJoin(s) || strings.HasPrefix(s.URL.Path, "/internal/") {
					t.Fatalf("accepted %s %s in a batch", s.Method, s.URL.Path)
				}
			}
		}
		// What a follower writes, the leader reads back unchanged.
		orig, err := http.NewRequest(http.MethodPost, "http://f"+uri, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(uri, "/") || len(body) > 1024 {
			return
		}
		var buf bytes.Buffer
		writeRelayedRequest(&buf, orig, body, "leader:1", "f1")
		writeRelayedRequest(&buf, orig, body, "leader:1", "f1")
		req = httptest.NewRequest(http.MethodPost, "/internal/v1/relay", &buf)
		req.Header.Set("Content-Type", relayBatchContentType)
		req.Header.Set(ForwardedHeader, "f1")
		subs, err := readRelayBatch(req)
		if err != nil {
			if strings.HasPrefix(orig.URL.Path, "/internal/") || orig.URL.Path == joinPath {
				return
			}
			t.Fatalf("a batch the follower wrote was refused: %v", err)
		}
		if len(subs) != 2 {
			t.Fatalf("read %d requests, want 2", len(subs))
		}
		for _, s := range subs {
			got, _ := io.ReadAll(s.Body)
			if s.URL.RequestURI() != orig.URL.RequestURI() || !bytes.Equal(got, body) || s.Header.Get(ForwardedHeader) != "f1" {
				t.Fatalf("read back %s %q (%s), want %s %q", s.URL.RequestURI(), got, s.Header.Get(ForwardedHeader), orig.URL.RequestURI(), body)
			}
		}
	})
}
