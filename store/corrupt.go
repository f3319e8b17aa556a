package store

import (
	"errors"
	"fmt"
)

// ErrCorrupt marks damaged on-disk data (a log entry failing its checksum,
// an undecodable entry, a damaged BoltDB page, a snapshot failing its CRC).
// Test with errors.Is; errors.As with *CorruptionError gives the details.
var ErrCorrupt = errors.New("data corruption")

// CorruptionError describes damaged data in a member's data directory. Its
// message is meant to be the one line an operator reads: where, what, and
// what to do about it.
type CorruptionError struct {
	DataDir string
	Index   uint64 // Raft index of the damaged entry; 0 when not about one entry
	What    string // e.g. "log entry fails its checksum"
	Err     error  // the underlying failure, if any
	// Remedy replaces the default advice (replace the member empty) when
	// set.
	Remedy string
}

func (e *CorruptionError) Error() string {
	where := ""
	if e.Index > 0 {
		where = fmt.Sprintf(" at raft index %d", e.Index)
	}
	cause := ""
	if e.Err != nil {
		cause = ": " + e.Err.Error()
	}
	remedy := e.Remedy
	if remedy == "" {
		remedy = "this member's data cannot be trusted: stop it, move the data directory aside " +
			"and add the member back empty (docs/cluster.md, \"Replacing a damaged member\")"
	}
	return fmt.Sprintf("data corruption in data directory %s: %s%s%s; %s",
		e.DataDir, e.What, where, cause, remedy)
}

func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

func (e *CorruptionError) Unwrap() error { return e.Err }

// panicAsCorruption turns a panic raised while reading raft state (bbolt on
// a damaged page, raft on an unreadable entry during NewRaft) into a
// CorruptionError, so the operator sees one line naming the directory
// instead of a stack trace.
func panicAsCorruption(dataDir string, recovered any) error {
	err, ok := recovered.(error)
	if !ok {
		err = fmt.Errorf("%v", recovered)
	}
	var ce *CorruptionError
	if errors.As(err, &ce) {
		return ce
	}
	return &CorruptionError{DataDir: dataDir, What: "raft data unreadable (panic while reading it)", Err: err}
}
