package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// membersCollector reports the Raft configuration as this member sees it,
// at scrape time: which members are up and whether a leader is known. It
// reads the local configuration and gossip registry only (no network).
type membersCollector struct {
	c                *Cluster
	memberUp, leader *prometheus.Desc
	members          *prometheus.Desc
}

// Collectors are the cluster's Prometheus metrics (the router has its
// own, Router().Collectors); the caller registers them.
func (c *Cluster) Collectors() []prometheus.Collector {
	return []prometheus.Collector{&membersCollector{
		c: c,
		memberUp: prometheus.NewDesc("wimms_cluster_member_up",
			"1 while a member of the Raft configuration is the leader or an alive follower as seen by this member, else 0.",
			[]string{"member", "zone"}, nil),
		leader: prometheus.NewDesc("wimms_cluster_leader_known",
			"1 while this member knows a leader.", nil, nil),
		members: prometheus.NewDesc("wimms_cluster_members",
			"Members in the Raft configuration this member has applied.", nil, nil),
	}}
}

func (m *membersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.memberUp
	ch <- m.leader
	ch <- m.members
}

func (m *membersCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := m.c.Status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.members, err)
		return
	}
	known := 0.0
	if st.Leader != nil {
		known = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leader, prometheus.GaugeValue, known)
	ch <- prometheus.MustNewConstMetric(m.members, prometheus.GaugeValue, float64(len(st.Members)))
	for _, mem := range st.Members {
		up := 0.0
		if mem.State == "leader" || mem.State == "follower" || mem.State == "candidate" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.memberUp, prometheus.GaugeValue, up, mem.ID, mem.Zone)
	}
}
