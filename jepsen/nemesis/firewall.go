package nemesis

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Chains the harness owns.
//
// ChainAddr holds the DROP rules and is jumped to from INPUT: a packet is
// dropped where it arrives, so the sender sees silence, as across a real
// network (a DROP in OUTPUT fails the sender's send with EPERM at once,
// which no real partition does).
//
// ChainOwner, jumped to from OUTPUT (the only place the owner match works),
// marks every packet a member process sends with that member's mark. A
// member that dials without binding its own address sends from 127.0.0.1;
// the mark still says who sent it, and survives the loopback into INPUT.
const (
	ChainAddr  = "WIMMS-JEPSEN"
	ChainOwner = "WIMMS-JEPSEN-OWNER"
	// markMask is the part of the packet mark the harness uses.
	markMask = 0x00ff0000
)

// MemberMark is the packet mark of member i's packets.
func MemberMark(i int) uint32 { return uint32(i+1) << 16 & markMask }

func markArg(mark uint32) string { return fmt.Sprintf("0x%x/0x%x", mark, markMask) }

// ErrNoIptables: partitions need root and the iptables command.
var ErrNoIptables = errors.New("partitions need root and iptables")

// CheckIptables says why partitions cannot be injected here, or nil.
func CheckIptables() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not running as root", ErrNoIptables)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return fmt.Errorf("%w: iptables not found in PATH", ErrNoIptables)
	}
	return nil
}

// Firewall adds and removes the harness's DROP rules. Every rule it adds is
// inside its own chains, so healing is one flush and cleanup is deleting
// the jumps and the chains.
type Firewall struct {
	mu sync.Mutex
}

func iptables(args ...string) (string, error) {
	// -w: wait for the xtables lock instead of failing when another
	// iptables command runs at the same moment.
	cmd := exec.Command("iptables", append([]string{"-w", "5"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// NewFirewall removes leftovers of an earlier run and installs empty chains
// and their jumps.
func NewFirewall() (*Firewall, error) {
	if err := CheckIptables(); err != nil {
		return nil, err
	}
	if err := RemoveChains(); err != nil {
		return nil, fmt.Errorf("remove leftover rules: %w", err)
	}
	steps := [][]string{
		{"-N", ChainAddr},
		{"-N", ChainOwner},
		{"-I", "INPUT", "1", "-j", ChainAddr},
		{"-I", "OUTPUT", "1", "-j", ChainOwner},
	}
	for _, args := range steps {
		if _, err := iptables(args...); err != nil {
			_ = RemoveChains()
			return nil, fmt.Errorf("install chains: %w", err)
		}
	}
	return &Firewall{}, nil
}

// MarkProcesses marks the packets of processes running as group gid with
// mark (see ChainOwner). It stays for the whole run; Heal keeps it.
func (f *Firewall) MarkProcesses(gid int, mark uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := iptables("-A", ChainOwner, "-m", "owner", "--gid-owner", strconv.Itoa(gid),
		"-j", "MARK", "--set-xmark", markArg(mark)); err != nil {
		return fmt.Errorf("mark packets of gid %d: %w", gid, err)
	}
	return nil
}

// Drop installs rules. On error the rules already added stay; Heal removes them.
func (f *Firewall) Drop(rules []DropRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rules {
		if _, err := iptables("-A", ChainAddr, "-s", r.SrcIP, "-d", r.DstIP, "-j", "DROP"); err != nil {
			return fmt.Errorf("drop %s -> %s: %w", r.SrcIP, r.DstIP, err)
		}
		if r.SrcMark != 0 {
			if _, err := iptables("-A", ChainAddr, "-d", r.DstIP, "-m", "mark", "--mark", markArg(r.SrcMark), "-j", "DROP"); err != nil {
				return fmt.Errorf("drop mark %s -> %s: %w", markArg(r.SrcMark), r.DstIP, err)
			}
		}
	}
	return nil
}

// Heal removes every DROP rule, keeping the chains and the marks.
func (f *Firewall) Heal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := iptables("-F", ChainAddr); err != nil {
		return fmt.Errorf("heal: %w", err)
	}
	return nil
}

// Rules lists the DROP rules now installed (iptables -S format).
func (f *Firewall) Rules() ([]string, error) {
	var out []string
	for _, chain := range []string{ChainAddr, ChainOwner} {
		s, err := iptables("-S", chain)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "-A ") {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// Close removes the rules, the jumps and the chains.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return RemoveChains()
}

// RemoveChains deletes every jump to the harness's chains and the chains
// themselves, whatever run left them, and checks that nothing is left. The
// caller must hold the run lock: those rules may be a running run's.
func RemoveChains() error {
	for _, jump := range [][2]string{{"INPUT", ChainAddr}, {"OUTPUT", ChainAddr}, {"OUTPUT", ChainOwner}} {
		// A crashed run may have left several jumps: delete until none is left.
		for range 100 {
			if _, err := iptables("-D", jump[0], "-j", jump[1]); err != nil {
				break
			}
		}
	}
	for _, chain := range []string{ChainAddr, ChainOwner} {
		if _, err := iptables("-S", chain); err != nil {
			continue // no such chain
		}
		if _, err := iptables("-F", chain); err != nil {
			return fmt.Errorf("flush %s: %w", chain, err)
		}
		if _, err := iptables("-X", chain); err != nil {
			return fmt.Errorf("delete %s: %w", chain, err)
		}
	}
	left, err := iptables("-S")
	if err != nil {
		return fmt.Errorf("list rules after cleanup: %w", err)
	}
	if strings.Contains(left, ChainAddr) {
		return fmt.Errorf("iptables still mentions %s after cleanup:\n%s", ChainAddr, left)
	}
	return nil
}
