package jepsen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// member is one `wimms server` process of a loopback run, with its place
// in the run: its index and its own loopback address.
type member struct {
	*launch.Member
	Index int
	IP    string
}

// serverFlags are the flags every member of a run gets besides its
// addresses.
// memberTLSArgs are the TLS flags of member id in a --tls run, else none.
func memberTLSArgs(o Options, id string) []string {
	if !o.TLS {
		return nil
	}
	return tlsArgs(pkiDir(o.OutDir), id)
}

func serverFlags(o Options) []string {
	flags := []string{"--log-level", "info"}
	if o.LeaderWait > 0 {
		flags = append(flags, "--leader-wait", o.LeaderWait.String())
	}
	if o.SeedBug != "" {
		flags = append(flags, "--seed-bug", o.SeedBug)
	}
	return flags
}

// localCluster is the target of a loopback run: one `wimms server` process
// per member on 127.0.0.(FirstIP+i), partitions by the host's iptables.
type localCluster struct {
	opts    Options
	log     hclog.Logger
	members []*member
	fw      *nemesis.Firewall    // nil unless the nemesis partitions
	disks   []*nemesis.DiskMount // per member; nil unless the nemesis fills disks (disk-full)
}

func newLocalCluster(o Options, log hclog.Logger) *localCluster {
	c := &localCluster{opts: o, log: log}
	for i := range o.Members {
		ip := fmt.Sprintf("127.0.0.%d", o.FirstIP+i)
		m := &member{Index: i, IP: ip, Member: &launch.Member{
			ID:         fmt.Sprintf("n%d", i+1),
			Bin:        o.Bin,
			HTTPAddr:   net.JoinHostPort(ip, strconv.Itoa(o.HTTPPort)),
			RaftAddr:   net.JoinHostPort(ip, strconv.Itoa(o.RaftPort)),
			GossipAddr: net.JoinHostPort(ip, strconv.Itoa(o.GossipPort)),
			DataDir:    filepath.Join(o.OutDir, "data", fmt.Sprintf("n%d", i+1)),
			Zone:       fmt.Sprintf("z%d", i+1),
			LogPath:    filepath.Join(o.OutDir, fmt.Sprintf("member-%d.log", i+1)),
			Flags:      append(serverFlags(o), memberTLSArgs(o, fmt.Sprintf("n%d", i+1))...),
			Logger:     log,
		}}
		if os.Geteuid() == 0 {
			m.GID = memberGIDBase + i
		}
		if i > 0 {
			m.SetJoin([]string{fmt.Sprintf("127.0.0.%d:%d", o.FirstIP, o.HTTPPort)})
		}
		if slices.Contains(o.Nemesis, nemesis.FaultDiskFull) {
			d := nemesis.NewDiskMount(filepath.Join(o.OutDir, "disk", m.ID))
			m.DataDir = d.DataDir()
			c.disks = append(c.disks, d)
		}
		c.members = append(c.members, m)
	}
	return c
}

func (c *localCluster) Members() []memberInfo {
	var out []memberInfo
	for _, m := range c.members {
		out = append(out, memberInfo{Index: m.Index, ID: m.ID, HTTPAddr: m.HTTPAddr, LogPath: m.LogPath})
	}
	return out
}

// Start installs the firewall chains (when partitioning), then starts the
// first member (it bootstraps) and, once it is ready, the others with
// --join. Data left by an earlier run in the same directory is removed
// first: a run always starts from an empty cluster.
func (c *localCluster) Start(_ context.Context, waitReady func(i int) error) error {
	if err := os.RemoveAll(filepath.Join(c.opts.OutDir, "data")); err != nil {
		return fmt.Errorf("remove old data: %w", err)
	}
	if nemesis.NeedsIptables(c.opts.Nemesis) {
		fw, err := nemesis.NewFirewall()
		if err != nil {
			return fmt.Errorf("set up iptables: %w", err)
		}
		c.fw = fw
		for _, m := range c.members {
			if m.GID == 0 {
				continue
			}
			if err := c.fw.MarkProcesses(m.GID, nemesis.MemberMark(m.Index)); err != nil {
				return fmt.Errorf("set up iptables: %w", err)
			}
		}
	}
	for _, d := range c.disks {
		if err := d.Mount(); err != nil {
			return err
		}
	}
	for i, m := range c.members {
		if err := m.Start(); err != nil {
			return err
		}
		if i == 0 {
			if err := waitReady(0); err != nil {
				return fmt.Errorf("first member: %w", err)
			}
		}
	}
	return nil
}

