package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/wimms-dev/wimms/internal/ctxtime"
)

// nodeMeta is what a member tells the others about itself through gossip.
// Keys are short because memberlist caps node metadata at 512 bytes.
type nodeMeta struct {
	ID     string `json:"id"`
	HTTP   string `json:"http,omitempty"`
	Raft   string `json:"raft,omitempty"`
	Gossip string `json:"gossip,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// Incarnation changes on every process start, so the leader can tell a
	// restarted member (which may rejoin) from the one it removed.
	Incarnation string `json:"inc,omitempty"`
	// Removed: a leader told this process it was removed from the Raft
	// configuration on purpose; no leader re-adds it from gossip alone.
	Removed bool `json:"removed,omitempty"`
	// Leaving: set just before a graceful leave. memberlist's leave event
	// does not say whether a member left or failed; this flag does.
	Leaving bool `json:"leaving,omitempty"`
}

// metaHeadroom keeps room for the fields that change after New (a kernel-
// chosen gossip port, the removed and leaving flags) so a later update can
// never exceed the cap (memberlist panics if it does).
const metaHeadroom = 48

func encodeMeta(m nodeMeta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode gossip metadata: %w", err)
	}
	if len(b)+metaHeadroom > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: gossip metadata is %d bytes, more than %d: shorten id, zone or addresses",
			len(b), memberlist.MetaMaxSize-metaHeadroom)
	}
	return b, nil
}

func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode gossip metadata: %w", err)
	}
	return m, nil
}

// gossipState is what this process has seen of a member through gossip.
type gossipState int

const (
	gossipUnknown gossipState = iota // never seen by this process
	gossipAlive                      // alive or suspect
	gossipFailed                     // declared dead by the failure detector
	gossipLeft                       // left gracefully
)

func (s gossipState) String() string {
	switch s {
	case gossipAlive:
		return "alive"
	case gossipFailed:
		return "failed"
	case gossipLeft:
		return "left"
	}
	return "unknown"
}

// peerInfo is one member as this process knows it. Times are this
// process's own observations, never gossiped ones: reaping decisions must
// rest on what the deciding leader itself saw (rqlite #1293).
type peerInfo struct {
	meta      nodeMeta
	state     gossipState
	since     time.Time // when this process saw state begin
	lastHeard time.Time // last sign of life (join, update, ping ack)
}

// registry holds what this process knows of other members: from gossip,
// from join requests, and from other members' /v1/cluster answers.
type registry struct {
	mu    sync.Mutex
	now   func() time.Time
	peers map[string]*peerInfo
	// changed is closed (and replaced) when a peer's metadata changes:
	// a relay waiting for the leader's HTTP address wakes on it.
	changed chan struct{}
}

func newRegistry(now func() time.Time) *registry {
	return &registry{now: now, peers: map[string]*peerInfo{}, changed: make(chan struct{})}
}

// changes returns a channel closed at the next metadata change. Take it
// before looking, so that no change falls between the look and the wait.
func (r *registry) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// notify wakes the waiters of changes; r.mu is held.
func (r *registry) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *registry) entry(id string) *peerInfo {
	p, ok := r.peers[id]
	if !ok {
		p = &peerInfo{meta: nodeMeta{ID: id}}
		r.peers[id] = p
	}
	return p
}

// alive records gossip's word that the member is alive with this metadata.
func (r *registry) alive(m nodeMeta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	p := r.entry(m.ID)
	if p.state != gossipAlive {
		p.state, p.since = gossipAlive, now
	}
	p.meta = m
	p.lastHeard = now
	r.notify()
}

// gone records gossip's word that the member failed or left.
func (r *registry) gone(id string, left bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.entry(id)
	state := gossipFailed
	if left {
		state = gossipLeft
	}
	if p.state != state {
		p.state, p.since = state, r.now()
	}
}

func (r *registry) heard(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.peers[id]; ok {
		p.lastHeard = r.now()
	}
}

// learn records addresses told by a join request or another member. While
// gossip sees the member alive its own metadata wins; otherwise the told
// addresses are the freshest we have (e.g. a member rejoining elsewhere).
func (r *registry) learn(m nodeMeta) {
	if m.ID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.entry(m.ID)
	if p.state == gossipAlive {
		return
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&p.meta.HTTP, m.HTTP)
	set(&p.meta.Raft, m.Raft)
	set(&p.meta.Gossip, m.Gossip)
	set(&p.meta.Zone, m.Zone)
	r.notify()
}

func (r *registry) get(id string) (peerInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[id]
	if !ok {
		return peerInfo{}, false
	}
	return *p, true
}

func (r *registry) byRaftAddr(addr string) (peerInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		if p.meta.Raft == addr {
			return *p, true
		}
	}
	return peerInfo{}, false
}

// all returns copies ordered by id, so loops act deterministically.
func (r *registry) all() []peerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]peerInfo, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.ID < out[j].meta.ID })
	return out
}

// boundTransport is memberlist's NetTransport with outgoing TCP bound to
// the member's own IP. Without it the kernel picks 127.0.0.1 as the source
// for every loopback member, and a partition made with iptables by source
// address would not cut gossip streams. UDP already leaves from the bound
// listener.
type boundTransport struct {
	*memberlist.NetTransport
	localIP net.IP // nil: let the kernel choose
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.localIP}
	}
	return d.Dial("tcp", addr)
}

func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// hostIP is the IP of host:port when host is a specific IP, else nil.
func hostIP(hostport string) net.IP {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return ip
}

func splitHostPortNum(hostport string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hostport)
	}
	return host, port, nil
}

func (c *Cluster) createMemberlist() (*memberlist.Memberlist, error) {
	bindHost, bindPort, err := splitHostPortNum(c.cfg.GossipBind)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip bind address: %w", err)
	}
	advHost, advPort, err := splitHostPortNum(c.cfg.GossipAdvertise)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
	}
	mlLogger := newGossipLogger(c.log.Named("memberlist"), c.cfg.GuardMetrics)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bindHost},
		BindPort:  bindPort,
		Logger:    mlLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip listen on %s: %w", c.cfg.GossipBind, err)
	}
	if bindPort == 0 {
		bindPort = nt.GetAutoBindPort() // the kernel chose it
	}
	if advPort == 0 {
		advPort = bindPort
	}
	c.mu.Lock()
	c.cfg.GossipAdvertise = net.JoinHostPort(advHost, strconv.Itoa(advPort))
	c.mu.Unlock()
	if err := c.refreshMeta(func(m *nodeMeta) { m.Gossip = c.cfg.GossipAdvertise }); err != nil {
		_ = nt.Shutdown()
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = c.cfg.ID
	mc.BindAddr, mc.BindPort = bindHost, bindPort
	mc.AdvertiseAddr, mc.AdvertisePort = advHost, advPort
	mc.Transport = &boundTransport{NetTransport: nt, localIP: hostIP(c.cfg.GossipBind)}
	mc.Logger = mlLogger
	mc.Delegate = gossipDelegate{c}
	mc.Events = gossipEvents{c}
	mc.Ping = gossipPings{c}
	// Failure is declared after ProbeInterval plus a suspicion timeout of
	// SuspicionMult·log10(n)·ProbeInterval: a few seconds at the default.
	mc.ProbeInterval = c.cfg.GossipProbeInterval
	mc.ProbeTimeout = c.cfg.GossipProbeInterval / 2
	mc.TCPTimeout = 3 * time.Second
	mc.PushPullInterval = 10 * time.Second
	mc.GossipToTheDeadTime = 30 * time.Second
	// A member restarted on another address may take its name back soon.
	mc.DeadNodeReclaimTime = 5 * time.Second

	if len(c.cfg.GossipKey) > 0 {
		kr, err := memberlist.NewKeyring(nil, c.cfg.GossipKey)
		if err != nil {
			_ = nt.Shutdown()
			return nil, fmt.Errorf("cluster: gossip key: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", c.cfg.GossipBind, err)
	}
	c.log.Info("gossip started", "bind", c.cfg.GossipBind, "advertise", c.cfg.GossipAdvertise, "zone", c.cfg.Zone, "encrypted", len(c.cfg.GossipKey) > 0)
	return ml, nil
}

// refreshMeta edits this member's metadata; callers gossip it with
// memberlist.UpdateNode when memberlist is already running.
func (c *Cluster) refreshMeta(edit func(*nodeMeta)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := decodeMeta(c.metaBytes)
	if err != nil {
		return fmt.Errorf("cluster: own gossip metadata: %w", err)
	}
	edit(&m)
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	c.metaBytes = b
	return nil
}

func (c *Cluster) ownMeta() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metaBytes
}

// gossipDelegate, gossipEvents and gossipPings are memberlist callbacks.
// They run on memberlist's goroutines and must not block.
type gossipDelegate struct{ c *Cluster }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b := d.c.ownMeta()
	if len(b) > limit {
		// encodeMeta keeps us under the cap; an empty meta beats a panic.
		d.c.log.Error("gossip metadata over the limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d gossipDelegate) NotifyMsg(b []byte)                         { d.c.handleGossipMessage(b) }
func (d gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

type gossipEvents struct{ c *Cluster }

func (e gossipEvents) NotifyJoin(n *memberlist.Node)   { e.c.observeAlive(n) }
func (e gossipEvents) NotifyUpdate(n *memberlist.Node) { e.c.observeAlive(n) }
func (e gossipEvents) NotifyLeave(n *memberlist.Node) {
	if n.Name == e.c.cfg.ID {
		return // our own leave
	}
	// n.State is not updated by memberlist before this call; the leaving
	// flag the member gossiped before it left is what tells.
	m, err := decodeMeta(n.Meta)
	left := err == nil && m.Leaving
	e.c.peers.gone(n.Name, left)
	e.c.log.Info("gossip: member gone", "id", n.Name, "left", left, "addr", n.Address())
	e.c.memberEvent()
}

type gossipPings struct{ c *Cluster }

func (p gossipPings) AckPayload() []byte { return nil }
func (p gossipPings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	p.c.peers.heard(other.Name)
}

func (c *Cluster) observeAlive(n *memberlist.Node) {
	m, err := decodeMeta(n.Meta)
	if err != nil {
		c.log.Warn("gossip: member with unreadable metadata", "id", n.Name, "addr", n.Address(), "error", err)
		m = nodeMeta{}
	}
	if m.ID != "" && m.ID != n.Name {
		c.log.Warn("gossip: metadata id differs from node name; using the name", "name", n.Name, "meta_id", m.ID)
	}
	m.ID = n.Name
	if m.Gossip == "" {
		m.Gossip = n.Address()
	}
	before, known := c.peers.get(m.ID)
	c.peers.alive(m)
	if !known || before.state != gossipAlive {
		c.log.Info("gossip: member alive", "id", m.ID, "http", m.HTTP, "raft", m.Raft, "zone", m.Zone)
	}
	c.savePeers()
	c.memberEvent()
}

// removalNotice is the one gossip message members send each other: a
// leader telling a member it was removed from the Raft configuration.
type removalNotice struct {
	Removed string `json:"removed"`
	By      string `json:"by"`
}

func (c *Cluster) handleGossipMessage(b []byte) {
	var n removalNotice
	if err := json.Unmarshal(b, &n); err != nil || n.Removed == "" {
		c.log.Warn("gossip: unreadable message", "bytes", len(b))
		return
	}
	if n.Removed != c.cfg.ID {
		return
	}
	c.mu.Lock()
	already := c.removed
	c.removed = true
	c.mu.Unlock()
	if already {
		return
	}
	c.log.Warn("this member was removed from the cluster; it will not be re-added from gossip until it restarts or joins again", "by", n.By)
	if err := c.refreshMeta(func(m *nodeMeta) { m.Removed = true }); err != nil {
		c.log.Error("mark removed in gossip metadata", "error", err)
		return
	}
	// UpdateNode waits for the broadcast: never on memberlist's goroutine.
	c.goLoop(func(context.Context) {
		if ml := c.memberlist(); ml != nil {
			if err := ml.UpdateNode(2 * time.Second); err != nil {
				c.log.Warn("gossip removed flag", "error", err)
			}
		}
	})
}

// sendRemovalNotice tells a removed member it was removed, best effort: a
// member that misses it is still kept out by this leader's tombstone.
func (c *Cluster) sendRemovalNotice(id string) {
	ml := c.memberlist()
	if ml == nil {
		return
	}
	var target *memberlist.Node
	for _, n := range ml.Members() {
		if n.Name == id {
			target = n
			break
		}
	}
	if target == nil {
		return
	}
	msg, err := json.Marshal(removalNotice{Removed: id, By: c.cfg.ID})
	if err != nil {
		return
	}
	if err := ml.SendReliable(target, msg); err != nil {
		c.log.Warn("tell removed member", "id", id, "error", err)
	}
}

// runGossipSync re-joins gossip peers that the Raft configuration names but
// gossip does not see alive. memberlist forgets dead members after
// GossipToTheDeadTime; after a longer partition nobody would dial them again.
func (c *Cluster) runGossipSync(ctx context.Context) {
	for ctxtime.Sleep(ctx, c.cfg.GossipSyncInterval) {
		c.learnMembersWithoutLeader(ctx)
		ml := c.memberlist()
		if ml == nil {
			continue
		}
		alone := ml.NumMembers() <= 1
		if targets := c.gossipSyncTargets(alone); len(targets) > 0 {
			n, err := ml.Join(targets)
			c.log.Debug("gossip sync", "targets", targets, "reached", n, "error", err)
		}
		if alone && ml.NumMembers() <= 1 {
			// Joined Raft over HTTP but never reached gossip (or lost all
			// of it): without gossip this member cannot even find the
			// leader's HTTP address. Ask the join addresses again.
			for _, addr := range c.joinTargets() {
				if c.gossipJoinVia(ctx, addr) {
					break
				}
				if n, _ := ml.Join([]string{addr}); n > 0 {
					break
				}
			}
		}
	}
}

func (c *Cluster) gossipSyncTargets(alone bool) []string {
	seen := map[string]bool{c.GossipAddr(): true}
	var targets []string
	add := func(addr string) {
		if addr != "" && !seen[addr] {
			seen[addr] = true
			targets = append(targets, addr)
		}
	}
	servers, err := c.st.Servers()
	if err != nil {
		c.log.Debug("gossip sync: raft configuration", "error", err)
	}
	for _, s := range servers {
		id := string(s.ID)
		if id == c.cfg.ID {
			continue
		}
		if p, ok := c.peers.get(id); ok && p.state != gossipAlive {
			add(p.meta.Gossip)
		}
	}
	if alone {
		for _, p := range c.peers.all() {
			if p.meta.ID != c.cfg.ID {
				add(p.meta.Gossip)
			}
		}
	}
	return targets
}
