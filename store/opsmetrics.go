package store

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/fsm"
)

// The metrics an on-call engineer asks first ("which node is full?", "why
// are logins failing?"). State gauges are read from the state machine's
// published View at scrape time, so they cost nothing per write and every
// member reports the same numbers for the same applied index.

// stateCollector exposes the replicated state: per node and per service.
type stateCollector struct {
	read func() fsm.Reader

	nodeLoad, nodeCapacity, nodeAvailable, nodeDowned, nodeBackoff *prometheus.Desc
	serviceUsers, serviceRecords, serviceNodes, serviceNewUsers    *prometheus.Desc
}

func newStateCollector(read func() fsm.Reader) *stateCollector {
	node := []string{"service", "node"}
	svc := []string{"service"}
	return &stateCollector{
		read:            read,
		nodeLoad:        prometheus.NewDesc("wimms_node_current_load", "Records assigned to the node (current_load of SPEC §1).", node, nil),
		nodeCapacity:    prometheus.NewDesc("wimms_node_capacity", "Capacity of the node.", node, nil),
		nodeAvailable:   prometheus.NewDesc("wimms_node_available", "New assignments the node may still take before its next release (available of SPEC §1).", node, nil),
		nodeDowned:      prometheus.NewDesc("wimms_node_downed", "1 while the node is marked downed: it gets no new users.", node, nil),
		nodeBackoff:     prometheus.NewDesc("wimms_node_backoff", "1 while the node is marked backoff: it gets no new users.", node, nil),
		serviceUsers:    prometheus.NewDesc("wimms_service_users", "Live users (current records) of the service.", svc, nil),
		serviceRecords:  prometheus.NewDesc("wimms_service_records", "Stored records (current and replaced) of the service.", svc, nil),
		serviceNodes:    prometheus.NewDesc("wimms_service_nodes", "Nodes of the service.", svc, nil),
		serviceNewUsers: prometheus.NewDesc("wimms_service_allow_new_users", "1 when the service lets login create users.", svc, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodeLoad, c.nodeCapacity, c.nodeAvailable, c.nodeDowned, c.nodeBackoff,
		c.serviceUsers, c.serviceRecords, c.serviceNodes, c.serviceNewUsers} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.read()
	gauge := func(d *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
	}
	for _, svc := range v.ListServices() {
		nodes, err := v.ListNodes(svc.Name)
		if err != nil {
			continue // deleted between the listing and now: impossible on one View
		}
		for _, n := range nodes {
			gauge(c.nodeLoad, float64(n.CurrentLoad), svc.Name, n.URL)
			gauge(c.nodeCapacity, float64(n.Capacity), svc.Name, n.URL)
			gauge(c.nodeAvailable, float64(n.Available), svc.Name, n.URL)
			gauge(c.nodeDowned, boolGauge(n.Downed), svc.Name, n.URL)
			gauge(c.nodeBackoff, boolGauge(n.Backoff), svc.Name, n.URL)
		}
		if st, err := v.Stats(svc.Name); err == nil {
			gauge(c.serviceUsers, float64(st.Users), svc.Name)
			gauge(c.serviceRecords, float64(st.Records), svc.Name)
			gauge(c.serviceNodes, float64(st.Nodes), svc.Name)
		}
		gauge(c.serviceNewUsers, boolGauge(svc.AllowNewUsers), svc.Name)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// outcomeMetrics count what the state machine decided for logins and
// allocations. They are counted where commands are applied, on every
// member: each member's counter is the cluster's count (aggregate members
// with max, not sum), a follower shows the same rates as the leader, and a
// restart replays entries after the last snapshot (a counter reset to
// Prometheus).
type outcomeMetrics struct {
	logins      *prometheus.CounterVec
	allocations *prometheus.CounterVec
}

// Outcome label values besides the fsm error statuses (which are used as
// they are: invalid-generation, invalid-client-state, invalid-keysChangedAt,
// new-users-disabled, no-node-available, not-found, bad-request, conflict).
const (
	OutcomeOK      = "ok"       // login of an existing user
	OutcomeNewUser = "new-user" // login that created the user
	OutcomeRetired = "retired"  // login answered with the retired record
	ResultExisting = "existing" // allocate returned the live record
	ResultCreated  = "created"  // allocate made a new record
)

func newOutcomeMetrics() *outcomeMetrics {
	return &outcomeMetrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wimms_logins_applied_total",
			Help: "Deprecated (use wimms_logins_total, counted by the member that decided each login): logins applied by the state machine, by service and outcome (ok, new-user, retired, or the SPEC error status). Every member counts every applied login: aggregate with max. Kept for one release.",
		}, []string{"service", "outcome"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wimms_allocations_total",
			Help: "Allocate commands applied by the state machine, by service and result (existing, created, or the SPEC error status such as no-node-available).",
		}, []string{"service", "result"}),
	}
}