func (c *localCluster) Running(i int) bool { return c.members[i].Running() }

func (c *localCluster) Paused(i int) bool { return c.members[i].Paused() }

func (c *localCluster) Kill(i int) error    { return c.members[i].Kill() }
func (c *localCluster) Restart(i int) error { return c.members[i].Start() }
func (c *localCluster) Pause(i int) error   { return c.members[i].Pause() }
func (c *localCluster) Resume(i int) error  { return c.members[i].Resume() }

// Partition drops, at the receiving end, every packet between each cut
// pair, by address and by the sender's packet mark (see ChainOwner).
func (c *localCluster) Partition(cut []nemesis.Pair) error {
	if c.fw == nil {
		return errors.New("no firewall: the run was started without partitions")
	}
	ips := make([]string, len(c.members))
	marks := make([]uint32, len(c.members))
	for i, m := range c.members {
		ips[i] = m.IP
		if m.GID != 0 {
			marks[i] = nemesis.MemberMark(i)
		}
	}
	return c.fw.Drop(nemesis.DropRules(cut, ips, marks))
}

func (c *localCluster) HealNetwork() error {
	if c.fw == nil {
		return nil
	}
	return c.fw.Heal()
}

// Replace wipes the member's data directory and starts it with --join
// towards every other member.
func (c *localCluster) Replace(i int) error {
	m := c.members[i]
	var joinAddrs []string
	for _, o := range c.members {
		if o != m {
			joinAddrs = append(joinAddrs, o.HTTPAddr)
		}
	}
	if err := m.Kill(); err != nil {
		return err
	}
	if err := m.WipeData(); err != nil {
		return err
	}
	m.SetJoin(joinAddrs)
	return m.Start()
}

func (c *localCluster) StopAll() { c.stopAll(10 * time.Second) }

func (c *localCluster) stopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Stop(grace); err != nil {
				c.log.Error("stop member", "member", m.ID, "error", err)
			}
		}()
	}
	wg.Wait()
}

func (c *localCluster) Crashes(i int) []string { return c.members[i].Crashes() }

func (c *localCluster) Mechanism(kind nemesis.FaultKind) string {
	switch {
	case kind.IsPartition():
		return "iptables DROP on the host"
	case kind == nemesis.FaultKill || kind == nemesis.FaultKillLeader:
		return "kill -9"
	case kind == nemesis.FaultPause || kind == nemesis.FaultPauseLeader:
		return "SIGSTOP"
	case kind == nemesis.FaultRestartAll:
		return "kill -9 of every member, all restarted on heal"
	case kind == nemesis.FaultDiskFull:
		return "a filler file on the member's size-limited tmpfs"
	case kind == nemesis.FaultTailDamage:
		return "kill -9 of a majority, their tail log segments edited on disk, restarted on heal"
	}
	return string(kind)
}

func (c *localCluster) Audit(note func(format string, args ...any)) { c.auditSourceAddresses(note) }

// Close stops every member and removes the harness's chains.
func (c *localCluster) Close() error {
	c.stopAll(5 * time.Second)
	var errs []error
	for i, d := range c.disks {
		// The data is copied out before the filesystem goes; the runner
		// removes it again when the run was valid.
		if err := d.Unmount(filepath.Join(c.opts.OutDir, "data", c.members[i].ID)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.disks != nil {
		os.Remove(filepath.Join(c.opts.OutDir, "disk")) // empty once every member's is unmounted
	}
	if c.fw != nil {
		err := c.fw.Close()
		c.fw = nil
		if err != nil {
			errs = append(errs, fmt.Errorf("remove iptables rules: %w", err))
		}
	}
	return errors.Join(errs...)
}

// FillDisk fills member i's filesystem; FreeDisk empties it again.
func (c *localCluster) FillDisk(i int) (string, error) {
	if c.disks == nil {
		return "", errors.New("no member filesystems: the run was started without disk-full")
	}
	n, err := c.disks[i].Fill()
	return fmt.Sprintf("filled its %s tmpfs with %d MB", nemesis.DiskSize, n>>20), err
}

func (c *localCluster) FreeDisk(i int) error {
	if c.disks == nil {
		return nil
	}
	return c.disks[i].Free()
}
