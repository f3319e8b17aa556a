package jepsen

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
)

// memberGIDBase: member i runs as group memberGIDBase+i (root runs only).
const memberGIDBase = 61000

// startCluster has the target start every member (the first one, which
// bootstraps, must be ready before the others join) and waits until all
// are ready voters of one cluster. StartTimeout runs from the first wait
// for readiness: launching (for docker, an image build and `up`) has its
// own bounds and may be slow on a loaded machine.
func (r *runner) startCluster(ctx context.Context) error {
	var deadline time.Time
	remaining := func() time.Duration {
		if deadline.IsZero() {
			deadline = time.Now().Add(r.opts.StartTimeout)
		}
		return time.Until(deadline)
	}
	err := r.target.Start(ctx, func(i int) error {
		return r.waitReady(ctx, r.members[i], remaining())
	})
	if err != nil {
		return err
	}
	return r.waitRecovered(ctx, remaining())
}

func (r *runner) ready(ctx context.Context, m memberInfo) bool {
	_, err := r.admin.Of(m.HTTPAddr).Readyz(ctx)
	return err == nil
}

func (r *runner) waitReady(ctx context.Context, m memberInfo, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !r.ready(ctx, m) {
		if !r.target.Running(m.Index) {
			return fmt.Errorf("%s exited before it was ready; see %s", m.ID, m.LogPath)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready within %s: %w", m.ID, timeout, errors.Join(ctx.Err()))
		}
		ctxtime.Sleep(ctx, 200*time.Millisecond)
	}
	return nil
}

func (r *runner) status(ctx context.Context, m memberInfo) (wire.ClusterStatus, error) {
	st, _, err := r.admin.Of(m.HTTPAddr).Cluster(ctx)
	if err != nil {
		return wire.ClusterStatus{}, fmt.Errorf("cluster status from %s: %w", m.ID, err)
	}
	return *st, nil
}

// healthy: every member is ready, and they agree on a leader of a
// configuration that has every member as a voter.
func (r *runner) healthy(ctx context.Context) error {
	var leader string
	for _, m := range r.members {
		if !r.ready(ctx, m) {
			return fmt.Errorf("%s is not ready", m.ID)
		}
		st, err := r.status(ctx, m)
		if err != nil {
			return err
		}
		if st.Leader == nil {
			return fmt.Errorf("%s knows no leader", m.ID)
		}
		if leader != "" && st.Leader.ID != leader {
			return fmt.Errorf("members disagree on the leader: %s and %s", leader, st.Leader.ID)
		}
		leader = st.Leader.ID
		for _, want := range r.members {
			if !slices.ContainsFunc(st.Members, func(cm wire.Member) bool { return cm.ID == want.ID && cm.Voter }) {
				return fmt.Errorf("%s's configuration lacks voter %s", m.ID, want.ID)
			}
		}
	}
	return nil
}

func (r *runner) waitRecovered(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := r.healthy(ctx)
		if err == nil {
			return nil
		}
		for _, m := range r.members {
			if !r.target.Running(m.Index) {
				return fmt.Errorf("%s is not running; see %s", m.ID, m.LogPath)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster not healthy within %s: %w", timeout, errors.Join(err, ctx.Err()))
		}
		ctxtime.Sleep(ctx, 300*time.Millisecond)
	}
}

// leaderIndex asks the members that run for the leader; -1 when none knows.
func (r *runner) leaderIndex(ctx context.Context) int {
	for _, i := range r.rng.Perm(len(r.members)) {
		m := r.members[i]
		if !r.target.Running(i) {
			continue
		}
		st, err := r.status(ctx, m)
		if err != nil || st.Leader == nil {
			continue
		}
		if j := slices.IndexFunc(r.members, func(x memberInfo) bool { return x.ID == st.Leader.ID }); j >= 0 {
			return j
		}
	}
	return -1
}

// healAll undoes every fault, whatever the nemesis left: rules, paused and
// dead members.
func (r *runner) healAll() {
	if err := r.target.HealNetwork(); err != nil {
		r.log.Error("heal: remove rules", "error", err)
	}
	var wg sync.WaitGroup
	for _, m := range r.members {
		if err := r.target.Resume(m.Index); err != nil {
			r.log.Error("heal: resume", "member", m.ID, "error", err)
		}
		if !r.target.Running(m.Index) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.target.Restart(m.Index); err != nil {
					r.log.Error("heal: restart", "member", m.ID, "error", err)
				}
			}()
		}
	}
	wg.Wait()
}

// auditSourceAddresses looks at the established connections between
// members: one that leaves from 127.0.0.1 shows a member that does not bind
// its own address when dialing. Partitions still cut it (owner match), but
// it is worth knowing.
func (c *localCluster) auditSourceAddresses(note func(format string, args ...any)) {
	ips := map[netip.Addr]bool{}
	peerPorts := map[uint16]bool{uint16(c.opts.RaftPort): true, uint16(c.opts.GossipPort): true}
	for _, m := range c.members {
		ips[netip.MustParseAddr(m.IP)] = true
	}
	conns, err := tcpConnections()
	if err != nil {
		c.log.Warn("audit source addresses", "error", err)
		return
	}
	var unbound []string
	for _, c := range conns {
		if ips[c.remote.Addr()] && peerPorts[c.remote.Port()] && !ips[c.local.Addr()] {
			unbound = append(unbound, c.local.String()+" -> "+c.remote.String())
		}
	}
	if len(unbound) > 0 {
		slices.Sort(unbound)
		note("members dial each other from addresses that are not theirs (%s); partitions cut them by process group (iptables owner match)",
			strings.Join(unbound, ", "))
	}
	if os.Geteuid() != 0 && len(unbound) > 0 && c.fw != nil {
		note("not root: partitions can only cut by address and may miss these connections")
	}
}

type tcpConn struct{ local, remote netip.AddrPort }

// tcpConnections parses /proc/net/tcp (IPv4, established only).
func tcpConnections() ([]tcpConn, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpConn
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "01" { // 01 = ESTABLISHED
			continue
		}
		local, err1 := parseProcAddr(fields[1])
		remote, err2 := parseProcAddr(fields[2])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, tcpConn{local, remote})
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": a little-endian IPv4 and a port, in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(ipHex) != 8 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	b, err := hex.DecodeString(ipHex)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(port)), nil
}
