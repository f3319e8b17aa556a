package store

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/wimms-dev/wimms/fsm"
)

// fakeMachine is a tiny deterministic state machine (services only) for
// exercising replication without the domain logic. Its Apply can be held
// back with hold/release to make a member lag.
type fakeMachine struct {
	mu       sync.RWMutex
	services map[string]fsm.Service
	nextID   int64
	applied  int64 // commands applied, including no-ops

	gate atomic.Pointer[chan struct{}] // non-nil: Apply waits for it to close
}

func newFakeMachine() *fakeMachine {
	return &fakeMachine{services: map[string]fsm.Service{}}
}

// hold makes every Apply block until release.
func (m *fakeMachine) hold() {
	ch := make(chan struct{})
	m.gate.Store(&ch)
}

func (m *fakeMachine) release() {
	if ch := m.gate.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (m *fakeMachine) Apply(cmd fsm.Command) fsm.Result {
	if ch := m.gate.Load(); ch != nil {
		<-*ch
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied++
	switch cmd.Op {
	case fsm.OpNoop:
		return fsm.Result{}
	case fsm.OpPutService:
		svc, ok := m.services[cmd.Service]
		if !ok {
			m.nextID++
			svc = fsm.Service{ID: m.nextID, Name: cmd.Service, ReleaseRate: "0.1", AllowNewUsers: true, Spread: 1}
		}
		if cmd.Pattern.Set {
			svc.Pattern = cmd.Pattern.V
		}
		m.services[cmd.Service] = svc
		return fsm.Result{Created: !ok, Service: &svc}
	case fsm.OpDeleteService:
		if _, ok := m.services[cmd.Service]; !ok {
			return fsm.Result{Err: &fsm.Error{Status: fsm.StatusNotFound, Msg: "no such service"}}
		}
		delete(m.services, cmd.Service)
		return fsm.Result{}
	}
	return fsm.Result{Err: &fsm.Error{Status: fsm.StatusBadRequest, Msg: fmt.Sprintf("fake machine: unsupported op %d", cmd.Op)}}
}

type fakeState struct {
	Services map[string]fsm.Service
	NextID   int64
	Applied  int64
}

func (m *fakeMachine) state() fakeState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fakeState{Services: maps.Clone(m.services), NextID: m.nextID, Applied: m.applied}
}

type writerToFunc func(io.Writer) (int64, error)

func (f writerToFunc) WriteTo(w io.Writer) (int64, error) { return f(w) }

func (m *fakeMachine) snapshot() io.WriterTo {
	st := m.state()
	return writerToFunc(func(w io.Writer) (int64, error) {
		b, err := json.Marshal(st)
		if err != nil {
			return 0, err
		}
		n, err := w.Write(b)
		return int64(n), err
	})
}

func (m *fakeMachine) Restore(r io.Reader) error {
	var st fakeState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("fake restore: %w", err)
	}
	if st.Services == nil {
		st.Services = map[string]fsm.Service{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services, m.nextID, m.applied = st.Services, st.NextID, st.Applied
	return nil
}

func (m *fakeMachine) reader() fsm.Reader { return fakeReader{m} }

func (m *fakeMachine) has(name string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.services[name]
	return ok
}

type fakeReader struct{ m *fakeMachine }

var errFakeNotFound = &fsm.Error{Status: fsm.StatusNotFound, Msg: "fake machine: not found"}

func (r fakeReader) GetService(name string) (fsm.Service, error) {
	r.m.mu.RLock()
	defer r.m.mu.RUnlock()
	svc, ok := r.m.services[name]
	if !ok {
		return fsm.Service{}, errFakeNotFound
	}
	return svc, nil
}

func (r fakeReader) ListServices() []fsm.Service {
	r.m.mu.RLock()
	defer r.m.mu.RUnlock()
	keys := slices.Sorted(maps.Keys(r.m.services))
	out := make([]fsm.Service, 0, len(keys))
	for _, k := range keys {
		out = append(out, r.m.services[k])
	}
	return out
}

func (fakeReader) ListNodes(string) ([]fsm.Node, error)         { return nil, errFakeNotFound }
func (fakeReader) GetNode(string, int64) (fsm.Node, error)      { return fsm.Node{}, errFakeNotFound }
func (fakeReader) GetUser(string, string) (fsm.User, error)     { return fsm.User{}, errFakeNotFound }
func (fakeReader) Records(string, string) ([]fsm.Record, error) { return nil, errFakeNotFound }
func (fakeReader) OldRecords(fsm.OldRecordsQuery) ([]fsm.Record, error) {
	return nil, errFakeNotFound
}
func (fakeReader) CountUsers(string, int64) (int64, error) { return 0, errFakeNotFound }
func (fakeReader) Stats(string) (fsm.Stats, error)         { return fsm.Stats{}, errFakeNotFound }

// jsonCodec is the fake's log encoding.
var jsonCodec = codec{
	encode: func(cmd fsm.Command) []byte {
		b, err := json.Marshal(cmd)
		if err != nil {
			panic(fmt.Sprintf("encoding command: %v", err))
		}
		return b
	},
	decode: func(b []byte) (fsm.Command, error) {
		var cmd fsm.Command
		if err := json.Unmarshal(b, &cmd); err != nil {
			return fsm.Command{}, fmt.Errorf("%w: %w", fsm.ErrBadEncoding, err)
		}
		return cmd, nil
	},
}
