package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// wimmsSummary is the part of `wimms bench --json` (internal/bench.Summary)
// this comparison reads.
type wimmsSummary struct {
	Ops            int64            `json:"ops"`
	OK             int64            `json:"ok"`
	Errors         int64            `json:"errors"`
	ErrorsByStatus map[string]int64 `json:"errors_by_status"`
	Duration       float64          `json:"duration_s"`
	OKThroughput   float64          `json:"ok_throughput_ops_per_s"`
	Latency        struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	CPU *struct {
		Members float64 `json:"members_us_per_op"`
		Client  float64 `json:"client_us_per_op"`
	} `json:"cpu"`
	Interrupted bool `json:"interrupted"`
}

const wimmsMembers = 3

// wimmsArgs is the `wimms bench` command line of one workload: a spawned
// 3-member cluster, the same clients, warmup and duration as the peers.
func wimmsArgs(cfg Config, workload string, basePort int) []string {
	args := []string{"bench", "--spawn", strconv.Itoa(wimmsMembers), "--bin", cfg.WimmsBin,
		"--spawn-base-port", strconv.Itoa(basePort), "--workload", workload,
		"--clients", strconv.Itoa(cfg.Clients), "--duration", cfg.Duration.String(),
		"--warmup", cfg.Warmup.String(), "--nodes", strconv.Itoa(cfg.Nodes),
		"--users", strconv.Itoa(cfg.Users), "--json", "--quiet"}
	if workload == "lookup" {
		args = append(args, "--read-level", "stale", "--target", "followers")
	}
	return args
}

// runWimms runs `wimms bench` once: the cluster, its setup and the load
// generator are wimms's own (internal/bench), as documented in
// docs/benchmarks.md.
func runWimms(ctx context.Context, cfg Config, workload string) (Result, error) {
	// --spawn-base-port gives each member 3 consecutive ports.
	base, err := freePorts(3 * wimmsMembers)
	if err != nil {
		return Result{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, cfg.WimmsBin, wimmsArgs(cfg, workload, base)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("wimms bench: %w: %s", err, lastBytes(stderr.Bytes(), 1500))
	}
	var s wimmsSummary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		return Result{}, fmt.Errorf("wimms bench --json output: %w", err)
	}
	if s.Interrupted {
		return Result{}, fmt.Errorf("wimms bench was interrupted")
	}
	r := Result{
		Seconds: s.Duration, Ops: s.Ops, OK: s.OK, Errors: s.Errors, OKPerSec: s.OKThroughput,
		P50ms: s.Latency.P50, P99ms: s.Latency.P99,
	}
	if len(s.ErrorsByStatus) > 0 {
		r.ErrorKinds = s.ErrorsByStatus
	}
	if s.CPU != nil {
		r.MembersUsPerOp, r.ClientUsPerOp = s.CPU.Members, s.CPU.Client
	}
	return r, nil
}

// wimmsVersion is the binary's `wimms --version` line, for the report.
func wimmsVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}
