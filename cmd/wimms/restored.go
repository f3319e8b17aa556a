package main

import "github.com/wimms-dev/wimms/store"

// checkRestoredIdentity refuses, with one line, a first start on a data
// dir `wimms restore` prepared for another member (store.CheckRestoredIdentity
// reads the snapshot: only store reads Raft's files).
func checkRestoredIdentity(dataDir, id, raftAddr string) error {
	return store.CheckRestoredIdentity(dataDir, id, raftAddr)
}
