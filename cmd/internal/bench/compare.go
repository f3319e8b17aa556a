package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// Target says which members of a spawned cluster the clients talk to.
type Target string

const (
	TargetAll       Target = "all"       // every member, round robin
	TargetLeader    Target = "leader"    // the leader only
	TargetFollowers Target = "followers" // every member but the leader
)

// ParseTarget accepts all, leader or followers.
func ParseTarget(s string) (Target, error) {
	switch t := Target(s); t {
	case TargetAll, TargetLeader, TargetFollowers:
		return t, nil
	}
	return "", fmt.Errorf("target %q: want all, leader or followers", s)
}

// Targets are the HTTP addresses of the members t names, as the cluster
// sees its leader now.
func (c *Cluster) Targets(ctx context.Context, t Target) ([]string, error) {
	all := c.HTTPAddrs()
	if t == TargetAll || t == "" {
		return all, nil
	}
	api := client.New("http://"+all[0], client.WithToken(c.token), client.WithTimeout(5*time.Second))
	view, _, err := api.Cluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the leader: %w", err)
	}
	if view.Leader == nil || view.Leader.HTTPAddr == "" {
		return nil, errors.New("finding the leader: the cluster reports none")
	}
	leader := view.Leader.HTTPAddr
	if !slices.Contains(all, leader) {
		return nil, fmt.Errorf("the leader's address %s is not a spawned member", leader)
	}
	if t == TargetLeader {
		return []string{leader}, nil
	}
	followers := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return a == leader })
	if len(followers) == 0 {
		return nil, errors.New("followers: a one-member cluster has none")
	}
	return followers, nil
}

// CompareConfig is an A/B run: the same workload against a cluster of each
// of two binaries, in alternating rounds within one run, so that both see
// the same machine state (on a shared machine absolute numbers drift; the
// ratio of alternating rounds is the result).
type CompareConfig struct {
	Old, New string // wimms binaries: the baseline and the candidate
	Rounds   int    // rounds; each runs the workload once per binary; default 3
	Members  int    // members per cluster; default 3
	Target   Target // which members the clients talk to; default all
	// Run is the workload; its Addrs are set per cluster and round.
	Run Config
	// Spawn options for both clusters (Members, Bin and BasePort are set
	// per cluster: the new one's ports follow the old one's).
	Spawn    SpawnConfig
	Logger   hclog.Logger // nil: discard
	Progress io.Writer    // each round's one-line result; nil: none
}

// CompareRun is one workload run against one binary.
type CompareRun struct {
	Round   int      `json:"round"`
	Binary  string   `json:"binary"` // "old" or "new"
	Targets []string `json:"targets"`
	Summary *Summary `json:"summary"`
}

// CompareStats are the medians over a binary's rounds.
type CompareStats struct {
	Throughput float64 `json:"ok_throughput_ops_per_s"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Errors     int64   `json:"errors"` // total over the rounds
	// CPU per operation (Summary.CPU), medians; members 0 when unknown.
	MembersMicrosPerOp float64 `json:"members_cpu_us_per_op"`
	ClientMicrosPerOp  float64 `json:"client_cpu_us_per_op"`
}

// CompareResult is the outcome of Compare. Ratios are new / old of the
// medians: a throughput ratio above 1 and latency ratios below 1 favour
// the new binary.
type CompareResult struct {
	Old      string       `json:"old"`
	New      string       `json:"new"`
	Workload string       `json:"workload"`
	Clients  int          `json:"clients"`
	Target   Target       `json:"target"`
	Rounds   int          `json:"rounds"`
	Runs     []CompareRun `json:"runs"`
	OldStats CompareStats `json:"old_median"`
	NewStats CompareStats `json:"new_median"`

	ThroughputRatio float64 `json:"throughput_ratio"`
	P50Ratio        float64 `json:"p50_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
	// MembersCPURatio is new / old of the members' CPU per operation. With
	// the members CPU-bound and the load generator on other cores, the
	// throughput ratio would approach its inverse: on a machine the two
	// share, that is the part of the result that is the server's alone.
	MembersCPURatio float64 `json:"members_cpu_ratio"`
	Interrupted     bool    `json:"interrupted"`
}

