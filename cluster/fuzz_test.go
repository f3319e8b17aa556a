package cluster

import (
	"os"
	"path/filepath"
	"reflect"
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
