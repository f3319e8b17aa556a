package jepsen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// The helper process of TestFirewallCutsTraffic: it dials the address in
// JEPSEN_HELPER_DIAL without binding a source address, as a member that
// does not bind would, and exits 0 if the connection was made.
func TestHelperDial(t *testing.T) {
	addr := os.Getenv("JEPSEN_HELPER_DIAL")
	if addr == "" {
		t.Skip("helper process for TestFirewallCutsTraffic")
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		fmt.Println("helper dial failed:", err)
		os.Exit(3)
	}
	conn.Close()
	os.Exit(0)
}

func skipWithoutIptables(t *testing.T) {
	t.Helper()
	if err := nemesis.CheckIptables(); err != nil {
		t.Skipf("needs root and iptables: %v", err)
	}
}

// dialFrom connects from a bound source address.
func dialFrom(src, dst string) error {
	d := net.Dialer{Timeout: 700 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", dst)
	if err != nil {
		return err
	}
	return c.Close()
}

// dialAsGroup dials dst, unbound (so from 127.0.0.1), from a child process
// running as group gid: the situation of a member that does not bind.
func dialAsGroup(t *testing.T, gid int, dst string) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDial$")
	cmd.Env = append(os.Environ(), "JEPSEN_HELPER_DIAL="+dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// udpReaches sends a datagram from a bound src to a fresh socket on dst and
// reports whether it arrived. A send error is returned as is: a silent
// partition never makes the sender fail.
func udpReaches(t *testing.T, src, dst string) (bool, error) {
	t.Helper()
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(dst)})
	if err != nil {
		t.Fatalf("listen udp on %s: %v", dst, err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatalf("listen udp on %s: %v", src, err)
	}
	defer tx.Close()
	if _, err := tx.WriteTo([]byte("ping"), rx.LocalAddr()); err != nil {
		return false, err
	}
	rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 16)
	_, _, err = rx.ReadFrom(buf)
	return err == nil, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A cut between members 0 and 1 must stop their traffic both ways, whether
// they bind their own address or dial from 127.0.0.1, must not touch member
// 2 or the harness, must be silent (a timeout, not an error at once), and
// healing and cleanup must leave no rule.
func TestFirewallCutsTraffic(t *testing.T) {
	skipWithoutIptables(t)
	ips := []string{"127.0.0.210", "127.0.0.211", "127.0.0.212"}
	gids := []int{memberGIDBase + 200, memberGIDBase + 201, memberGIDBase + 202}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = testutil.AcceptingAddr(t, ip)
	}
	// The chains are shared with any run in progress on this machine.
	release, err := acquireRunLock()
	if errors.Is(err, ErrBusy) {
		t.Skipf("needs the iptables chains, which a run in progress holds: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	fw, err := nemesis.NewFirewall()
	if err != nil {
		t.Fatalf("NewFirewall: %v", err)
	}
	t.Cleanup(func() {
		if err := nemesis.RemoveChains(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	marks := make([]uint32, len(ips))
	for i, gid := range gids {
		marks[i] = nemesis.MemberMark(i)
		if err := fw.MarkProcesses(gid, marks[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Before any cut everything connects, bound or not.
	for i := range ips {
		for j := range ips {
			if i != j {
				if err := dialFrom(ips[i], addrs[j]); err != nil {
					t.Fatalf("before the cut, %s -> %s: %v", ips[i], addrs[j], err)
				}
			}
		}
	}
	if err := dialAsGroup(t, gids[0], addrs[1]); err != nil {
		t.Fatalf("before the cut, gid %d -> %s: %v", gids[0], addrs[1], err)
	}

	if err := fw.Drop(nemesis.DropRules([]nemesis.Pair{{0, 1}}, ips, marks)); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	for _, dir := range [][2]int{{0, 1}, {1, 0}} {
		err := dialFrom(ips[dir[0]], addrs[dir[1]])
		if err == nil {
			t.Errorf("bound %s -> %s connected through the cut", ips[dir[0]], addrs[dir[1]])
		} else if !isTimeout(err) {
			t.Errorf("bound %s -> %s failed with %v; a partition must be silent (a timeout)", ips[dir[0]], addrs[dir[1]], err)
		}
		if err := dialAsGroup(t, gids[dir[0]], addrs[dir[1]]); err == nil {
			t.Errorf("unbound member %d (gid %d) -> %s connected through the cut", dir[0], gids[dir[0]], addrs[dir[1]])
		}
	}
	if arrived, err := udpReaches(t, ips[0], ips[1]); err != nil || arrived {
		t.Errorf("udp %s -> %s through the cut: arrived=%v, send error %v (want a silent loss)", ips[0], ips[1], arrived, err)
	}
	if arrived, err := udpReaches(t, ips[0], ips[2]); err != nil || !arrived {
		t.Errorf("udp %s -> %s is not part of the cut: arrived=%v, send error %v", ips[0], ips[2], arrived, err)
	}
	for _, dir := range [][2]int{{0, 2}, {2, 0}, {1, 2}, {2, 1}} {
		if err := dialFrom(ips[dir[0]], addrs[dir[1]]); err != nil {
			t.Errorf("%s -> %s is not part of the cut but failed: %v", ips[dir[0]], addrs[dir[1]], err)
		}
	}
	if err := dialAsGroup(t, gids[0], addrs[2]); err != nil {
		t.Errorf("unbound member 0 -> member 2 is not part of the cut but failed: %v", err)
	}
	// The harness's own clients (another group, 127.0.0.1) still reach everyone.
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err != nil {
			t.Errorf("harness -> %s failed during the cut: %v", a, err)
		} else {
			c.Close()
		}
	}

	rules, err := fw.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 4+len(gids) { // 2 directions x (address + mark) drops, plus one mark rule per member
		t.Errorf("want %d rules, have %d:\n%s", 4+len(gids), len(rules), strings.Join(rules, "\n"))
	}

	if err := fw.Heal(); err != nil {
		t.Fatalf("Heal: %v", err)
	}
	if err := dialFrom(ips[0], addrs[1]); err != nil {
		t.Errorf("after heal, %s -> %s: %v", ips[0], addrs[1], err)
	}
	if err := dialAsGroup(t, gids[1], addrs[0]); err != nil {
		t.Errorf("after heal, gid %d -> %s: %v", gids[1], addrs[0], err)
	}
	if arrived, err := udpReaches(t, ips[1], ips[0]); err != nil || !arrived {
		t.Errorf("after heal, udp %s -> %s: arrived=%v, send error %v", ips[1], ips[0], arrived, err)
	}

	if err := fw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkHostRulesOmit(t, "WIMMS-JEPSEN", "rules left after Close")
}

// checkHostRulesOmit fails t when the host's iptables rules mention s;
// problem says what such a rule would mean.
func checkHostRulesOmit(t *testing.T, s, problem string) {
	t.Helper()
	rules, err := exec.Command("iptables", "-w", "5", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -S: %v: %s", err, rules)
	}
	if strings.Contains(string(rules), s) {
		t.Errorf("%s:\n%s", problem, rules)
	}
}

// A second run while one is in progress must refuse: they would share
// addresses and chains. So must --cleanup.
func TestConcurrentRunsRefused(t *testing.T) {
	release, err := acquireRunLock()
	if err != nil {
		t.Skipf("a run is in progress: %v", err)
	}
	defer release()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), Options{Bin: bin, OutDir: t.TempDir()}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second run: want ErrBusy, got %v", err)
	}
	if nemesis.CheckIptables() == nil {
		if err := CleanupIptables(); !errors.Is(err, ErrBusy) {
			t.Fatalf("cleanup during a run: want ErrBusy, got %v", err)
		}
	}
}

// Without iptables (or root) a run that asks for partitions must refuse
// with a reason, before starting anything.
func TestRunRefusesPartitionsWithoutIptables(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = Run(t.Context(), Options{Bin: bin, OutDir: out, Nemesis: []nemesis.FaultKind{nemesis.FaultPartitionHalves}})
	if !errors.Is(err, nemesis.ErrNoIptables) {
		t.Fatalf("want ErrNoIptables, got %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("refused run still wrote %d files", len(entries))
	}
}
