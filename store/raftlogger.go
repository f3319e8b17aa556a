package store

import "github.com/hashicorp/go-hclog"

// raftLogger is hashicorp/raft's logger with two messages that every
// normal join prints at WARN said for what they are: a new member that
// has no configuration yet ("no known peers, aborting election") is
// waiting to be added, and a follower asked for an entry past its last
// one ("failed to get previous log") is catching up. Operators page on
// WARN lines; these are neither faults nor actionable.
type raftLogger struct{ hclog.Logger }

func (l raftLogger) Warn(msg string, args ...interface{}) {
	switch {
	case msg == "no known peers, aborting election":
		l.Logger.Info("no Raft configuration yet: waiting for the leader to add this member")
		return
	case msg == "failed to get previous log" && beyondLastIndex(args):
		l.Logger.Debug("catching up: the leader sent entries past this member's last one", args...)
		return
	}
	l.Logger.Warn(msg, args...)
}

func (l raftLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Warn {
		l.Warn(msg, args...)
		return
	}
	l.Logger.Log(level, msg, args...)
}

func (l raftLogger) With(args ...interface{}) hclog.Logger { return raftLogger{l.Logger.With(args...)} }
func (l raftLogger) Named(name string) hclog.Logger        { return raftLogger{l.Logger.Named(name)} }
func (l raftLogger) ResetNamed(name string) hclog.Logger {
	return raftLogger{l.Logger.ResetNamed(name)}
}

// beyondLastIndex reports raft's "previous-index" argument above its
// "last-index": the entry is missing because it was never received, not
// because something removed it.
func beyondLastIndex(args []interface{}) bool {
	var prev, last uint64
	var havePrev, haveLast bool
	for i := 0; i+1 < len(args); i += 2 {
		v, ok := args[i+1].(uint64)
		if !ok {
			continue
		}
		switch args[i] {
		case "previous-index":
			prev, havePrev = v, true
		case "last-index":
			last, haveLast = v, true
		}
	}
	return havePrev && haveLast && prev > last
}
