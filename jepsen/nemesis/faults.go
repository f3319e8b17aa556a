package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FaultKind is one kind of fault the nemesis injects.
type FaultKind string

const (
	// FaultPartitionHalves cuts the members into two random halves.
	FaultPartitionHalves FaultKind = "partition-halves"
	// FaultPartitionLeader isolates the current leader from every other member.
	FaultPartitionLeader FaultKind = "partition-leader"
	// FaultPartitionRing: every member sees a majority, no two the same one
	// (the bridge when there are too few members for a ring).
	FaultPartitionRing FaultKind = "partition-ring"
	// FaultPartitionBridge: two halves that only one bridge member sees both of.
	FaultPartitionBridge FaultKind = "partition-bridge"
	// FaultKill: kill -9 a random member, restart it when healing.
	FaultKill FaultKind = "kill"
	// FaultKillLeader: kill -9 the leader, restart it when healing.
	FaultKillLeader FaultKind = "kill-leader"
	// FaultPause: SIGSTOP a random member, SIGCONT when healing.
	FaultPause FaultKind = "pause"
	// FaultPauseLeader: SIGSTOP the leader, SIGCONT when healing.
	FaultPauseLeader FaultKind = "pause-leader"
	// FaultMembership: remove a member from the cluster; when healing, stop
	// it, wipe its data and add it back with --join, as an operator would.
	FaultMembership FaultKind = "membership"
	// FaultRestartAll: kill -9 every member at once (a power cut, or a
	// host rebooting the whole cluster), restart them all on heal.
	FaultRestartAll FaultKind = "restart-all"
	// FaultDiskFull: fill a random member's filesystem (each member's data
	// directory is a size-limited tmpfs in such a run); empty it on heal.
	FaultDiskFull FaultKind = "disk-full"
	// FaultTailDamage: kill -9 a majority, damage the tail segment of each
	// one's log (cut the last 300 written bytes; flip a frame header in the
	// middle), restart them (taildamage.go).
	FaultTailDamage FaultKind = "tail-damage"
)

// FaultKinds lists every fault with a one-line description (for --help and docs).
var FaultKinds = []struct {
	Kind        FaultKind
	Description string
}{
	{FaultPartitionHalves, "iptables: split the members into two random halves"},
	{FaultPartitionLeader, "iptables: isolate the leader from all other members"},
	{FaultPartitionRing, "iptables: every member sees a majority, no two the same (bridge for 3 members)"},
	{FaultPartitionBridge, "iptables: two halves joined only through one bridge member"},
	{FaultKill, "kill -9 a random member, restart it on heal"},
	{FaultKillLeader, "kill -9 the leader, restart it on heal"},
	{FaultPause, "SIGSTOP a random member, SIGCONT on heal"},
	{FaultPauseLeader, "SIGSTOP the leader, SIGCONT on heal"},
	{FaultMembership, "remove a member; on heal wipe it and add it back with --join"},
	{FaultRestartAll, "kill -9 every member at once, restart them all on heal"},
	{FaultDiskFull, "fill a member's data filesystem (a size-limited tmpfs, needs root); empty it on heal"},
	{FaultTailDamage, "kill -9 a majority, cut 300 bytes off / flip a frame header in each one's tail log segment, restart them; a member may refuse (exit 3)"},
}

// nemesisAliases are the short names of --nemesis.
var nemesisAliases = map[string][]FaultKind{
	"partition":  {FaultPartitionHalves, FaultPartitionLeader, FaultPartitionRing, FaultPartitionBridge},
	"kill":       {FaultKill, FaultKillLeader},
	"pause":      {FaultPause, FaultPauseLeader},
	"membership": {FaultMembership},
}

