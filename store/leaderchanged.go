package store

// LeaderChanged returns a channel closed at the next leader change seen
// here (a new leader, none, or this member's own Raft state changing).
// Load it before checking the condition you wait for, so that no change
// falls between the check and the wait. Any number of readers may wait
// on it (the cluster's relays do, for a leader to forward to); LeaderCh
// stays the leader loop's alone.
func (s *Store) LeaderChanged() <-chan struct{} { return s.leaderChanged() }
