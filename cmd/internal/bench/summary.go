package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Summary is the result of one run. Its JSON form (wimms bench --json) is
// a stable, machine-readable contract: add fields, never rename them.
type Summary struct {
	Workload  string   `json:"workload"`
	ReadLevel string   `json:"read_level,omitempty"` // lookup only
	Mix       *Mix     `json:"mix,omitempty"`        // mix only
	Service   string   `json:"service"`
	Clients   int      `json:"clients"`
	Members   []string `json:"members"`

	WarmupSeconds   float64 `json:"warmup_s"`
	SetupSeconds    float64 `json:"setup_s"`
	DurationSeconds float64 `json:"duration_s"` // measured wall time

	// Ops counts every operation that started in the measured window and
	// completed, successful or not; OK those answered 2xx.
	Ops            int64            `json:"ops"`
	OK             int64            `json:"ok"`
	Errors         int64            `json:"errors"`
	ErrorsByStatus map[string]int64 `json:"errors_by_status"` // "503 no-leader", "transport", ...
	Throughput     float64          `json:"throughput_ops_per_s"`
	OKThroughput   float64          `json:"ok_throughput_ops_per_s"`

	// Latency is over successful operations only: a fast refusal is not a
	// fast answer.
	Latency    Latency              `json:"latency_ms"`
	OpsByKind  map[string]KindStats `json:"ops_by_kind"`
	PerMember  []MemberStats        `json:"per_member"`  // by the address the clients used
	AnsweredBy map[string]int64     `json:"answered_by"` // by X-Wimms-Member of the answer

	// CPU is what the measured window cost in CPU time (nil when nothing
	// was measured).
	CPU *CPUCost `json:"cpu,omitempty"`

	// Interrupted is set when the run was cancelled before it finished; the
	// numbers then cover the part that ran.
	Interrupted bool `json:"interrupted"`
}

// Latency percentiles in milliseconds (nearest rank, ≤ 0.8% above the
// exact value; Max and Mean are exact).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// KindStats counts one kind of operation (alloc, lookup, login, new,
// keychange).
type KindStats struct {
	Ops    int64 `json:"ops"`
	OK     int64 `json:"ok"`
	Errors int64 `json:"errors"`
}