// Compare spawns one cluster of each binary (both stay up for the whole
// run), then runs the workload rounds times against each, alternating
// which goes first (old, new; new, old; ...), and reports the medians and
// their ratios. Setup (service, nodes, users) happens in each cluster's
// first run and is reused afterwards.
func Compare(ctx context.Context, cfg CompareConfig) (*CompareResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var clusters [2]*Cluster
	// Deferred before spawning: a cluster that came up stops even when
	// the other one fails to.
	defer func() {
		for _, c := range clusters {
			if c != nil {
				if err := c.Stop(); err != nil {
					cfg.Logger.Warn("stopping a compared cluster", "error", err)
				}
			}
		}
	}()
	if err := spawnCompared(ctx, cfg, &clusters); err != nil {
		return nil, err
	}

	res := &CompareResult{Old: cfg.Old, New: cfg.New, Workload: string(cfg.Run.Workload), Target: cfg.Target, Rounds: cfg.Rounds}
	for round := 1; round <= cfg.Rounds; round++ {
		order := []int{0, 1}
		if round%2 == 0 {
			order = []int{1, 0}
		}
		for _, i := range order {
			if ctx.Err() != nil {
				res.Interrupted = true
				return finishCompare(res), nil
			}
			targets, s, err := runCompared(ctx, cfg, clusters[i], compareNames[i])
			if err != nil {
				return nil, fmt.Errorf("compare: round %d, %s cluster: %w", round, compareNames[i], err)
			}
			res.Clients = s.Clients
			res.Runs = append(res.Runs, CompareRun{Round: round, Binary: compareNames[i], Targets: targets, Summary: s})
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "round %d %s: %.0f ok/s, p50 %.2f ms, p99 %.2f ms, %d errors\n",
					round, compareNames[i], s.OKThroughput, s.Latency.P50, s.Latency.P99, s.Errors)
			}
			if s.Interrupted {
				res.Interrupted = true
				return finishCompare(res), nil
			}
		}
	}
	return finishCompare(res), nil
}

// compareNames are the two binaries as CompareRun.Binary names them,
// indexed like the clusters: 0 the baseline, 1 the candidate.
var compareNames = [2]string{"old", "new"}

