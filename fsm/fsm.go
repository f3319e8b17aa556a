package fsm

import (
	"errors"
	"io"
)

// Bug names a seeded bug (for the chaos harness only). The zero Options has
// none. Bugs that live in the state machine are listed here; others live in
// store.
type Options struct {
	// SkipCapacityCheck: allocation ignores capacity > current_load
	// (seeded bug "alloc-skip-capacity").
	SkipCapacityCheck bool
}

// FSM is the WIMMS state machine. Apply must be called from one goroutine
// at a time; the Reader methods may run concurrently with Apply.
type FSM struct {
	opts Options
}

// New returns an empty state machine.
func New(opts Options) *FSM { return &FSM{opts: opts} }

// Apply applies one command and returns its deterministic result.
func (f *FSM) Apply(cmd Command) Result { panic("todo") }

// LastTS is the last applied ts (SPEC §2).
func (f *FSM) LastTS() int64 { panic("todo") }

// Snapshot returns a frozen point-in-time view, cheap to take (it must not
// copy the whole state); Apply may continue while it is written.
func (f *FSM) Snapshot() *Snapshot { panic("todo") }

// Restore replaces the whole state with one read from r.
func (f *FSM) Restore(r io.Reader) error { panic("todo") }

// Snapshot is a frozen view of the state.
type Snapshot struct{}

// WriteTo streams the versioned binary encoding of the state to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) { panic("todo") }

// EncodeCommand / DecodeCommand: versioned compact binary log encoding.
func EncodeCommand(cmd Command) []byte { panic("todo") }

var ErrBadEncoding = errors.New("fsm: bad encoding")

func DecodeCommand(b []byte) (Command, error) { panic("todo") }
