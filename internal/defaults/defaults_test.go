package defaults

import (
	"testing"
	"time"
)

func TestUnlessPositive(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Second},
		{-time.Millisecond, time.Second},
		{time.Millisecond, time.Millisecond},
	} {
		got := tc.in
		UnlessPositive(&got, time.Second)
		if got != tc.want {
			t.Errorf("UnlessPositive(%v, 1s) = %v, want %v", tc.in, got, tc.want)
		}
	}
	var threshold uint64
	UnlessPositive(&threshold, 8192)
	if threshold != 8192 {
		t.Errorf("unsigned zero: got %d, want the default", threshold)
	}
}
