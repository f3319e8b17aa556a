package netguard

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultLogInterval is how often a RateLog writes at most one line.
const DefaultLogInterval = 10 * time.Second

// RateLog writes a repeated warning at most once per interval. A flood of
// refused handshakes or bad gossip packets would otherwise write one line
// each (tens of thousands per minute), filling disks and burying
// everything else; the count of lines held back rides on the next line
// written, and the metrics count every event.
type RateLog struct {
	log      hclog.Logger
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// NewRateLog logs through log at most once per interval (<= 0: DefaultLogInterval).
func NewRateLog(log hclog.Logger, interval time.Duration) *RateLog {
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &RateLog{log: log, interval: interval, now: time.Now}
}

// Warn logs msg with args unless a line went out less than an interval
// ago; then it only counts the event for the next line's "suppressed".
func (r *RateLog) Warn(msg string, args ...any) {
	r.mu.Lock()
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n, "suppressed_over", r.interval.String())
	}
	r.log.Warn(msg, args...)
}
