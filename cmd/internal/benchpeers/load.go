package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"
)

// opTimeout bounds one operation, like `wimms bench --request-timeout`.
const opTimeout = 10 * time.Second

// opFunc performs one operation for client c; retries is how many times a
// transaction had to be re-run (conflicts, deadlocks) before err.
type opFunc func(ctx context.Context, c int, rng *rand.Rand) (retries int, err error)

// Result is one system's run of one workload in one round.
type Result struct {
	System   string  `json:"system"`
	Workload string  `json:"workload"`
	Round    int     `json:"round"`
	Seconds  float64 `json:"duration_s"` // measured wall time
	Ops      int64   `json:"ops"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	Retries  int64   `json:"retries"`
	OKPerSec float64 `json:"ok_per_s"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// MembersUsPerOp: the server processes' CPU time over the measured
	// window divided by the measured operations; ClientUsPerOp the load
	// generator's.
	MembersUsPerOp float64          `json:"members_us_per_op"`
	ClientUsPerOp  float64          `json:"client_us_per_op"`
	ErrorKinds     map[string]int64 `json:"error_kinds,omitempty"`
	// Check is the alloc workload's consistency check of the peers.
	Check string `json:"check,omitempty"`
	// Failed says why the run could not be made (no numbers then).
	Failed string `json:"failed,omitempty"`
}

type clientStats struct {
	lat            []time.Duration
	ok, errs, rtry int64
	kinds          map[string]int64
}

// drive runs a closed loop of clients operations for warmup+duration and
// measures the operations that start after the warmup. The window ends when
// the last client has finished its last operation; the members' and this
// process's CPU are sampled at both ends.
func drive(ctx context.Context, cfg Config, pids []int, op opFunc) Result {
	start := time.Now()
	measureFrom, deadline := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	stats := make([]clientStats, cfg.Clients)
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Go(func() { runClient(ctx, c, measureFrom, deadline, op, &stats[c]) })
	}
	var cpu0 cpuSample
	cpuTaken := make(chan struct{})
	go func() {
		defer close(cpuTaken)
		t := time.NewTimer(time.Until(measureFrom))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		cpu0 = sampleCPU(pids)
	}()
	wg.Wait()
	<-cpuTaken
	cpu1, end := sampleCPU(pids), time.Now()
	return summarize(stats, end.Sub(measureFrom), cpu0, cpu1)
}

func runClient(ctx context.Context, c int, measureFrom, deadline time.Time, op opFunc, st *clientStats) {
	rng := rand.New(rand.NewPCG(uint64(c)+1, uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(deadline) {
			return
		}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		retries, err := op(octx, c, rng)
		cancel()
		if t0.Before(measureFrom) || ctx.Err() != nil {
			continue
		}
		st.rtry += int64(retries)
		if err != nil {
			st.errs++
			if st.kinds == nil {
				st.kinds = map[string]int64{}
			}
			st.kinds[errKind(err)]++
			continue
		}
		st.ok++
		st.lat = append(st.lat, time.Since(t0))
	}
}

// errKind keeps error counts readable: the first 80 bytes of the message.
func errKind(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func summarize(stats []clientStats, window time.Duration, cpu0, cpu1 cpuSample) Result {
	var r Result
	var lat []time.Duration
	for _, st := range stats {
		r.OK += st.ok
		r.Errors += st.errs
		r.Retries += st.rtry
		lat = append(lat, st.lat...)
		for k, n := range st.kinds {
			if r.ErrorKinds == nil {
				r.ErrorKinds = map[string]int64{}
			}
			r.ErrorKinds[k] += n
		}
	}
	r.Ops = r.OK + r.Errors
	r.Seconds = round2(window.Seconds())
	if window > 0 {
		r.OKPerSec = round2(float64(r.OK) / window.Seconds())
	}
	slices.Sort(lat)
	r.P50ms, r.P99ms = percentileMs(lat, 50), percentileMs(lat, 99)
	if r.Ops > 0 {
		r.MembersUsPerOp = round2(float64((cpu1.members - cpu0.members).Microseconds()) / float64(r.Ops))
		r.ClientUsPerOp = round2(float64((cpu1.client - cpu0.client).Microseconds()) / float64(r.Ops))
	}
	return r
}

// percentileMs is the nearest-rank percentile of sorted latencies.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}

type cpuSample struct{ client, members time.Duration }

func sampleCPU(pids []int) cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range pids {
		if d, err := processCPU(pid); err == nil {
			s.members += d
		}
	}
	return s
}

func round2(f float64) float64 {
	return float64(int64(f*100+0.5)) / 100
}
