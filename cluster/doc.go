// Package cluster provides membership (join, gossip, zones, removal,
// reaping) and forwarding of requests a follower cannot serve to the
// leader. Gossip only advises; the Raft configuration kept by package store
// decides who is in the cluster. See DESIGN.md in this directory.
package cluster