// unknownLoginUsers marks the logins of a batch whose user the state
// before the batch does not hold: the first of them for a user creates it
// (the login Result does not say so, and its timestamps cannot tell a
// creation from a repeat in the same millisecond). One lookup per login,
// before the batch is applied.
func (m *outcomeMetrics) unknownLoginUsers(before fsm.Reader, cmds []fsm.Command) []bool {
	var unknown []bool
	var seen map[[2]string]bool
	for i, cmd := range cmds {
		if cmd.Op != fsm.OpLogin {
			continue
		}
		key := [2]string{cmd.Service, cmd.Email}
		if seen[key] {
			continue
		}
		if seen == nil {
			seen = map[[2]string]bool{}
		}
		seen[key] = true
		if _, err := before.GetUser(cmd.Service, cmd.Email); err != nil {
			if unknown == nil {
				unknown = make([]bool, len(cmds))
			}
			unknown[i] = true
		}
	}
	return unknown
}

// observe counts one applied batch. Replays of an idempotent request
// decided nothing new and are not counted again. unknown marks the logins
// whose user did not exist before the batch (unknownLoginUsers).
func (m *outcomeMetrics) observe(cmds []fsm.Command, results []fsm.Result, unknown []bool) {
	for i, cmd := range cmds {
		if i >= len(results) || results[i].Repeated {
			continue
		}
		res := results[i]
		switch cmd.Op {
		case fsm.OpLogin:
			created := i < len(unknown) && unknown[i] && res.Err == nil
			m.logins.WithLabelValues(cmd.Service, loginOutcome(res, created)).Inc()
		case fsm.OpAllocate:
			m.allocations.WithLabelValues(cmd.Service, allocationResult(res)).Inc()
		}
	}
}

// loginOutcome names what a login did; created: it made the user.
func loginOutcome(res fsm.Result, created bool) string {
	switch {
	case res.Err != nil:
		return res.Err.Status
	case created:
		return OutcomeNewUser
	case res.User != nil && res.User.Generation == fsm.MaxGeneration:
		return OutcomeRetired
	}
	return OutcomeOK
}

func allocationResult(res fsm.Result) string {
	switch {
	case res.Err != nil:
		return res.Err.Status
	case res.Created:
		return ResultCreated
	}
	return ResultExisting
}

// Raft's own timings reach us through go-metrics, which raft reports to a
// process-wide sink. raftTimings turns the two that matter into Prometheus
// histograms; it is installed once per process and shared by every Store
// (in tests several stores share one process and so these series).
var raftTimings struct {
	once          sync.Once
	commit, apply prometheus.Histogram
	// stages times the steps of a write (raftStageKeys), so that a
	// write's latency can be accounted for stage by stage from /metrics.
	stages *prometheus.HistogramVec
}

// raftStageKeys maps raft's go-metrics keys onto the stage label of
// wimms_raft_stage_duration_seconds.
var raftStageKeys = map[string]string{
	"raft.leader.dispatchLog":            "leader_append",
	"raft.replication.appendEntries.rpc": "replicate_rpc",
	"raft.rpc.appendEntries":             "follower_append_entries",
	"raft.rpc.appendEntries.storeLogs":   "follower_store_logs",
}

