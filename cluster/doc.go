// Package cluster provides membership (join, gossip, zones, removal,
// reaping) and the leader loop. Gossip only advises; the Raft configuration
// kept by package store decides who is in the cluster. Where a request runs
// and relaying it to the leader is the sub-package cluster/routing, which
// each Cluster builds and hands its gossip registry. See DESIGN.md in this
// directory.
package cluster
