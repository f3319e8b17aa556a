package netguard

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what a member's listeners refused. A nil *Metrics counts
// nothing, so packages and tests that run without a registry need no
// special case.
type Metrics struct {
	handshakeFailures *prometheus.CounterVec
	refused           *prometheus.CounterVec
	evicted           *prometheus.CounterVec
	badGossip         prometheus.Counter
}

// NewMetrics creates the counters; register Collectors() once.
func NewMetrics() *Metrics {
	return &Metrics{
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wimms_tls_handshake_failures_total",
			Help: "Inbound TLS handshakes that failed or timed out (wrong CA, no client certificate, plain text, silence), by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wimms_listener_refused_total",
			Help: "Inbound connections closed at once because a cap was reached, by listener, stage (handshake: unfinished handshakes; conn: established connections) and reason (total or per_address).",
		}, []string{"listener", "stage", "reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wimms_listener_idle_evicted_total",
			Help: "Idle keep-alive connections closed to make room for new clients, by listener.",
		}, []string{"listener"}),
		badGossip: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wimms_gossip_bad_packets_total",
			Help: "Gossip packets and streams memberlist dropped as undecryptable or malformed (wrong gossip key, garbage).",
		}),
	}
}

// Collectors are the counters to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	if m == nil {
		return nil
	}
	return []prometheus.Collector{m.handshakeFailures, m.refused, m.evicted, m.badGossip}
}

// HandshakeFailed counts one failed inbound handshake on listener.
func (m *Metrics) HandshakeFailed(listener string) {
	if m != nil {
		m.handshakeFailures.WithLabelValues(listener).Inc()
	}
}

// Refused counts one connection closed at once at stage for reason.
func (m *Metrics) Refused(listener, stage string, reason Refusal) {
	if m != nil {
		m.refused.WithLabelValues(listener, stage, string(reason)).Inc()
	}
}

// Evicted counts idle connections closed to make room.
func (m *Metrics) Evicted(listener string, n int) {
	if m != nil && n > 0 {
		m.evicted.WithLabelValues(listener).Add(float64(n))
	}
}

// BadGossipPacket counts one dropped gossip packet or stream.
func (m *Metrics) BadGossipPacket() {
	if m != nil {
		m.badGossip.Inc()
	}
}

// Total sums the series of the counter name whose labels include the given
// name/value pairs: what a test or a diagnostic asks of these counters,
// read the way /metrics would show them.
func (m *Metrics) Total(name string, labels ...string) (float64, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(multiCollector(m.Collectors())); err != nil {
		return 0, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			sum += mt.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// multiCollector registers several collectors as one.
type multiCollector []prometheus.Collector

func (c multiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c multiCollector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}