// Stages this package times itself, in the same histogram.
const (
	stageLogAppend     = "log_append"
	stageWatermarkSync = "watermark_sync"
)

// stageObservers holds one observer per stage of
// wimms_raft_stage_duration_seconds, resolved once: the append path then
// pays a map lookup, not the vector's label hashing and lock, and reads
// it safely while the collectors are being made.
var stageObservers atomic.Pointer[map[string]prometheus.Observer]

// observeStage records d under stage (a no-op until the collectors exist).
func observeStage(stage string, d time.Duration) {
	if m := stageObservers.Load(); m != nil {
		(*m)[stage].Observe(d.Seconds())
	}
}

var raftLatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func raftTimingCollectors() []prometheus.Collector {
	raftTimings.once.Do(func() {
		raftTimings.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wimms_raft_commit_duration_seconds",
			Help:    "On the leader: time from dispatching a log entry to its commit by a quorum.",
			Buckets: raftLatencyBuckets,
		})
		raftTimings.apply = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wimms_raft_fsm_apply_duration_seconds",
			Help:    "Time the state machine takes to apply one batch of committed entries.",
			Buckets: raftLatencyBuckets,
		})
		raftTimings.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wimms_raft_stage_duration_seconds",
			Help: "Time of each step a write goes through: leader_append (the leader's log append, watermark included), replicate_rpc " +
				"(the leader's AppendEntries round trip to one follower), follower_append_entries and follower_store_logs (a follower " +
				"handling AppendEntries, and its log append within it), log_append and watermark_sync (a log append's two syncs, on any member).",
			Buckets: raftStageBuckets,
		}, []string{"stage"})
		observers := map[string]prometheus.Observer{}
		for _, stage := range append(slices.Collect(maps.Values(raftStageKeys)), stageLogAppend, stageWatermarkSync) {
			observers[stage] = raftTimings.stages.WithLabelValues(stage)
		}
		stageObservers.Store(&observers)
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false
		conf.EnableServiceLabel = false
		_, _ = gometrics.NewGlobal(conf, raftTimingSink{})
	})
	return []prometheus.Collector{raftTimings.commit, raftTimings.apply, raftTimings.stages}
}

// raftStageBuckets resolve the tens of microseconds a stage takes on a
// fast disk as well as the milliseconds of a slow one.
var raftStageBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

// raftTimingSink receives raft's go-metrics samples (milliseconds) and
// keeps the commit and apply timings; everything else is dropped.
type raftTimingSink struct{}

func (raftTimingSink) AddSample(key []string, val float32) {
	k := strings.Join(key, ".")
	switch k {
	case "raft.commitTime":
		raftTimings.commit.Observe(float64(val) / 1000)
	case "raft.fsm.applyBatch":
		raftTimings.apply.Observe(float64(val) / 1000)
	default:
		if stage, ok := raftStageKeys[k]; ok {
			observeStage(stage, time.Duration(float64(val)*float64(time.Millisecond)))
		}
	}
}

func (s raftTimingSink) AddSampleWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.AddSample(key, val)
}
func (raftTimingSink) SetGauge([]string, float32)                                 {}
func (raftTimingSink) SetGaugeWithLabels([]string, float32, []gometrics.Label)    {}
func (raftTimingSink) EmitKey([]string, float32)                                  {}
func (raftTimingSink) IncrCounter([]string, float32)                              {}
func (raftTimingSink) IncrCounterWithLabels([]string, float32, []gometrics.Label) {}

// opsCollectors are this file's collectors for Collectors().
func (s *Store) opsCollectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		newStateCollector(s.machine.reader),
		s.adapter.outcomes.logins, s.adapter.outcomes.allocations,
	}
	return append(cs, raftTimingCollectors()...)
}