// withDefaults fills the defaults and refuses a comparison that could not
// run, before any cluster is spawned for it.
func (cfg CompareConfig) withDefaults() (CompareConfig, error) {
	if cfg.Old == "" || cfg.New == "" {
		return cfg, errors.New("compare: two binaries are needed")
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 3
	}
	if cfg.Rounds < 1 {
		return cfg, fmt.Errorf("compare: rounds %d: want at least 1", cfg.Rounds)
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.Target == "" {
		cfg.Target = TargetAll
	}
	if _, err := ParseTarget(string(cfg.Target)); err != nil {
		return cfg, fmt.Errorf("compare: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	probe := cfg.Run
	probe.Addrs = []string{"127.0.0.1:1"}
	if err := probe.Validate(); err != nil {
		return cfg, fmt.Errorf("compare: workload: %w", err)
	}
	return cfg, nil
}

// spawnCompared starts the old binary's cluster, then the new one's on the
// ports after it, into clusters as each comes up (the caller stops them).
func spawnCompared(ctx context.Context, cfg CompareConfig, clusters *[2]*Cluster) error {
	bins := [2]string{cfg.Old, cfg.New}
	for i, bin := range bins {
		sc := cfg.Spawn
		sc.Members, sc.Bin = cfg.Members, bin
		if cfg.Spawn.BasePort > 0 {
			sc.BasePort = cfg.Spawn.BasePort + i*3*cfg.Members
		}
		sc.Logger = cfg.Logger.Named(compareNames[i])
		cfg.Logger.Info("spawning", "binary", compareNames[i], "path", bin, "members", cfg.Members)
		c, err := Spawn(ctx, sc)
		if err != nil {
			return fmt.Errorf("compare: spawning the %s cluster (%s): %w", compareNames[i], bin, err)
		}
		clusters[i] = c
	}
	return nil
}

// runCompared runs the workload once against one cluster, on the members
// cfg.Target picks there, and returns them with the run's summary.
func runCompared(ctx context.Context, cfg CompareConfig, c *Cluster, name string) ([]string, *Summary, error) {
	targets, err := c.Targets(ctx, cfg.Target)
	if err != nil {
		return nil, nil, err
	}
	run := cfg.Run
	run.Addrs = targets
	if k := c.TokenKey(); k != nil {
		run.TokenKey = k // each cluster trusts its own key
	}
	run.Progress = nil
	run.MembersCPU = c.MembersCPU
	run.Logger = cfg.Logger.Named(name)
	s, err := Run(ctx, run)
	if err != nil {
		return nil, nil, err
	}
	return targets, s, nil
}

func finishCompare(r *CompareResult) *CompareResult {
	r.OldStats = medianStats(r.Runs, "old")
	r.NewStats = medianStats(r.Runs, "new")
	r.ThroughputRatio = ratio(r.NewStats.Throughput, r.OldStats.Throughput)
	r.P50Ratio = ratio(r.NewStats.P50, r.OldStats.P50)
	r.P99Ratio = ratio(r.NewStats.P99, r.OldStats.P99)
	r.MembersCPURatio = ratio(r.NewStats.MembersMicrosPerOp, r.OldStats.MembersMicrosPerOp)
	return r
}

func medianStats(runs []CompareRun, binary string) CompareStats {
	var tp, p50, p99, members, client []float64
	var st CompareStats
	for _, r := range runs {
		if r.Binary != binary {
			continue
		}
		tp = append(tp, r.Summary.OKThroughput)
		p50 = append(p50, r.Summary.Latency.P50)
		p99 = append(p99, r.Summary.Latency.P99)
		st.Errors += r.Summary.Errors
		if c := r.Summary.CPU; c != nil {
			members = append(members, c.MembersMicrosPerOp)
			client = append(client, c.ClientMicrosPerOp)
		}
	}
	st.Throughput, st.P50, st.P99 = median(tp), median(p50), median(p99)
	st.MembersMicrosPerOp, st.ClientMicrosPerOp = median(members), median(client)
	return st
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round2(a / b)
}

// WriteText prints every run, the medians and the ratios.
func (r *CompareResult) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "compare: workload %s, %d clients on %s members, %d alternating rounds\n", r.Workload, r.Clients, r.Target, r.Rounds)
	fmt.Fprintf(tw, "  old: %s\n  new: %s\n", filepath.Clean(r.Old), filepath.Clean(r.New))
	fmt.Fprintln(tw, "round\tbinary\tok/s\tp50 ms\tp99 ms\terrors\tmembers µs/op\tclient µs/op")
	for _, run := range r.Runs {
		s := run.Summary
		var c CPUCost
		if s.CPU != nil {
			c = *s.CPU
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.2f\t%.2f\t%d\t%.1f\t%.1f\n", run.Round, run.Binary, s.OKThroughput, s.Latency.P50, s.Latency.P99, s.Errors,
			c.MembersMicrosPerOp, c.ClientMicrosPerOp)
	}
	for _, m := range []struct {
		name string
		st   CompareStats
	}{{"old", r.OldStats}, {"new", r.NewStats}} {
		fmt.Fprintf(tw, "median\t%s\t%.0f\t%.2f\t%.2f\t%d\t%.1f\t%.1f\n", m.name, m.st.Throughput, m.st.P50, m.st.P99, m.st.Errors,
			m.st.MembersMicrosPerOp, m.st.ClientMicrosPerOp)
	}
	fmt.Fprintf(tw, "ratio new/old: throughput %.2f×, p50 %.2f×, p99 %.2f×\n", r.ThroughputRatio, r.P50Ratio, r.P99Ratio)
	if r.MembersCPURatio > 0 {
		fmt.Fprintf(tw, "members' CPU per op new/old: %.2f× (with the load generator on other cores and the members CPU-bound, throughput would scale by about %.2f×)\n",
			r.MembersCPURatio, 1/r.MembersCPURatio)
	}
	if r.Interrupted {
		fmt.Fprintln(tw, "interrupted: the numbers cover the rounds that ran")
	}
	return tw.Flush()
}
