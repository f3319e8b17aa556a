package nemesis

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestParseNemesis(t *testing.T) {
	// expands checks that spec names exactly the fault kinds want.
	expands := func(spec string, want ...FaultKind) []FaultKind {
		t.Helper()
		got, err := Parse(spec)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Parse(%q) = %v, %v; want %v", spec, got, err, want)
		}
		return got
	}
	expands("partition,kill, pause,kill-leader", FaultPartitionHalves, FaultPartitionLeader, FaultPartitionRing,
		FaultPartitionBridge, FaultKill, FaultKillLeader, FaultPause, FaultPauseLeader)
	if got := expands("restart-all,disk-full,kill", FaultRestartAll, FaultDiskFull, FaultKill, FaultKillLeader); NeedsIptables(got) {
		t.Fatal("restart-all and disk-full need no iptables")
	}
	if got := expands("tail-damage,disk-full", FaultTailDamage, FaultDiskFull); NeedsIptables(got) {
		t.Fatal("tail-damage needs no iptables")
	}
	expands("none")
	if _, err := Parse("partition,flood"); err == nil {
		t.Fatal("unknown nemesis accepted")
	}
	if NeedsIptables([]FaultKind{FaultKill, FaultPause}) || !NeedsIptables([]FaultKind{FaultKill, FaultPartitionRing}) {
		t.Fatal("NeedsIptables is wrong")
	}
}

// sees returns, for each member, the members it can still talk to (itself included).
func sees(n int, cut []Pair) []map[int]bool {
	out := make([]map[int]bool, n)
	for i := range n {
		out[i] = map[int]bool{}
		for j := range n {
			if i == j || !slices.Contains(cut, NewPair(i, j)) {
				out[i][j] = true
			}
		}
	}
	return out
}

func TestHalvesCutSplitsIntoTwoSides(t *testing.T) {
	for n := 2; n <= 7; n++ {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		cut, _ := HalvesCut(n, rng, nil)
		view := sees(n, cut)
		// Two cliques: whoever sees each other sees the same set.
		sizes := map[int]bool{}
		for i := range n {
			for j := range view[i] {
				if len(view[j]) != len(view[i]) {
					t.Fatalf("n=%d: %d and %d see different sides", n, i, j)
				}
			}
			sizes[len(view[i])] = true
		}
		if want := []int{n / 2, n - n/2}; !sizes[want[0]] || !sizes[want[1]] || len(cut) != want[0]*want[1] {
			t.Fatalf("n=%d: sides %v, %d pairs cut", n, sizes, len(cut))
		}
	}
}

func TestIsolateCutIsolatesOnlyTheTarget(t *testing.T) {
	cut, desc := IsolateCut(5, 2, []string{"n1", "n2", "n3", "n4", "n5"})
	view := sees(5, cut)
	if len(view[2]) != 1 {
		t.Fatalf("target still sees %v", view[2])
	}
	for _, i := range []int{0, 1, 3, 4} {
		if len(view[i]) != 4 || view[i][2] {
			t.Fatalf("member %d sees %v", i, view[i])
		}
	}
	if desc != "[n3] | [n1 n2 n4 n5]" {
		t.Fatalf("description %q", desc)
	}
}

func TestRingCutEachSeesADifferentMajority(t *testing.T) {
	for n := 4; n <= 9; n++ {
		rng := rand.New(rand.NewPCG(uint64(n), 2))
		cut, _ := RingCut(n, rng, nil)
		view := sees(n, cut)
		for i := range n {
			if len(view[i]) <= n/2 {
				t.Fatalf("n=%d: member %d sees %d, not a majority", n, i, len(view[i]))
			}
			if len(view[i]) == n {
				t.Fatalf("n=%d: member %d sees everyone", n, i)
			}
			for j := range i {
				if equalSets(view[i], view[j]) {
					t.Fatalf("n=%d: members %d and %d see the same majority", n, i, j)
				}
			}
		}
	}
}

func TestBridgeCutLeavesOneBridge(t *testing.T) {
	for n := 3; n <= 7; n++ {
		rng := rand.New(rand.NewPCG(uint64(n), 3))
		cut, _ := BridgeCut(n, rng, nil)
		view := sees(n, cut)
		bridges := 0
		for i := range n {
			if len(view[i]) == n {
				bridges++
			}
		}
		if bridges != 1 || len(cut) == 0 {
			t.Fatalf("n=%d: %d members see everyone, %d pairs cut", n, bridges, len(cut))
		}
	}
	// Three members are too few for a ring: it must still cut something.
	if cut, _ := RingCut(3, rand.New(rand.NewPCG(1, 1)), nil); len(cut) != 1 {
		t.Fatalf("ring of 3 cut %v, want the bridge's one pair", cut)
	}
}

func equalSets(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestDropRulesCoverBothDirections(t *testing.T) {
	ips := []string{"127.0.0.10", "127.0.0.11", "127.0.0.12"}
	marks := []uint32{MemberMark(0), MemberMark(1), MemberMark(2)}
	rules := DropRules([]Pair{{0, 2}}, ips, marks)
	want := []DropRule{
		{SrcIP: "127.0.0.10", DstIP: "127.0.0.12", SrcMark: MemberMark(0)},
		{SrcIP: "127.0.0.12", DstIP: "127.0.0.10", SrcMark: MemberMark(2)},
	}
	if !slices.Equal(rules, want) {
		t.Fatalf("got %+v, want %+v", rules, want)
	}
	if MemberMark(0) == MemberMark(1) || MemberMark(0)&^markMask != 0 {
		t.Fatal("marks must differ and stay inside the mask")
	}
}
