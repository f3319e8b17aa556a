package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"text/tabwriter"
)

// Report is a whole comparison; its JSON form is what -json prints.
type Report struct {
	Rounds       int               `json:"rounds"`
	Clients      int               `json:"clients"`
	DurationS    float64           `json:"duration_s"`
	WarmupS      float64           `json:"warmup_s"`
	Nodes        int               `json:"nodes"`
	Users        int               `json:"users"`
	CPUs         int               `json:"cpus"`
	WimmsVersion string            `json:"wimms_version,omitempty"`
	LoadBefore   string            `json:"loadavg_before"`
	LoadAfter    string            `json:"loadavg_after"`
	Skipped      map[string]string `json:"skipped"`
	Runs         []Result          `json:"runs"`
	Medians      []Median          `json:"medians"`
	Ratios       []Ratio           `json:"ratios"`
}

// Median is one system's medians over the rounds of one workload; errors,
// retries and ops are totals.
type Median struct {
	System         string  `json:"system"`
	Workload       string  `json:"workload"`
	Rounds         int     `json:"rounds"`
	OKPerSec       float64 `json:"ok_per_s"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	MembersUsPerOp float64 `json:"members_us_per_op"`
	ClientUsPerOp  float64 `json:"client_us_per_op"`
	Ops            int64   `json:"ops"`
	Errors         int64   `json:"errors"`
	Retries        int64   `json:"retries"`
}

// Ratio is wimms's median over the best peer's, metric by metric (best:
// highest ok/s, lowest latency and CPU), with the peer that was best.
type Ratio struct {
	Workload string             `json:"workload"`
	Ratio    map[string]float64 `json:"wimms_over_best_peer"`
	Best     map[string]string  `json:"best_peer"`
}

func newReport(cfg Config) *Report {
	return &Report{
		Rounds: cfg.Rounds, Clients: cfg.Clients, DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
		Nodes: cfg.Nodes, Users: cfg.Users, CPUs: runtime.NumCPU(), Skipped: map[string]string{},
	}
}

func (r *Report) failed() bool {
	return slices.ContainsFunc(r.Runs, func(x Result) bool { return x.Failed != "" })
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return round2((s[len(s)/2-1] + s[len(s)/2]) / 2)
}

func (r *Report) summarize(systems []string) {
	for _, w := range workloads {
		for _, sys := range systems {
			m := Median{System: sys, Workload: w}
			var ok, p50, p99, mem, cli []float64
			for _, x := range r.Runs {
				if x.System != sys || x.Workload != w || x.Failed != "" {
					continue
				}
				m.Rounds++
				m.Ops, m.Errors, m.Retries = m.Ops+x.Ops, m.Errors+x.Errors, m.Retries+x.Retries
				ok, p50, p99 = append(ok, x.OKPerSec), append(p50, x.P50ms), append(p99, x.P99ms)
				mem, cli = append(mem, x.MembersUsPerOp), append(cli, x.ClientUsPerOp)
			}
			if m.Rounds == 0 {
				continue
			}
			m.OKPerSec, m.P50ms, m.P99ms = median(ok), median(p50), median(p99)
			m.MembersUsPerOp, m.ClientUsPerOp = median(mem), median(cli)
			r.Medians = append(r.Medians, m)
		}
		if ratio, ok := r.ratio(w); ok {
			r.Ratios = append(r.Ratios, ratio)
		}
	}
}

// metrics are the compared medians and whether higher is better.
var metrics = []struct {
	name   string
	higher bool
	get    func(Median) float64
}{
	{"ok_per_s", true, func(m Median) float64 { return m.OKPerSec }},
	{"p50_ms", false, func(m Median) float64 { return m.P50ms }},
	{"p99_ms", false, func(m Median) float64 { return m.P99ms }},
	{"members_us_per_op", false, func(m Median) float64 { return m.MembersUsPerOp }},
}

func (r *Report) ratio(workload string) (Ratio, bool) {
	var wimms *Median
	var peers []Median
	for i, m := range r.Medians {
		switch {
		case m.Workload != workload:
		case m.System == "wimms":
			wimms = &r.Medians[i]
		default:
			peers = append(peers, m)
		}
	}
	if wimms == nil || len(peers) == 0 {
		return Ratio{}, false
	}
	out := Ratio{Workload: workload, Ratio: map[string]float64{}, Best: map[string]string{}}
	for _, mt := range metrics {
		best := peers[0]
		for _, p := range peers[1:] {
			if (mt.higher && mt.get(p) > mt.get(best)) || (!mt.higher && mt.get(p) < mt.get(best)) {
				best = p
			}
		}
		if v := mt.get(best); v > 0 {
			out.Ratio[mt.name] = round2(mt.get(*wimms) / v)
			out.Best[mt.name] = best.System
		}
	}
	return out, true
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *Report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%d round(s) x %gs (+%gs warmup), %d clients, %d nodes, %d lookup users, %d CPUs, load average %s -> %s\n",
		r.Rounds, r.DurationS, r.WarmupS, r.Clients, r.Nodes, r.Users, r.CPUs, r.LoadBefore, r.LoadAfter)
	if r.WimmsVersion != "" {
		fmt.Fprintf(w, "wimms: %s\n", r.WimmsVersion)
	}
	for _, s := range slices.Sorted(maps.Keys(r.Skipped)) {
		fmt.Fprintf(w, "%s: skipped: %s\n", s, r.Skipped[s])
	}
	fmt.Fprintln(w, "\nmedians over the rounds (errors and retries: totals)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsystem\tok/s\tp50 ms\tp99 ms\terrors\tretries\tmembers µs/op\tclient µs/op\trounds\t")
	for _, m := range r.Medians {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%d\t%d\t%.0f\t%.0f\t%d\t\n", m.Workload, m.System, m.OKPerSec,
			m.P50ms, m.P99ms, m.Errors, m.Retries, m.MembersUsPerOp, m.ClientUsPerOp, m.Rounds)
	}
	for _, ra := range r.Ratios {
		fmt.Fprintf(tw, "%s\twimms/best peer\t%s\t%s\t%s\t\t\t%s\t\t\t\n", ra.Workload, ra.cell("ok_per_s"), ra.cell("p50_ms"),
			ra.cell("p99_ms"), ra.cell("members_us_per_op"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return r.writeRuns(w)
}

func (ra Ratio) cell(metric string) string {
	v, ok := ra.Ratio[metric]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx %s", v, ra.Best[metric])
}

// writeRuns lists every run, its errors and the peers' alloc checks.
func (r *Report) writeRuns(w io.Writer) error {
	fmt.Fprintln(w, "\nruns")
	for _, x := range r.Runs {
		line := fmt.Sprintf("round %d %-7s %-6s", x.Round, x.System, x.Workload)
		if x.Failed != "" {
			fmt.Fprintf(w, "%s FAILED: %s\n", line, x.Failed)
			continue
		}
		fmt.Fprintf(w, "%s %8.0f ok/s  p50 %.2f ms  p99 %.2f ms  %d errors  %d retries  members %.0f µs/op\n",
			line, x.OKPerSec, x.P50ms, x.P99ms, x.Errors, x.Retries, x.MembersUsPerOp)
		for _, k := range slices.Sorted(maps.Keys(x.ErrorKinds)) {
			fmt.Fprintf(w, "    error %dx: %s\n", x.ErrorKinds[k], k)
		}
		if x.Check != "" {
			fmt.Fprintf(w, "    check: %s\n", x.Check)
		}
	}
	return nil
}
