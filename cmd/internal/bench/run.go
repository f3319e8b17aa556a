package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// backOff is the pause after a transport error or a 503, so that a member
// that cannot serve is not hammered by a tight loop of refusals.
const backOff = 10 * time.Millisecond

// phase is the state the load phase's goroutines share. Everything the hot
// path reads is atomic.
type phase struct {
	measuring    atomic.Bool
	stop         atomic.Bool
	measureStart atomic.Int64 // unix ns; 0 while warming up
	opsLimit     int64        // 0 = run for a duration
	claimed      atomic.Int64 // ops mode: measured operations handed out
	completed    atomic.Int64 // measured operations done (for progress)
	failed       atomic.Int64
}

// Run prepares the cluster (Config.Setup, users for lookup and mix), runs
// the workload and returns its summary. It returns an error only when the
// run could not take place (bad configuration, setup failed); failed
// operations during the load are counted in the summary, not returned.
// Cancelling ctx ends the load early with Summary.Interrupted set.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("bench configuration: %w", err)
	}
	log := cfg.Logger
	api := newAPI(cfg.Clients, cfg.APIToken, cfg.RequestTimeout, cfg.TLS)
	defer api.close()

	runID := fmt.Sprintf("%012x", rand.Uint64()&(1<<48-1))
	workers := newWorkers(&cfg, runID)

	setupStart := time.Now()
	if err := setUp(ctx, api, &cfg, workers); err != nil {
		return nil, fmt.Errorf("bench setup: %w", err)
	}
	setupTime := time.Since(setupStart)
	log.Info("setup done", "elapsed", setupTime, "run_id", runID)

	elapsed, cpuFrom, cpuTo := runLoad(ctx, api, &cfg, workers)
	interrupted := ctx.Err() != nil
	s := summarize(&cfg, workers, elapsed, setupTime, interrupted)
	s.CPU = cpuCost(cpuFrom, cpuTo, s.Ops, elapsed)
	log.Info("run done", "ops", s.Ops, "errors", s.Errors, "throughput", s.Throughput, "interrupted", interrupted)
	return s, nil
}

// newWorkers makes one worker per client, spread round-robin over the
// members, each with its own random stream so that clients do not pick
// the same users in step.
func newWorkers(cfg *Config, runID string) []*worker {
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		addr := cfg.Addrs[i%len(cfg.Addrs)]
		w := &worker{
			id:    i,
			addr:  addr,
			paths: newPaths(cfg.Service),
			query: "consistency=" + cfg.ReadLevel,
			cfg:   cfg,
			rng:   rand.New(rand.NewPCG(rand.Uint64(), uint64(i))),
			runID: runID,
		}
		w.stats.init()
		workers[i] = w
	}
	return workers
}

// setUp creates what the workload needs before the load starts (service
// and nodes with Config.Setup, users for lookup and mix, token users) and
// waits until the members have applied it, so that no measured read
// misses a record the setup wrote.
func setUp(ctx context.Context, api *api, cfg *Config, workers []*worker) error {
	log := cfg.Logger
	var mark highWater
	if cfg.Setup {
		log.Info("setup: service and nodes", "service", cfg.Service, "nodes", cfg.Nodes, "member", cfg.Addrs[0])
		if err := setupServiceAndNodes(ctx, api, cfg, &mark); err != nil {
			return err
		}
	}
	if cfg.Workload == WorkloadLookup || cfg.Workload == WorkloadMix {
		log.Info("setup: preparing users", "users", cfg.Users, "clients", cfg.Clients)
		var prepared atomic.Int64
		stopProgress := startProgress(cfg.Progress, int64(cfg.Users), func() (int64, string) {
			n := prepared.Load()
			return n, fmt.Sprintf("setup: %d/%d users", n, cfg.Users)
		})
		users, err := prepareUsers(ctx, api, workers, cfg, &mark, func(n int64) { prepared.Store(n) })
		stopProgress()
		if err != nil {
			return err
		}
		for _, w := range workers {
			w.lookup = users
		}
	}
	if cfg.Workload == WorkloadToken {
		if err := prepareTokenUsers(ctx, cfg, workers); err != nil {
			return err
		}
	}
	waitApplied(ctx, api, cfg, mark.v.Load())
	return nil
}

