// Package nemesis owns the faults of a chaos run and the mechanisms that
// make them real: the fault kinds and --nemesis parsing, the partition
// shapes (halves, leader, ring, bridge) as cut pairs, the host's iptables
// chains and packet marks (Firewall), the same cuts inside each
// container's network namespace (NetnsScript, RestoreInNetns), a
// size-limited tmpfs per member that can be filled (DiskMount), and the
// damage to a stopped member's raft-wal tail segment (DamageTail).
//
// It is apart from the runner so that each mechanism can be tested on its
// own (a cut really drops packets both ways and silently, a full disk
// really answers ENOSPC, a damaged tail is what raft-wal reads back
// shorter). Choosing when to inject which fault against which member is
// the runner's (jepsen's nemesis loop), which drives a cluster through its
// target interface. This package must never touch anything but
// 127.0.0.0/8, the harness's own chains (ChainAddr, ChainOwner), the
// containers' namespaces and the directories it is given, and must never
// fake a fault inside the server: only what an operator, a network or a
// disk can do.
package nemesis
