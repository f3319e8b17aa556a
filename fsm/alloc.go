package fsm

import (
	"math"
	"math/bits"
)

// ceilRate is ceil(capacity × rate) computed exactly: rate is nano/1e9, the
// product is formed in 128 bits, so 100 × "0.1" is 10, never 11.
func ceilRate(capacity, rateNano int64) int64 {
	if capacity <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(capacity), uint64(rateNano))
	lo, carry := bits.Add64(lo, rateScale-1, 0)
	hi += carry
	// hi < 2^29 < 1e9 because capacity < 2^63 and rateNano ≤ 1e9 < 2^30,
	// so Div64 cannot overflow.
	q, _ := bits.Div64(hi, lo, rateScale)
	return int64(q)
}

// loadLess reports whether a's load/capacity is below b's, compared
// exactly by cross-multiplying in 128 bits. Loads and capacities are never
// negative. A zero capacity only reaches here under the seeded bug
// skipCapacityCheck; the comparison is still a deterministic total preorder
// there.
func loadLess(a, b *Node) bool {
	ah, al := bits.Mul64(uint64(a.CurrentLoad), uint64(b.Capacity))
	bh, bl := bits.Mul64(uint64(b.CurrentLoad), uint64(a.Capacity))
	return ah < bh || ah == bh && al < bl
}

// nodeBetter orders candidates: lowest load fraction, ties to lowest id.
func nodeBetter(a, b *Node) bool {
	if loadLess(a, b) {
		return true
	}
	if loadLess(b, a) {
		return false
	}
	return a.ID < b.ID
}

// splitmix64 is the PRNG for spread: tiny, seedable, and the same on every
// platform and Go version (math/rand makes no such promise).
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below returns a uniform value in [0, n) (Lemire's method with rejection,
// so no modulo bias).
func (s *splitmix64) below(n uint64) uint64 {
	hi, lo := bits.Mul64(s.next(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(s.next(), n)
		}
	}
	return hi
}

// maxSpreadStack bounds the on-stack candidate buffer; more nodes than this
// fall back to a heap slice.
const maxSpreadStack = 32

// chooseNode runs docs/spec.md §3 for sv without mutating anything. It returns the
// index of the chosen node in sv.nodes and, when capacity had to be
// released, the availability of every node after the release (nil
// otherwise). The caller commits both with commitChoice.
func chooseNode(sv *svcState, seed uint64) (int, []int64, *Error) {
	if idx := pickCandidate(sv, nil, seed); idx >= 0 {
		return idx, nil, nil
	}
	released := make([]int64, len(sv.nodes))
	releasedAny := false
	for i := range sv.nodes {
		nd := &sv.nodes[i]
		released[i] = nd.Available
		if nd.Downed || nd.Available > 0 {
			continue
		}
		var v int64
		if skipCapacityCheck {
			v = ceilRate(nd.Capacity, sv.rateNano)
		} else {
			if nd.Capacity <= nd.CurrentLoad {
				continue
			}
			v = min(ceilRate(nd.Capacity, sv.rateNano), nd.Capacity-nd.CurrentLoad)
		}
		if v > 0 {
			released[i] = v
			releasedAny = true
		}
	}
	if releasedAny {
		if idx := pickCandidate(sv, released, seed); idx >= 0 {
			return idx, released, nil
		}
	}
	return -1, nil, &Error{Status: StatusNoNodeAvailable, Msg: "no node available for service " + sv.Name}
}

// pickCandidate returns the chosen candidate index or -1. available
// overrides the nodes' Available when non-nil.
func pickCandidate(sv *svcState, available []int64, seed uint64) int {
	isCandidate := func(i int) bool {
		nd := &sv.nodes[i]
		avail := nd.Available
		if available != nil {
			avail = available[i]
		}
		return avail > 0 && !nd.Downed && !nd.Backoff && (skipCapacityCheck || nd.Capacity > nd.CurrentLoad)
	}
	if sv.Spread <= 1 {
		best := -1
		for i := range sv.nodes {
			if isCandidate(i) && (best < 0 || nodeBetter(&sv.nodes[i], &sv.nodes[best])) {
				best = i
			}
		}
		return best
	}
	var buf [maxSpreadStack]int
	cands := buf[:0]
	for i := range sv.nodes {
		if !isCandidate(i) {
			continue
		}
		// Insertion sort: node counts are small and this keeps the order
		// total (ties by id) without allocating.
		cands = append(cands, i)
		for k := len(cands) - 1; k > 0 && nodeBetter(&sv.nodes[cands[k]], &sv.nodes[cands[k-1]]); k-- {
			cands[k], cands[k-1] = cands[k-1], cands[k]
		}
	}
	if len(cands) == 0 {
		return -1
	}
	n := uint64(len(cands))
	if uint64(sv.Spread) < n {
		n = uint64(sv.Spread)
	}
	rng := splitmix64(seed)
	return cands[rng.below(n)]
}

// commitChoice applies a chooseNode outcome: the release (if any), then the
// allocation counters of docs/spec.md §3.
func commitChoice(sv *svcState, idx int, released []int64) {
	for i, v := range released {
		sv.nodes[i].Available = v
	}
	takeSlot(&sv.nodes[idx])
}

// takeSlot moves a node's counters for one new record placed by §3 or on an
// explicitly named node.
func takeSlot(nd *Node) {
	addLoad(nd)
	nd.Available = max(nd.Available-1, 0)
}

// addLoad counts one more record against nd. It saturates: an operator may
// set current_load to the maximum by hand, and wrapping to a negative load
// would corrupt every later fraction comparison.
func addLoad(nd *Node) {
	if nd.CurrentLoad < math.MaxInt64 {
		nd.CurrentLoad++
	}
}