// MemberStats is the share of the load one member address received.
type MemberStats struct {
	Addr    string  `json:"addr"`
	Clients int     `json:"clients"`
	Ops     int64   `json:"ops"`
	OK      int64   `json:"ok"`
	Errors  int64   `json:"errors"`
	Latency Latency `json:"latency_ms"`
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

func latencyOf(h *Histogram) Latency {
	return Latency{
		P50:  ms(h.Percentile(50)),
		P90:  ms(h.Percentile(90)),
		P99:  ms(h.Percentile(99)),
		P999: ms(h.Percentile(99.9)),
		Max:  ms(h.Max()),
		Mean: ms(h.Mean()),
	}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// summarize merges the workers' statistics.
func summarize(cfg *Config, workers []*worker, elapsed, setup time.Duration, interrupted bool) *Summary {
	s := &Summary{
		Workload:        string(cfg.Workload),
		Service:         cfg.Service,
		Clients:         cfg.Clients,
		Members:         append([]string(nil), cfg.Addrs...),
		WarmupSeconds:   cfg.Warmup.Seconds(),
		SetupSeconds:    round2(setup.Seconds()),
		DurationSeconds: round2(elapsed.Seconds()),
		ErrorsByStatus:  map[string]int64{},
		OpsByKind:       map[string]KindStats{},
		AnsweredBy:      map[string]int64{},
		Interrupted:     interrupted,
	}
	switch cfg.Workload {
	case WorkloadLookup:
		s.ReadLevel = cfg.ReadLevel
	case WorkloadMix:
		m := cfg.Mix
		s.Mix = &m
	}
	var all Histogram
	perAddr := map[string]*Histogram{}
	members := map[string]*MemberStats{}
	for _, w := range workers {
		st := &w.stats
		all.Merge(&st.hist)
		if perAddr[w.addr] == nil {
			perAddr[w.addr] = &Histogram{}
			members[w.addr] = &MemberStats{Addr: w.addr}
		}
		perAddr[w.addr].Merge(&st.hist)
		m := members[w.addr]
		m.Clients++
		for k := opKind(0); k < numKinds; k++ {
			ops, ok := st.kindOps[k], st.kindOK[k]
			s.Ops += ops
			s.OK += ok
			m.Ops += ops
			m.OK += ok
			if ops > 0 {
				ks := s.OpsByKind[k.String()]
				ks.Ops += ops
				ks.OK += ok
				ks.Errors += ops - ok
				s.OpsByKind[k.String()] = ks
			}
		}
		for key, n := range st.errors {
			s.ErrorsByStatus[key] += n
		}
		for id, n := range st.answered {
			s.AnsweredBy[id] += n
		}
	}
	s.Errors = s.Ops - s.OK
	if secs := elapsed.Seconds(); secs > 0 {
		s.Throughput = round2(float64(s.Ops) / secs)
		s.OKThroughput = round2(float64(s.OK) / secs)
	}
	s.Latency = latencyOf(&all)
	for _, addr := range cfg.Addrs {
		m, ok := members[addr]
		if !ok {
			continue // more members than clients
		}
		m.Errors = m.Ops - m.OK
		m.Latency = latencyOf(perAddr[addr])
		s.PerMember = append(s.PerMember, *m)
		delete(members, addr) // an address listed twice is reported once
	}
	return s
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	what := s.Workload
	switch {
	case s.ReadLevel != "":
		what += " (" + s.ReadLevel + " reads)"
	case s.Mix != nil:
		what += " (" + s.Mix.String() + ")"
	}
	fmt.Fprintf(&b, "workload    %s on service %s\n", what, s.Service)
	fmt.Fprintf(&b, "clients     %d over %d member(s): %s\n", s.Clients, len(s.Members), strings.Join(s.Members, ", "))
	fmt.Fprintf(&b, "duration    %.2fs measured (warmup %.1fs, setup %.2fs)", s.DurationSeconds, s.WarmupSeconds, s.SetupSeconds)
	if s.Interrupted {
		b.WriteString("  INTERRUPTED")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "ops         %d  (ok %d, errors %d)\n", s.Ops, s.OK, s.Errors)
	fmt.Fprintf(&b, "throughput  %.1f ops/s  (ok %.1f ops/s)\n", s.Throughput, s.OKThroughput)
	l := s.Latency
	fmt.Fprintf(&b, "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if len(s.OpsByKind) > 1 {
		for _, k := range slices.Sorted(maps.Keys(s.OpsByKind)) {
			ks := s.OpsByKind[k]
			fmt.Fprintf(&b, "  %-10s ops %d  ok %d  errors %d\n", k, ks.Ops, ks.OK, ks.Errors)
		}
	}
	if len(s.ErrorsByStatus) > 0 {
		b.WriteString("errors by status:\n")
		for _, k := range slices.Sorted(maps.Keys(s.ErrorsByStatus)) {
			fmt.Fprintf(&b, "  %-32s %d\n", k, s.ErrorsByStatus[k])
		}
	}
	b.WriteString("per member (address clients used):\n")
	for _, m := range s.PerMember {
		fmt.Fprintf(&b, "  %-22s clients %-4d ops %-9d errors %-6d p50 %.3f ms  p99 %.3f ms\n",
			m.Addr, m.Clients, m.Ops, m.Errors, m.Latency.P50, m.Latency.P99)
	}
	if c := s.CPU; c != nil {
		fmt.Fprintf(&b, "cpu         client %.1f µs/op (%.2f cores)", c.ClientMicrosPerOp, c.ClientCores)
		if c.MembersMicrosPerOp > 0 {
			fmt.Fprintf(&b, ", members %.1f µs/op (%.2f cores)", c.MembersMicrosPerOp, c.MembersCores)
		}
		b.WriteString("\n")
	}
	if len(s.AnsweredBy) > 0 {
		b.WriteString("answered by (X-Wimms-Member):")
		for _, id := range slices.Sorted(maps.Keys(s.AnsweredBy)) {
			fmt.Fprintf(&b, " %s=%d", id, s.AnsweredBy[id])
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
