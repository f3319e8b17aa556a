package nemesis

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Partitions of containers. Each container has its own network namespace
// with one address on the compose network; a member's peers reach it only
// from their addresses. Member i's namespace gets a chain (ChainAddr, the
// name the loopback harness uses on the host) jumped to from INPUT, holding
// `-s <peer> -j DROP` for every peer it is cut from. Dropping on arrival, in
// both members of a pair, cuts both directions and leaves the sender's
// sendto unaware, as a real network would; dropping in OUTPUT would fail it
// with EPERM at once.
//
// The rules are installed with iptables-restore --noflush: a chain declared
// in its input is created, or emptied when it exists, so one call replaces
// the previous cut with the next atomically, and a heal is the same call
// with no rules.

// CutPeers lists the members self is cut from, in index order.
func CutPeers(self int, cut []Pair) []int {
	var peers []int
	for _, p := range cut {
		switch self {
		case p[0]:
			peers = append(peers, p[1])
		case p[1]:
			peers = append(peers, p[0])
		}
	}
	slices.Sort(peers)
	return slices.Compact(peers)
}

// NetnsScript is the iptables-restore input that leaves member self's
// chain holding exactly the DROP rules of this cut (none: emptied).
func NetnsScript(self int, cut []Pair, ips []string) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", ChainAddr)
	for _, peer := range CutPeers(self, cut) {
		fmt.Fprintf(&b, "-A %s -s %s/32 -j DROP\n", ChainAddr, ips[peer])
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// WithJump adds the jump from INPUT to a NetnsScript: once per namespace,
// since restore --noflush appends it again every time.
func WithJump(script string) string {
	return strings.Replace(script, "COMMIT\n", fmt.Sprintf("-I INPUT 1 -j %s\nCOMMIT\n", ChainAddr), 1)
}

// InNetns runs the host's binary in the network namespace of process pid
// (only the network namespace: the xtables lock and the binary are the
// host's). The image is FROM scratch: there is nothing to run inside it.
func InNetns(ctx context.Context, pid int, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "--"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsenter -t %d -n %s: %w: %s", pid, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// RestoreInNetns applies a NetnsScript in pid's namespace.
func RestoreInNetns(ctx context.Context, pid int, script string) error {
	_, err := InNetns(ctx, pid, script, "iptables-restore", "-w", "5", "--noflush")
	return err
}

// NetnsRules lists the filter rules in pid's namespace (iptables -S), the
// harness's and anyone else's.
func NetnsRules(ctx context.Context, pid int) ([]string, error) {
	out, err := InNetns(ctx, pid, "", "iptables", "-w", "5", "-S")
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-A ") {
			rules = append(rules, line)
		}
	}
	return rules, nil
}