// runLoad runs the workers through warmup and the measured phase and
// returns how long was measured (zero when ctx ended during warmup) with
// the members' CPU samples at both ends of it.
func runLoad(ctx context.Context, api *api, cfg *Config, workers []*worker) (elapsed time.Duration, cpuFrom, cpuTo cpuSample) {
	ph := &phase{opsLimit: cfg.Ops}
	var measureStart time.Time
	if cfg.Warmup <= 0 {
		// Measure from the first operation: started later, the flag would
		// let the first operations slip through uncounted.
		measureStart, cpuFrom = ph.beginMeasuring(cfg)
	}
	loadStart := time.Now()
	stopProgress := startProgress(cfg.Progress, progressTotal(cfg), func() (int64, string) {
		return progressSample(cfg, ph, loadStart)
	})
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		w.rq = api.newRequester(ctx, w.addr)
		go func() {
			defer wg.Done()
			w.loop(ctx, ph)
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()

	if measureStart.IsZero() && waitFor(ctx, finished, cfg.Warmup) {
		measureStart, cpuFrom = ph.beginMeasuring(cfg)
	}
	if !measureStart.IsZero() && ctx.Err() == nil {
		cfg.Logger.Info("measuring", "warmup", cfg.Warmup, "clients", cfg.Clients, "workload", cfg.Workload)
		if cfg.Ops == 0 {
			waitFor(ctx, finished, cfg.Duration)
		} else {
			select {
			case <-ctx.Done():
			case <-finished:
			}
		}
	}
	ph.stop.Store(true)
	<-finished
	if !measureStart.IsZero() {
		elapsed = time.Since(measureStart)
	}
	cpuTo = sampleCPU(cfg.MembersCPU)
	stopProgress()
	return elapsed, cpuFrom, cpuTo
}

// beginMeasuring ends warmup: operations started from now on are counted.
// The CPU sample is taken first so that the measured interval holds all of
// the measured operations' work.
func (ph *phase) beginMeasuring(cfg *Config) (time.Time, cpuSample) {
	cpuFrom := sampleCPU(cfg.MembersCPU)
	start := time.Now()
	ph.measureStart.Store(start.UnixNano())
	ph.measuring.Store(true)
	return start, cpuFrom
}

// waitFor sleeps d unless ctx ends or the workers finish first; it reports
// whether the full d passed.
func waitFor(ctx context.Context, finished <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-finished:
	}
	return false
}

// loop runs operations until the phase stops, the op budget is spent or
// ctx ends. Whether an operation is measured is decided when it starts, so
// an operation straddling the end of warmup is not counted.
func (w *worker) loop(ctx context.Context, ph *phase) {
	for !ph.stop.Load() && ctx.Err() == nil {
		measured := ph.measuring.Load()
		if measured && ph.opsLimit > 0 && ph.claimed.Add(1) > ph.opsLimit {
			return
		}
		start := time.Now()
		kind, r, err := w.step()
		latency := time.Since(start)
		if ctx.Err() != nil {
			// Cancelled by us: the failure says nothing about the server.
			return
		}
		if measured {
			w.record(kind, r, err, latency)
			ph.completed.Add(1)
			if err != nil || r.Code < 200 || r.Code >= 300 {
				ph.failed.Add(1)
			}
		}
		if shouldBackOff(r, err) {
			select {
			case <-ctx.Done():
			case <-time.After(backOff):
			}
		}
	}
}

func progressTotal(cfg *Config) int64 {
	if cfg.Ops > 0 {
		return cfg.Ops
	}
	return (cfg.Warmup + cfg.Duration).Milliseconds()
}

func progressSample(cfg *Config, ph *phase, loadStart time.Time) (int64, string) {
	start := ph.measureStart.Load()
	if start == 0 {
		v := int64(0)
		if cfg.Ops == 0 {
			v = time.Since(loadStart).Milliseconds()
		}
		return v, "warming up"
	}
	done, failed := ph.completed.Load(), ph.failed.Load()
	rate := float64(done) / time.Since(time.Unix(0, start)).Seconds()
	desc := fmt.Sprintf("%d ops, %.0f ops/s, %d errors", done, rate, failed)
	if cfg.Ops > 0 {
		return done, desc
	}
	return time.Since(loadStart).Milliseconds(), desc
}