// Parse turns a --nemesis list ("partition,kill" or exact kinds) into
// distinct fault kinds, in a stable order. "none" or "" means no faults.
func Parse(list string) ([]FaultKind, error) {
	var out []FaultKind
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || name == "none" {
			continue
		}
		kinds, ok := nemesisAliases[name]
		if !ok {
			i := slices.IndexFunc(FaultKinds, func(k struct {
				Kind        FaultKind
				Description string
			}) bool {
				return string(k.Kind) == name
			})
			if i < 0 {
				return nil, fmt.Errorf("unknown nemesis %q (want partition, kill, pause, membership, restart-all, disk-full, tail-damage or one of the kinds in docs/chaos.md)", name)
			}
			kinds = []FaultKind{FaultKinds[i].Kind}
		}
		for _, k := range kinds {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

func (k FaultKind) IsPartition() bool { return strings.HasPrefix(string(k), "partition-") }

func (k FaultKind) TargetsLeader() bool { return strings.HasSuffix(string(k), "-leader") }

// NeedsIptables reports whether any of the faults cuts the network.
func NeedsIptables(kinds []FaultKind) bool { return slices.ContainsFunc(kinds, FaultKind.IsPartition) }

// Event is one injected fault, from injection to heal.
type Event struct {
	Kind    FaultKind     `json:"kind"`
	Targets []string      `json:"targets"`
	Detail  string        `json:"detail"`
	Start   time.Duration `json:"start_ns"`
	End     time.Duration `json:"end_ns"`
	// Injected: the fault was really in place (false when, say, no leader
	// was known or the membership change was refused).
	Injected bool   `json:"injected"`
	Error    string `json:"error,omitempty"` // the fault could not be (fully) injected or healed
}

// Pair is an unordered pair of member indices whose traffic is cut.
type Pair [2]int

// NewPair is the pair of a and b, the lower index first.
func NewPair(a, b int) Pair {
	if a > b {
		a, b = b, a
	}
	return Pair{a, b}
}

// CrossPairs cuts every member of a from every member of b.
func CrossPairs(a, b []int) []Pair {
	var out []Pair
	for _, x := range a {
		for _, y := range b {
			out = append(out, NewPair(x, y))
		}
	}
	slices.SortFunc(out, comparePairs)
	return out
}

func comparePairs(a, b Pair) int {
	if a[0] != b[0] {
		return a[0] - b[0]
	}
	return a[1] - b[1]
}

// group formats member indices with their names (names may be nil).
func group(names []string, idx ...int) string {
	var parts []string
	for _, i := range sortedInts(idx) {
		if i < len(names) {
			parts = append(parts, names[i])
		} else {
			parts = append(parts, fmt.Sprint(i))
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// HalvesCut splits n members into two random halves (the smaller first).
func HalvesCut(n int, rng *rand.Rand, names []string) ([]Pair, string) {
	perm := rng.Perm(n)
	a, b := perm[:n/2], perm[n/2:]
	return CrossPairs(a, b), group(names, a...) + " | " + group(names, b...)
}

// IsolateCut cuts one member from all others.
func IsolateCut(n, target int, names []string) ([]Pair, string) {
	var rest []int
	for i := range n {
		if i != target {
			rest = append(rest, i)
		}
	}
	return CrossPairs([]int{target}, rest), group(names, target) + " | " + group(names, rest...)
}

// BridgeCut: [A] bridge [B]; A and B cannot talk, the bridge talks to both.
func BridgeCut(n int, rng *rand.Rand, names []string) ([]Pair, string) {
	perm := rng.Perm(n)
	k := (n - 1) / 2
	a, bridge, b := perm[:k], perm[k], perm[k+1:]
	return CrossPairs(a, b), group(names, a...) + " | bridge " + group(names, bridge) + " | " + group(names, b...)
}

// RingCut places the members on a random ring; each keeps the members within
// distance d, the smallest d with which it sees a majority. Every member then
// sees a majority and no two see the same one. With 3 members everyone would
// see everyone, so it falls back to the bridge.
func RingCut(n int, rng *rand.Rand, names []string) ([]Pair, string) {
	majority := n/2 + 1
	d := majority / 2 // the smallest d with 2d+1 >= majority
	if 2*d+1 >= n {
		return BridgeCut(n, rng, names)
	}
	perm := rng.Perm(n)
	pos := make([]int, n)
	for i, m := range perm {
		pos[m] = i
	}
	var out []Pair
	for a := range n {
		for b := a + 1; b < n; b++ {
			dist := abs(pos[a] - pos[b])
			dist = min(dist, n-dist)
			if dist > d {
				out = append(out, Pair{a, b})
			}
		}
	}
	ring := make([]string, n)
	for i, m := range perm {
		ring[i] = group(names, m)
	}
	return out, fmt.Sprintf("ring %s, each sees its %d neighbours on either side", strings.Join(ring, "-"), d)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sortedInts(v []int) []int {
	out := append([]int(nil), v...)
	slices.Sort(out)
	return out
}

// DropRule drops traffic from one member to another. A member's outgoing
// connections leave from 127.0.0.1 unless it binds its own address, so a
// source-address rule alone may cut nothing: SrcMark (the packet mark of
// the sending member's process, see ChainOwner) matches them instead.
type DropRule struct {
	SrcIP   string
	DstIP   string
	SrcMark uint32 // 0: address rule only
}

// DropRules turns cut pairs into rules for both directions.
func DropRules(pairs []Pair, ips []string, marks []uint32) []DropRule {
	var out []DropRule
	for _, p := range pairs {
		for _, dir := range [][2]int{{p[0], p[1]}, {p[1], p[0]}} {
			var mark uint32
			if marks != nil {
				mark = marks[dir[0]]
			}
			out = append(out, DropRule{SrcIP: ips[dir[0]], DstIP: ips[dir[1]], SrcMark: mark})
		}
	}
	return out
}
