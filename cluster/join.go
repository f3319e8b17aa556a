package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
)

// httpStatusError: a member answered over HTTP, with a non-2xx status.
type httpStatusError struct {
	addr string
	code int
	body string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.addr, e.code, e.body)
}

// joinTargets are Config.Join without this member's own addresses (a
// static list of all members may name this one).
func (c *Cluster) joinTargets() []string {
	var out []string
	for _, addr := range c.cfg.Join {
		if addr == c.cfg.HTTPAddr || addr == c.GossipAddr() || addr == c.cfg.GossipBind {
			continue
		}
		out = append(out, addr)
	}
	return out
}

// joinWithRetry tries every join address, with backoff, until one works or
// ctx is done.
func (c *Cluster) joinWithRetry(ctx context.Context) error {
	targets := c.joinTargets()
	if len(targets) == 0 {
		return nil
	}
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.joinOnce(ctx, targets)
		if err == nil {
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			c.log.Warn("join failed; retrying", "join", targets, "attempt", attempt, "error", err)
		} else {
			c.log.Debug("join failed; retrying", "join", targets, "attempt", attempt, "error", err)
		}
		if !ctxtime.Sleep(ctx, backoff) {
			return fmt.Errorf("cluster: join %v: gave up after %d attempts: %w (last error: %v)", targets, attempt, ctx.Err(), err)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// joinOnce: for each address, first ask over HTTP to be added (the member
// forwards to the leader, which adds us at once; idempotent for a member
// already in the configuration), then join gossip with the addresses its
// /v1/cluster names. An address that does not speak HTTP is tried as a
// gossip address: the leader adds members it sees alive in gossip.
func (c *Cluster) joinOnce(ctx context.Context, targets []string) error {
	ml := c.memberlist()
	if ml == nil {
		return errors.New("gossip is not running")
	}
	var errs []error
	for _, addr := range targets {
		err := c.postJoin(ctx, addr)
		if err == nil {
			c.log.Info("joined the cluster over HTTP", "via", addr)
			if !c.gossipJoinVia(ctx, addr) {
				c.log.Warn("in the raft configuration but not in gossip yet; gossip sync keeps trying", "via", addr)
			}
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		if c.cfg.AuthenticatedJoinOnly {
			// The leader never admits a member from gossip alone, so a
			// gossip-only join would leave us outside forever: retry HTTP.
			continue
		}
		var se *httpStatusError
		if errors.As(err, &se) {
			if se.code == http.StatusUnauthorized || se.code == http.StatusForbidden {
				c.log.Error("join refused: check the member tokens", "via", addr, "status", se.code)
				continue
			}
			// An HTTP member that cannot add us now (no leader yet, say):
			// join gossip through it; the leader will add us from there.
			if c.gossipJoinVia(ctx, addr) {
				c.log.Info("joined gossip; the leader adds this member when it sees it", "via", addr, "http_error", err)
				return nil
			}
			continue
		}
		n, gerr := ml.Join([]string{addr})
		if n > 0 {
			c.log.Info("joined gossip directly; the leader adds this member when it sees it", "via", addr)
			return nil
		}
		errs = append(errs, fmt.Errorf("gossip join %s: %w", addr, gerr))
	}
	return joinErrors(errs)
}

// joinErrors is errs as one error on one line: the join loop logs it, and
// errors.Join's newlines would break a log line into a block.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = strings.ReplaceAll(e.Error(), "\n", "; ")
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

func (c *Cluster) postJoin(ctx context.Context, addr string) error {
	body, err := json.Marshal(wire.JoinRequest{
		ID:         c.cfg.ID,
		RaftAddr:   c.cfg.RaftAddr,
		HTTPAddr:   c.cfg.HTTPAddr,
		GossipAddr: c.GossipAddr(),
		Zone:       c.cfg.Zone,
		Voter:      wire.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("encode join request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.members.URL(addr, wire.MembersPath), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("join via %s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.members.SetAuth(req, true)
	resp, err := c.members.Do(req)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "malformed HTTP response") {
			return fmt.Errorf("join via %s: no HTTP answer (%v): --join takes a member's HTTP address (its --http-addr), not its Raft or gossip port", addr, err)
		}
		return fmt.Errorf("join via %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("join via %s: %w", addr, &httpStatusError{addr: addr, code: resp.StatusCode, body: string(bytes.TrimSpace(b))})
	}
	return nil
}

// fetchStatus reads another member's GET /v1/cluster and remembers the
// addresses it names, so forwarding works before gossip has converged.
func (c *Cluster) fetchStatus(ctx context.Context, addr string) (wire.ClusterStatus, error) {
	var st wire.ClusterStatus
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.members.URL(addr, "/v1/cluster?consistency=stale"), nil)
	if err != nil {
		return st, fmt.Errorf("cluster status of %s: %w", addr, err)
	}
	c.members.SetAuth(req, false)
	resp, err := c.members.Do(req)
	if err != nil {
		return st, fmt.Errorf("cluster status of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, fmt.Errorf("cluster status of %s: read: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster status of %s: %w", addr, &httpStatusError{addr: addr, code: resp.StatusCode, body: string(bytes.TrimSpace(b))})
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("cluster status of %s: decode: %w", addr, err)
	}
	var ids []string
	for _, m := range st.Members {
		if m.ID != c.cfg.ID {
			c.peers.learn(nodeMeta{ID: m.ID, HTTP: m.HTTPAddr, Raft: m.RaftAddr, Gossip: m.GossipAddr, Zone: m.Zone})
			ids = append(ids, m.ID)
		}
	}
	if c.cfg.AdmitRaftPeers != nil && c.cfg.DialTLS != nil {
		// The answer came over mutual TLS from a member certificate.
		c.cfg.AdmitRaftPeers(ids)
	}
	return st, nil
}

// learnMembersWithoutLeader asks members for the current member list while
// this member knows no leader: after an absence its configuration may lack
// the member that now leads, whose Raft connections it would refuse
// (store's Raft port admits configured or vouched-for ids only). The join
// addresses first, then the HTTP addresses of configured members.
func (c *Cluster) learnMembersWithoutLeader(ctx context.Context) {
	if c.cfg.AdmitRaftPeers == nil || c.cfg.DialTLS == nil || c.st.RaftStatus().LeaderKnown() {
		return
	}
	targets := c.joinTargets()
	if servers, err := c.st.Servers(); err == nil {
		for _, s := range servers {
			if p, ok := c.peers.get(s.ID); ok && s.ID != c.cfg.ID && p.meta.HTTP != "" {
				targets = append(targets, p.meta.HTTP)
			}
		}
	}
	for _, addr := range targets {
		if _, err := c.fetchStatus(ctx, addr); err == nil {
			return
		} else {
			c.log.Debug("no leader: member list not available", "via", addr, "error", err)
		}
	}
}

// gossipJoinVia joins gossip through the gossip addresses of the members
// that the HTTP member at addr knows.
func (c *Cluster) gossipJoinVia(ctx context.Context, addr string) bool {
	ml := c.memberlist()
	if ml == nil {
		return false
	}
	st, err := c.fetchStatus(ctx, addr)
	if err != nil {
		c.log.Debug("gossip join: no member list", "via", addr, "error", err)
		return false
	}
	var gossipAddrs []string
	for _, m := range st.Members {
		if m.ID != c.cfg.ID && m.GossipAddr != "" {
			gossipAddrs = append(gossipAddrs, m.GossipAddr)
		}
	}
	if len(gossipAddrs) == 0 {
		return false
	}
	n, err := ml.Join(gossipAddrs)
	if n == 0 {
		c.log.Debug("gossip join failed", "via", addr, "addrs", gossipAddrs, "error", err)
		return false
	}
	return true
}
