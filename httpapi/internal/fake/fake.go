// Package fake provides programmable stand-ins for the interfaces of
// httpapi/backend.go, so the HTTP layer and its client can be tested
// without the state machine or Raft (the Router's fake is httpapi's own,
// fakerouter_test.go, since its Placement is an httpapi type). They record what reached them: a test can
// prove that a malformed request never did.
package fake

import (
	"context"
	"sort"
	"sync"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// Store is a fake httpapi.Store. Apply answers with ApplyFunc when set,
// else with Result / ApplyErr. It emulates the state machine's idempotency
// table (same key and hash → stored Result with Repeated; same key, other
// hash → conflict) so replay rendering can be tested.
type Store struct {
	mu sync.Mutex

	ApplyFunc func(cmd fsm.Command) (fsm.Result, error)
	Result    fsm.Result
	ApplyErr  error
	ReadErr   error
	State     *Reader
	MetaValue store.Meta
	ReadyFlag bool

	commands []fsm.Command
	reads    []store.ReadOptions
	idem     map[string]idemEntry
}

type idemEntry struct {
	hash   uint64
	result fsm.Result
}

// NewStore returns a ready fake with an empty Reader and a Meta naming
// member "m1" as leader at index 7.
func NewStore() *Store {
	return &Store{
		State:     NewReader(),
		MetaValue: store.Meta{Index: 7, MemberID: "m1", KnownLeader: true},
		ReadyFlag: true,
		idem:      map[string]idemEntry{},
	}
}

// Apply records cmd and answers as programmed.
func (s *Store) Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, store.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, cmd)
	if s.ApplyErr != nil {
		return fsm.Result{}, store.Meta{}, s.ApplyErr
	}
	if cmd.IdempotencyKey != "" {
		if prev, ok := s.idem[cmd.IdempotencyKey]; ok {
			if prev.hash != cmd.RequestHash {
				return fsm.Result{Err: &fsm.Error{Status: fsm.StatusConflict, Field: "Idempotency-Key",
					Msg: "key was used with a different request"}}, s.MetaValue, nil
			}
			res := prev.result
			res.Repeated = true
			return res, s.MetaValue, nil
		}
	}
	res := s.Result
	if s.ApplyFunc != nil {
		var err error
		if res, err = s.ApplyFunc(cmd); err != nil {
			return fsm.Result{}, store.Meta{}, err
		}
	}
	s.MetaValue.Index++
	if cmd.IdempotencyKey != "" {
		s.idem[cmd.IdempotencyKey] = idemEntry{hash: cmd.RequestHash, result: res}
	}
	return res, s.MetaValue, nil
}

// Read records opts and runs fn against State.
func (s *Store) Read(ctx context.Context, opts store.ReadOptions, fn func(fsm.Reader) error) (store.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = append(s.reads, opts)
	if s.ReadErr != nil {
		return store.Meta{}, s.ReadErr
	}
	return s.MetaValue, fn(s.State)
}

// Meta returns MetaValue.
func (s *Store) Meta() store.Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MetaValue
}

// Ready returns ReadyFlag.
func (s *Store) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ReadyFlag
}

// Commands returns a copy of every command Apply received.
func (s *Store) Commands() []fsm.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fsm.Command(nil), s.commands...)
}

// Reads returns a copy of the options of every Read.
func (s *Store) Reads() []store.ReadOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.ReadOptions(nil), s.reads...)
}

// Set changes programmed answers under the lock (for tests that run
// requests concurrently with reprogramming).
func (s *Store) Set(fn func(s *Store)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

// Reader is a fake fsm.Reader backed by plain slices and maps. It records
// the arguments of the queries that take parameters.
type Reader struct {
	Services    []fsm.Service
	Nodes       []fsm.Node
	Users       map[string]fsm.User     // key: UserKey(service, email)
	UserRecords map[string][]fsm.Record // key: UserKey(service, email)
	Old         []fsm.Record
	Count       int64
	Stat        map[string]fsm.Stats

	LastOldQuery     fsm.OldRecordsQuery
	LastCountService string
	LastCountAsOf    int64
}

// NewReader returns an empty Reader.
func NewReader() *Reader {
	return &Reader{Users: map[string]fsm.User{}, UserRecords: map[string][]fsm.Record{}, Stat: map[string]fsm.Stats{}}
}

// UserKey keys Users and UserRecords.
func UserKey(service, email string) string { return service + "\x00" + email }

func notFound(field, msg string) error {
	return &fsm.Error{Status: fsm.StatusNotFound, Field: field, Msg: msg}
}

func (r *Reader) GetService(name string) (fsm.Service, error) {
	for _, s := range r.Services {
		if s.Name == name {
			return s, nil
		}
	}
	return fsm.Service{}, notFound("service", "no such service")
}

func (r *Reader) ListServices() []fsm.Service {
	out := append([]fsm.Service(nil), r.Services...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Reader) ListNodes(service string) ([]fsm.Node, error) {
	if _, err := r.GetService(service); err != nil {
		return nil, err
	}
	var out []fsm.Node
	for _, n := range r.Nodes {
		if n.Service == service {
			out = append(out, n)
		}
	}
	return out, nil
}

func (r *Reader) GetNode(service string, id int64) (fsm.Node, error) {
	for _, n := range r.Nodes {
		if n.Service == service && n.ID == id {
			return n, nil
		}
	}
	return fsm.Node{}, notFound("id", "no such node")
}

func (r *Reader) GetUser(service, email string) (fsm.User, error) {
	u, ok := r.Users[UserKey(service, email)]
	if !ok {
		return fsm.User{}, notFound("email", "no such user")
	}
	return u, nil
}

func (r *Reader) Records(service, email string) ([]fsm.Record, error) {
	rs, ok := r.UserRecords[UserKey(service, email)]
	if !ok {
		return nil, notFound("email", "no such user")
	}
	return rs, nil
}

func (r *Reader) OldRecords(q fsm.OldRecordsQuery) ([]fsm.Record, error) {
	r.LastOldQuery = q
	if _, err := r.GetService(q.Service); err != nil {
		return nil, err
	}
	return r.Old, nil
}

func (r *Reader) CountUsers(service string, asOf int64) (int64, error) {
	r.LastCountService, r.LastCountAsOf = service, asOf
	return r.Count, nil
}

func (r *Reader) Stats(service string) (fsm.Stats, error) {
	st, ok := r.Stat[service]
	if !ok {
		return fsm.Stats{}, notFound("service", "no such service")
	}
	return st, nil
}

// Cluster is a fake httpapi.Cluster.
type Cluster struct {
	mu          sync.Mutex
	StatusValue wire.ClusterStatus
	Err         error // returned by every method when set

	joined    []wire.Member
	removed   []string
	transfers []string
}

func (c *Cluster) Status(ctx context.Context) (wire.ClusterStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.StatusValue, c.Err
}

func (c *Cluster) Join(ctx context.Context, m wire.Member) error {
	return record(c, &c.joined, m)
}

func (c *Cluster) Remove(ctx context.Context, id string) error {
	return record(c, &c.removed, id)
}

func (c *Cluster) TransferLeadership(ctx context.Context, id string) error {
	return record(c, &c.transfers, id)
}

// record appends v to the calls in log, unless c fails every call.
func record[T any](c *Cluster, log *[]T, v T) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return c.Err
	}
	*log = append(*log, v)
	return nil
}

// Calls returns what succeeded: joined members, removed ids, transfer targets.
func (c *Cluster) Calls() (joined []wire.Member, removed, transfers []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Member(nil), c.joined...), append([]string(nil), c.removed...), append([]string(nil), c.transfers...)
}
