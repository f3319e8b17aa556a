package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

var workloads = []string{"alloc", "lookup"}

// runAll runs every round; in round r the systems start at the r-th one,
// so none always runs first (after an idle machine) or last.
func runAll(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	rep := newReport(cfg)
	systems, err := available(ctx, cfg, rep)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "benchpeers-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	rep.LoadBefore = loadAvg()
	for round := range cfg.Rounds {
		for i := range systems {
			sys := systems[(i+round)%len(systems)]
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted: %w", ctx.Err())
			}
			rep.Runs = append(rep.Runs, runSystem(ctx, cfg, sys, round+1, tmp)...)
		}
	}
	rep.LoadAfter = loadAvg()
	rep.summarize(systems)
	return rep, nil
}

// available drops the systems that cannot run here, with the reason.
func available(ctx context.Context, cfg Config, rep *Report) ([]string, error) {
	var out []string
	for _, s := range cfg.Systems {
		switch s {
		case "wimms":
			if _, err := os.Stat(cfg.WimmsBin); err != nil {
				return nil, fmt.Errorf("wimms binary (-wimms-bin): %w", err)
			}
			rep.WimmsVersion = wimmsVersion(ctx, cfg.WimmsBin)
		case "mariadb":
			if _, err := findMariadbd(cfg.Mariadbd); err != nil {
				rep.Skipped[s] = err.Error()
				continue
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func newPeer(cfg Config, sys string) (peer, error) {
	switch sys {
	case "etcd":
		return &etcdPeer{}, nil
	case "mariadb":
		bin, err := findMariadbd(cfg.Mariadbd)
		if err != nil {
			return nil, err
		}
		return &mariadbPeer{bin: bin, clients: cfg.Clients}, nil
	}
	return nil, fmt.Errorf("no peer %q", sys)
}

// runSystem runs both workloads on one system; a failure becomes a
// Result with Failed set, so the other systems still run.
func runSystem(ctx context.Context, cfg Config, sys string, round int, tmp string) []Result {
	var out []Result
	add := func(workload string, r Result, err error) {
		r.System, r.Workload, r.Round = sys, workload, round
		if err != nil {
			r.Failed = err.Error()
			cfg.logf("round %d %s %s: FAILED: %v", round, sys, workload, err)
		} else {
			cfg.logf("round %d %s %s: %.0f ok/s, p50 %.2f ms, %d errors, %d retries", round, sys, workload, r.OKPerSec, r.P50ms, r.Errors, r.Retries)
		}
		out = append(out, r)
	}
	if sys == "wimms" {
		for _, w := range workloads {
			cfg.logf("round %d %s %s ...", round, sys, w)
			r, err := runWimms(ctx, cfg, w)
			add(w, r, err)
		}
		return out
	}
	p, err := newPeer(cfg, sys)
	var dir string
	if err == nil {
		dir, err = os.MkdirTemp(tmp, sys+"-")
	}
	if err == nil {
		defer os.RemoveAll(dir)
		cfg.logf("round %d %s: starting", round, sys)
		err = p.start(ctx, dir)
	}
	if err != nil {
		for _, w := range workloads {
			add(w, Result{}, fmt.Errorf("start: %w", err))
		}
		return out
	}
	defer p.stop()
	r, err := runPeerAlloc(ctx, cfg, p)
	add("alloc", r, err)
	r, err = runPeerLookup(ctx, cfg, p)
	add("lookup", r, err)
	return out
}

func runPeerAlloc(ctx context.Context, cfg Config, p peer) (Result, error) {
	if err := p.setupAlloc(ctx, cfg.Nodes, nodeCapacity); err != nil {
		return Result{}, fmt.Errorf("setup: %w", err)
	}
	op, counts := allocOp(p, runID(), cfg.Clients)
	r := drive(ctx, cfg, p.pids(), op)
	ok, failed, why := counts.totals()
	check, err := p.checkAlloc(ctx, ok, failed)
	r.Check = check
	if failed > 0 {
		// Failures in the warmup are not among the run's errors; say why.
		r.Check += " (a failure: " + why + ")"
	}
	if err != nil {
		return r, fmt.Errorf("consistency check: %w", err)
	}
	return r, nil
}

func runPeerLookup(ctx context.Context, cfg Config, p peer) (Result, error) {
	if err := p.setupLookup(ctx, cfg.Users); err != nil {
		return Result{}, fmt.Errorf("setup: %w", err)
	}
	return drive(ctx, cfg, p.pids(), lookupOp(p, cfg.Users)), nil
}

// runID makes the new users' emails unique per run.
func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadAvg is /proc/loadavg's first three fields and the number of CPUs
// this process may use, to say how busy the machine was.
func loadAvg() string {
	b, err := os.ReadFile(filepath.Join("/proc", "loadavg"))
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
