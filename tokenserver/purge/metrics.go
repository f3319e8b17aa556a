package purge

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts purge outcomes across passes (served by `wimms purge
// --metrics-addr` while it loops).
type Metrics struct {
	Records *prometheus.CounterVec // by outcome
	Passes  *prometheus.CounterVec // by result: ok, failed
}

// NewMetrics registers the purge counters on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wimms_purge_records_total",
			Help: "Old records handled by the purge job, by outcome (purged, forced, no_node, skipped_downed, would_purge, failed)."}, []string{"outcome"}),
		Passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wimms_purge_passes_total",
			Help: "Purge passes, by result (ok: every record handled; failed: a listing error or a record kept after a failure)."}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.Records, m.Passes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe adds one pass.
func (m *Metrics) Observe(s Summary, err error) {
	for outcome, n := range map[string]int{"purged": s.Purged, "forced": s.Forced, "no_node": s.NoNode,
		"skipped_downed": s.SkippedDowned, "would_purge": s.WouldPurge, "failed": s.Failed} {
		m.Records.WithLabelValues(outcome).Add(float64(n))
	}
	if err != nil || s.Failed > 0 {
		m.Passes.WithLabelValues("failed").Inc()
	} else {
		m.Passes.WithLabelValues("ok").Inc()
	}
}
