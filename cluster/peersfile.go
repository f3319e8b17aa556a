package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// The peers file keeps what gossip taught this member about the others
// (id, HTTP, Raft and gossip addresses, zone) across restarts, like serf's
// snapshot in Consul. Without it, a whole-cluster restart can leave the
// bootstrap member (started without --join) alone in gossip for good: every
// member forgets gossip addresses when it stops, and the Raft
// configuration names only Raft addresses. The file is advisory: a missing
// or unreadable file only costs a slower gossip rejoin.

type savedPeer struct {
	ID     string `json:"id"`
	HTTP   string `json:"http,omitempty"`
	Raft   string `json:"raft,omitempty"`
	Gossip string `json:"gossip,omitempty"`
	Zone   string `json:"zone,omitempty"`
}

// addrs is what the peers file records of a member.
func (m nodeMeta) addrs() savedPeer {
	return savedPeer{ID: m.ID, HTTP: m.HTTP, Raft: m.Raft, Gossip: m.Gossip, Zone: m.Zone}
}

// savePeers writes every known peer but this member, atomically (write a
// temporary file, then rename), when that list differs from the last one
// written. Gossip calls it on every join and update event: those are rare.
func (c *Cluster) savePeers() {
	if c.cfg.PeersFile == "" {
		return
	}
	c.peersFileMu.Lock()
	defer c.peersFileMu.Unlock()
	var out []savedPeer
	for _, p := range c.peers.all() {
		if p.meta.ID == c.cfg.ID || p.meta.Gossip == "" {
			continue
		}
		out = append(out, p.meta.addrs())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if slices.Equal(out, c.peersSaved) {
		return
	}
	if err := writeFileAtomic(c.cfg.PeersFile, out); err != nil {
		c.log.Warn("saving gossip peers", "file", c.cfg.PeersFile, "error", err)
		return
	}
	c.peersSaved = out
}

// loadPeers teaches the registry the peers saved by an earlier run; the
// gossip-sync loop then dials the ones the Raft configuration names.
func (c *Cluster) loadPeers() {
	if c.cfg.PeersFile == "" {
		return
	}
	peers, err := readPeersFile(c.cfg.PeersFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("reading gossip peers", "file", c.cfg.PeersFile, "error", err)
		}
		return
	}
	for _, p := range peers {
		if p.ID == "" || p.ID == c.cfg.ID {
			continue
		}
		c.peers.learn(nodeMeta{ID: p.ID, HTTP: p.HTTP, Raft: p.Raft, Gossip: p.Gossip, Zone: p.Zone})
	}
	c.log.Info("gossip peers from the last run", "count", len(peers), "file", c.cfg.PeersFile)
}

func readPeersFile(path string) ([]savedPeer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var peers []savedPeer
	if err := json.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return peers, nil
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".peers-*.tmp")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return nil
}
