package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets (the HDR histogram
// layout): values below 2^subBits ns are exact, larger ones land in one of
// 2^subBits equal sub-buckets of their power of two, so a reported
// percentile is at most 1/2^subBits (0.78%) above the true one. Memory is
// fixed (about 59 KiB) whatever the run length, and Record never allocates,
// which an exact list of samples cannot promise on a long run.
//
// A Histogram is not safe for concurrent use: every client owns one and the
// run merges them at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // ns; overflows only after ~584 years of summed latency
	min    int64
	max    int64
}

const (
	subBits     = 7
	subCount    = 1 << subBits
	histBuckets = subCount + (64-subBits)*subCount
)

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	shift := bits.Len64(u) - subBits - 1
	return subCount + shift*subCount + int(u>>uint(shift)) - subCount
}

// bucketHigh is the largest value that maps to bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := (i - subCount) / subCount
	mantissa := uint64((i-subCount)%subCount + subCount)
	high := (mantissa+1)<<uint(shift) - 1
	if high > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(high)
}

// Record adds one duration; negative durations (a clock oddity) count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += uint64(v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the exact largest sample (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the exact smallest sample (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100): the
// smallest sample such that at least p% of samples are ≤ it, reported as
// the top of its bucket but never above the exact maximum. Empty: 0.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The epsilon keeps binary rounding (99.9/100*1000 = 999.0000000000001)
	// from pushing the rank one sample too far.
	rank := uint64(math.Ceil(p/100*float64(h.n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
