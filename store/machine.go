package store

import (
	"fmt"
	"io"

	"github.com/wimms-dev/wimms/fsm"
)

// machine is what the raft adapter needs from the state machine. The store
// runs *fsm.FSM through fsmMachine; tests substitute a small deterministic
// machine so that the replication layer can be exercised (and, e.g., an
// apply on one member held back) independently of the domain logic.
type machine interface {
	Apply(fsm.Command) fsm.Result
	Restore(io.Reader) error
	// snapshot captures a point-in-time view cheaply (it runs on raft's FSM
	// goroutine, blocking applies); the expensive write happens in WriteTo.
	snapshot() io.WriterTo
	reader() fsm.Reader
}

// codec turns commands into raft log payloads and back.
type codec struct {
	encode func(fsm.Command) []byte
	decode func([]byte) (fsm.Command, error)
}

var fsmCodec = codec{encode: fsm.EncodeCommand, decode: fsm.DecodeCommand}

// fsmMachine adapts *fsm.FSM to machine.
type fsmMachine struct{ f *fsm.FSM }

var _ machine = fsmMachine{}

func (m fsmMachine) Apply(cmd fsm.Command) fsm.Result { return m.f.Apply(cmd) }

func (m fsmMachine) Restore(r io.Reader) error {
	if err := m.f.Restore(r); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	return nil
}

func (m fsmMachine) snapshot() io.WriterTo { return m.f.Snapshot() }

// reader is one published, immutable view: every call a read handler makes
// sees the same state, and no reader ever waits for Apply.
func (m fsmMachine) reader() fsm.Reader { return m.f.View() }
