package store

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type storeMetrics struct {
	applyLatency *prometheus.HistogramVec
	collectors   []prometheus.Collector
}

func newStoreMetrics(s *Store) *storeMetrics {
	m := &storeMetrics{
		applyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wimms_store_apply_duration_seconds",
			Help:    "Time from proposing a command to its result, by outcome (ok, not_leader, no_leader, unknown_outcome, shutdown, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{
		m.applyLatency,
		gauge("wimms_raft_applied_index", "Index of the last log entry applied to the state machine.",
			func() float64 { return float64(s.AppliedIndex()) }),
		gauge("wimms_raft_commit_index", "Highest log index this member knows to be committed.",
			func() float64 { return float64(s.raft.CommitIndex()) }),
		gauge("wimms_raft_last_log_index", "Index of the last entry in this member's log.",
			func() float64 { return float64(s.raft.LastIndex()) }),
		gauge("wimms_raft_term", "Current raft term.",
			func() float64 { return float64(s.raft.CurrentTerm()) }),
		gauge("wimms_raft_is_leader", "1 while this member is the raft leader.",
			func() float64 {
				if s.raft.State() == raft.Leader {
					return 1
				}
				return 0
			}),
		gauge("wimms_store_ready", "1 while this member is ready (/readyz): it knows a leader, appends work and it has applied what the leader committed.",
			func() float64 { return boolGauge(s.Ready()) }),
		gauge("wimms_store_append_failing", "1 while appending to the raft log fails (e.g. a full disk); the member is not ready then.",
			func() float64 { _, err := s.appends.failing(); return boolGauge(err != nil) }),
		counter("wimms_store_append_errors_total", "Failed appends to the raft log.",
			func() float64 { return float64(s.appends.errors.Load()) }),
		gauge("wimms_apply_lag_entries", "Entries between the highest commit index learned from the leader (the own one on the leader) and the applied index.",
			func() float64 { return float64(s.Freshness().Lag()) }),
		gauge("wimms_store_staleness_seconds", "How long ago this member last had applied everything a leader had committed (0 on an established leader, -1 if never since start); what max_staleness is compared with.",
			func() float64 {
				d, ok := s.Freshness().Staleness(time.Now())
				if !ok {
					return -1
				}
				return d.Seconds()
			}),
		counter("wimms_store_fsm_batches_total", "ApplyBatch calls: committed entries applied together.",
			func() float64 { return float64(s.adapter.batches.Load()) }),
		counter("wimms_store_fsm_entries_total", "Log entries passed to ApplyBatch.",
			func() float64 { return float64(s.adapter.entries.Load()) }),
	}
	return m
}

// Collectors are the store's Prometheus metrics; the caller registers them.
func (s *Store) Collectors() []prometheus.Collector {
	return append(append([]prometheus.Collector{}, s.metrics.collectors...), s.opsCollectors()...)
}

func (m *storeMetrics) observeApply(start time.Time, err error) {
	m.applyLatency.WithLabelValues(applyOutcome(err)).Observe(time.Since(start).Seconds())
}

func applyOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrShutdown):
		return "shutdown"
	case errors.Is(err, ErrUnknownOutcome):
		return "unknown_outcome"
	case errors.Is(err, ErrNotLeader):
		return "not_leader"
	case errors.Is(err, ErrNoLeader):
		return "no_leader"
	}
	return "error"
}
