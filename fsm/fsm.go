package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
)

// Options configure a state machine. The zero Options is production
// behaviour. Every member of a cluster must use the same Options: they
// change what Apply computes.
type Options struct {
	// IdempotencyTTLMs: an idempotency key is forgotten once the applied
	// ts is more than this past the write that stored it. 0 = 1 hour.
	IdempotencyTTLMs int64
	// IdempotencyMaxEntries bounds the idempotency table; the oldest
	// entries go first. 0 = 100 000.
	IdempotencyMaxEntries int
}

const (
	DefaultIdempotencyTTLMs      = 60 * 60 * 1000
	DefaultIdempotencyMaxEntries = 100_000
)

func (o *Options) idemTTL() int64 {
	if o.IdempotencyTTLMs > 0 {
		return o.IdempotencyTTLMs
	}
	return DefaultIdempotencyTTLMs
}

func (o *Options) idemMax() int {
	if o.IdempotencyMaxEntries > 0 {
		return o.IdempotencyMaxEntries
	}
	return DefaultIdempotencyMaxEntries
}

// FSM is the WIMMS state machine. Apply and ApplyBatch must be called
// from one goroutine at a time; the Reader methods may run concurrently
// with them and never wait for them.
//
// The writer owns a private mutable state; readers see an immutable
// published copy of it (View), swapped in atomically after each Apply and
// once per ApplyBatch. Copy-on-write B-trees make the copy O(services +
// nodes); see DESIGN.md "Concurrency".
type FSM struct {
	opts Options

	// mu serialises the writer side (Apply, ApplyBatch, Snapshot, Fork,
	// Restore) so that a Snapshot or Fork taken from another goroutine
	// never clones a half-applied state. Readers never take it.
	mu sync.Mutex
	// st is the writer's private state: only code holding mu touches it.
	st *state
	// view is the last published state; never nil after New.
	view atomic.Pointer[View]

	// afterCommandHook, when set (tests only), runs with mu held after
	// each command has changed st and before that change is published.
	afterCommandHook func()
}

var (
	_ Reader = (*FSM)(nil)
	_ Reader = (*View)(nil)
)

// New returns an empty state machine.
func New(opts Options) *FSM {
	f := &FSM{opts: opts, st: newState()}
	f.publishLocked()
	return f
}

// Apply applies one command, publishes the new state to readers and
// returns the command's deterministic result.
func (f *FSM) Apply(cmd Command) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.st.apply(&cmd, &f.opts)
	if f.afterCommandHook != nil {
		f.afterCommandHook()
	}
	f.publishLocked()
	return res
}

// ApplyBatch applies cmds in order and publishes once, at the end: a
// reader sees the state before the batch or after all of it, never a
// prefix. Results are those Apply would have returned one by one.
func (f *FSM) ApplyBatch(cmds []Command) []Result {
	out := make([]Result, len(cmds))
	if len(cmds) == 0 {
		return out
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range cmds {
		// A copy, as Apply takes one: the caller's slice stays untouched.
		cmd := cmds[i]
		out[i] = f.st.apply(&cmd, &f.opts)
		if f.afterCommandHook != nil {
			f.afterCommandHook()
		}
	}
	f.publishLocked()
	return out
}

// publishLocked makes the writer's current state what readers see. The
// copy shares every B-tree node with st; st's next writes copy the nodes
// they touch instead of changing them under a reader.
func (f *FSM) publishLocked() {
	f.view.Store(&View{st: f.st.cloneForReaders()})
}

// View returns the state as of the last publish: immutable, so every read
// through it sees the same state even while Apply continues. Use one View
// for reads that must agree with each other.
func (f *FSM) View() *View { return f.view.Load() }

// LastTS is the last applied ts (docs/spec.md §2) as readers see it.
func (f *FSM) LastTS() int64 { return f.View().LastTS() }

// Fork returns an independent copy of the current state with the same
// Options. Either may Apply afterwards without affecting the other. Cheap:
// the record tables are shared copy-on-write.
func (f *FSM) Fork() *FSM {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &FSM{opts: f.opts, st: f.st.clone()}
	g.publishLocked()
	return g
}

// Snapshot returns a frozen point-in-time view, cheap to take (it does not
// copy the record tables); Apply may continue while it is written.
func (f *FSM) Snapshot() *Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &Snapshot{st: f.st.clone()}
}

// Restore replaces the whole state with one read from r and publishes it.
// On error the current state is left untouched.
func (f *FSM) Restore(r io.Reader) error {
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.publishLocked()
	return nil
}

// Equal reports whether two state machines hold exactly the same state
// (including last ts and the idempotency table), by comparing their
// snapshot encodings. Meant for tests: it encodes both states.
func (f *FSM) Equal(other *FSM) bool {
	var a, b bytes.Buffer
	if _, err := f.Snapshot().WriteTo(&a); err != nil {
		return false
	}
	if _, err := other.Snapshot().WriteTo(&b); err != nil {
		return false
	}
	return bytes.Equal(a.Bytes(), b.Bytes())
}

// Snapshot is a frozen view of the state.
type Snapshot struct{ st *state }

// ErrBadEncoding is wrapped by every decode and restore failure caused by
// the input itself (as opposed to the reader failing).
var ErrBadEncoding = errors.New("fsm: bad encoding")

func (s *state) apply(cmd *Command, opts *Options) Result {
	now := max(cmd.TS, s.lastTS)
	s.lastTS = now
	s.expireIdempotency(now, opts)
	if cmd.IdempotencyKey == "" {
		return s.dispatch(cmd, now, opts)
	}
	if e := checkIdempotencyKey(cmd.IdempotencyKey); e != nil {
		return fail(e)
	}
	if ent, ok := s.idem.Get(&idemEntry{key: cmd.IdempotencyKey}); ok {
		if ent.hash != cmd.RequestHash {
			return fail(&Error{Status: StatusConflict, Field: "Idempotency-Key", Msg: "idempotency key reused with a different request"})
		}
		res, err := DecodeResult(ent.result)
		if err != nil {
			// Unreachable: stored results come from EncodeResult and
			// Restore checks that each one decodes.
			return fail(&Error{Status: StatusConflict, Field: "Idempotency-Key", Msg: "stored result unreadable: " + err.Error()})
		}
		res.Repeated = true
		return res
	}
	res := s.dispatch(cmd, now, opts)
	s.rememberIdempotency(cmd, now, res, opts)
	return res
}

// expireIdempotency drops entries older than the TTL. Entries are ordered
// by insertion and ts never decreases, so the oldest is always first.
func (s *state) expireIdempotency(now int64, opts *Options) {
	ttl := opts.idemTTL()
	for {
		e, ok := s.idemOrder.Min()
		if !ok || now-e.ts <= ttl {
			return
		}
		s.idemOrder.DeleteMin()
		s.idem.Delete(e)
	}
}

func (s *state) rememberIdempotency(cmd *Command, now int64, res Result, opts *Options) {
	s.idemSeq++
	e := &idemEntry{
		key:    strings.Clone(cmd.IdempotencyKey),
		hash:   cmd.RequestHash,
		ts:     now,
		seq:    s.idemSeq,
		result: EncodeResult(res),
	}
	s.idem.ReplaceOrInsert(e)
	s.idemOrder.ReplaceOrInsert(e)
	for s.idemOrder.Len() > opts.idemMax() {
		old, _ := s.idemOrder.DeleteMin()
		s.idem.Delete(old)
	}
}
