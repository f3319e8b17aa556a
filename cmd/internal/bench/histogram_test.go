package bench

import (
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// exactPercentile is the nearest-rank definition Histogram.Percentile
// approximates, in integer arithmetic (p in thousandths of a percent) so
// that the reference itself has no rounding to argue about.
func exactPercentile(sorted []int64, milliPct int) int64 {
	n := len(sorted)
	rank := (milliPct*n + 99999) / 100000
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

func TestPercentilesExactBelowSubBucketRange(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ { // values < 128 ns have buckets of width 1
		h.Record(time.Duration(v))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}, {0.001, 1}} {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if h.Max() != 100 || h.Min() != 1 || h.Count() != 100 || h.Mean() != 50 {
		t.Errorf("max %d min %d count %d mean %d", h.Max(), h.Min(), h.Count(), h.Mean())
	}
}

func TestPercentileOfEmptyAndSingle(t *testing.T) {
	var h Histogram
	if h.Percentile(99) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(1234567 * time.Nanosecond)
	for _, p := range []float64{1, 50, 99.9, 100} {
		if got := h.Percentile(p); got != 1234567 {
			t.Errorf("single sample: p%v = %d, want the sample (clamped to min/max)", p, got)
		}
	}
}

func TestPercentileOutlier(t *testing.T) {
	var h Histogram
	for i := 0; i < 999; i++ {
		h.Record(time.Millisecond)
	}
	h.Record(2 * time.Second)
	if got := h.Percentile(99.9); got > time.Millisecond+time.Millisecond/128 || got < time.Millisecond {
		t.Errorf("p99.9 of 999×1ms + 1×2s = %v, want ≈1ms (the outlier is rank 1000)", got)
	}
	if got := h.Percentile(100); got != 2*time.Second {
		t.Errorf("p100 = %v, want the exact max 2s", got)
	}
}

func TestBucketBoundaries(t *testing.T) {
	for i := 0; i < histBuckets-1; i++ {
		hi := bucketHigh(i)
		if hi == math.MaxInt64 {
			break
		}
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, high+1 to %d", i, hi, bucketOf(hi), bucketOf(hi+1))
		}
	}
	if b := bucketOf(math.MaxInt64); b >= histBuckets {
		t.Fatalf("MaxInt64 lands in bucket %d of %d", b, histBuckets)
	}
}

// Against sorted samples: a reported percentile is never below the exact
// one and at most 1/128 above it; merging equals recording in one.
func TestPercentileMatchesExactWithinBucketError(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := rapid.SliceOfN(rapid.Int64Range(0, int64(30*time.Second)), 1, 400).Draw(t, "ns")
		split := rapid.IntRange(0, len(vals)).Draw(t, "split")
		var a, b, whole Histogram
		for i, v := range vals {
			whole.Record(time.Duration(v))
			if i < split {
				a.Record(time.Duration(v))
			} else {
				b.Record(time.Duration(v))
			}
		}
		a.Merge(&b)
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		for _, milli := range []int{50000, 90000, 99000, 99900, 100000} {
			p := float64(milli) / 1000
			exact := exactPercentile(sorted, milli)
			got := int64(whole.Percentile(p))
			if got < exact || float64(got) > float64(exact)*(1+1.0/128)+1 {
				t.Fatalf("p%v = %d, exact %d", p, got, exact)
			}
			if merged := int64(a.Percentile(p)); merged != got {
				t.Fatalf("p%v: merged %d, whole %d", p, merged, got)
			}
		}
		if int64(whole.Max()) != sorted[len(sorted)-1] || int64(whole.Min()) != sorted[0] {
			t.Fatalf("max/min %d/%d, want %d/%d", whole.Max(), whole.Min(), sorted[len(sorted)-1], sorted[0])
		}
	})
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * time.Microsecond)
	}
}

// Samples 2% apart never share a bucket, so the nearest rank must be hit
// exactly: this catches an off-by-one rank (e.g. from 99.9/100*1000 being
// 999.0000000000001 in binary floating point) that bucket error would hide.
func TestPercentileRankIsExact(t *testing.T) {
	vals := make([]int64, 1500) // the largest is 1000·1.02^1499 ≈ 7e15 ns, far from overflow
	for i := range vals {
		vals[i] = int64(math.Round(1000 * math.Pow(1.02, float64(i))))
	}
	for n := 1; n <= len(vals); n += 7 {
		var h Histogram
		for _, v := range vals[:n] {
			h.Record(time.Duration(v))
		}
		for _, milli := range []int{50000, 90000, 99000, 99900, 100000} {
			exact := exactPercentile(vals[:n], milli)
			got := int64(h.Percentile(float64(milli) / 1000))
			if bucketOf(got) != bucketOf(exact) {
				t.Fatalf("n=%d p%v = %d, exact %d (a different rank)", n, float64(milli)/1000, got, exact)
			}
		}
	}
}
