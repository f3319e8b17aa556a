package fsm

import (
	"math"
	"slices"
)

// Reads never lock: each Reader method of FSM loads the current View once
// and reads that immutable state, so it sees the state after some whole
// Apply or ApplyBatch and never a half-applied one. Successive calls may
// see successive states; reads that must agree use one View.

const (
	DefaultOldRecordsGraceMs = 7 * 24 * 60 * 60 * 1000
	DefaultOldRecordsLimit   = 100
)

func (v *View) GetService(name string) (Service, error) {
	sv, e := v.st.service(name)
	if e != nil {
		return Service{}, e
	}
	return sv.Service, nil
}

// ListServices returns every service ordered by id.
func (v *View) ListServices() []Service {
	out := make([]Service, 0, len(v.st.svcByID))
	for _, sv := range v.st.servicesByID() {
		out = append(out, sv.Service)
	}
	return out
}

// ListNodes returns the service's nodes ordered by id.
func (v *View) ListNodes(service string) ([]Node, error) {
	sv, e := v.st.service(service)
	if e != nil {
		return nil, e
	}
	return slices.Clone(sv.nodes), nil
}

func (v *View) GetNode(service string, id int64) (Node, error) {
	sv, e := v.st.service(service)
	if e != nil {
		return Node{}, e
	}
	idx := sv.nodeIndex(id)
	if idx < 0 {
		return Node{}, notFound("node", "no node %d in service %q", id, service)
	}
	return sv.nodes[idx], nil
}

func (s *state) readUser(service, email string) (*svcState, *user, *Error) {
	sv, e := s.service(service)
	if e != nil {
		return nil, nil, e
	}
	u := sv.findUser(&user{}, email)
	if u == nil {
		return nil, nil, notFound("email", "unknown user %q in service %q", email, service)
	}
	return sv, u, nil
}

// GetUser returns the user's current record with derived fields.
func (v *View) GetUser(service, email string) (User, error) {
	sv, u, e := v.st.readUser(service, email)
	if e != nil {
		return User{}, e
	}
	return *v.st.userView(sv, u), nil
}

// Records returns every stored record of the user, oldest first.
func (v *View) Records(service, email string) ([]Record, error) {
	sv, u, e := v.st.readUser(service, email)
	if e != nil {
		return nil, e
	}
	out := make([]Record, len(u.recs))
	for i := range u.recs {
		out[i] = v.st.recordView(sv, u, &u.recs[i])
	}
	return out, nil
}

// OldRecords lists records replaced before q.Now − grace, newest
// replaced_at first, then highest uid. GraceMs 0 means the default 7 days
// and Limit 0 the default 100. Cost: O(log n + offset + limit).
func (v *View) OldRecords(q OldRecordsQuery) ([]Record, error) {
	if q.GraceMs < 0 {
		return nil, badRequest("grace_ms", "grace_ms must be >= 0")
	}
	if q.Limit < 0 {
		return nil, badRequest("limit", "limit must be >= 0")
	}
	if q.Offset < 0 {
		return nil, badRequest("offset", "offset must be >= 0")
	}
	if q.GraceMs == 0 {
		q.GraceMs = DefaultOldRecordsGraceMs
	}
	if q.Limit == 0 {
		q.Limit = DefaultOldRecordsLimit
	}
	sv, e := v.st.service(q.Service)
	if e != nil {
		return nil, e
	}
	// Saturating: Now may be anything a caller sends.
	cutoff := q.Now - q.GraceMs
	if cutoff > q.Now {
		cutoff = math.MinInt64
	}
	if cutoff == math.MinInt64 {
		return nil, nil
	}
	var out []Record
	skip := q.Offset
	v.st.old.AscendGreaterOrEqual(oldEntry{svc: sv.ID, replacedAt: cutoff - 1, uid: math.MaxInt64}, func(oe oldEntry) bool {
		if oe.svc != sv.ID {
			return false
		}
		if skip > 0 {
			skip--
			return true
		}
		e, _ := sv.tree(oe.node).Get(recEntry{uid: oe.uid})
		i, _ := e.u.recByUID(oe.uid)
		out = append(out, v.st.recordView(sv, e.u, &e.u.recs[i]))
		return len(out) < q.Limit
	})
	return out, nil
}

// CountUsers counts live records created at or before asOf, in one
// service or (service == "") all. Every live record was created at or
// before the last applied ts, so the common asOf ≥ last ts is O(services)
// from the counters; an earlier asOf walks each node's records back from
// the newest over those created after it, which works because created_at
// never decreases as uids grow.
func (v *View) CountUsers(service string, asOf int64) (int64, error) {
	s := v.st
	var services []*svcState
	if service != "" {
		sv, e := s.service(service)
		if e != nil {
			return 0, e
		}
		services = []*svcState{sv}
	} else {
		services = s.servicesByID()
	}
	var total int64
	for _, sv := range services {
		total += sv.live
		if asOf >= s.lastTS {
			continue
		}
		// Every record is looked at: imported records keep their source's
		// created_at, which need not grow with the uid, so no uid bounds
		// the ones created after asOf.
		for _, t := range sv.trees {
			t.recs.Ascend(func(e recEntry) bool {
				i, _ := e.u.recByUID(e.uid)
				if r := &e.u.recs[i]; r.live() && r.createdAt > asOf {
					total--
				}
				return true
			})
		}
	}
	return total, nil
}

func (v *View) Stats(service string) (Stats, error) {
	sv, e := v.st.service(service)
	if e != nil {
		return Stats{}, e
	}
	return Stats{Users: sv.live, Records: sv.stored, Nodes: int64(len(sv.nodes))}, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// View is one published state of an FSM. It never changes, so any number
// of goroutines may read it without a lock while the FSM moves on.
type View struct{ st *state }

// LastTS is the last ts applied in this state (docs/spec.md §2).
func (v *View) LastTS() int64 { return v.st.lastTS }

// The FSM's Reader methods read the latest View.

func (f *FSM) GetService(name string) (Service, error)  { return f.View().GetService(name) }
func (f *FSM) ListServices() []Service                  { return f.View().ListServices() }
func (f *FSM) ListNodes(service string) ([]Node, error) { return f.View().ListNodes(service) }
func (f *FSM) GetNode(service string, id int64) (Node, error) {
	return f.View().GetNode(service, id)
}
func (f *FSM) GetUser(service, email string) (User, error) { return f.View().GetUser(service, email) }
func (f *FSM) Records(service, email string) ([]Record, error) {
	return f.View().Records(service, email)
}
func (f *FSM) OldRecords(q OldRecordsQuery) ([]Record, error) { return f.View().OldRecords(q) }
func (f *FSM) CountUsers(service string, asOf int64) (int64, error) {
	return f.View().CountUsers(service, asOf)
}
func (f *FSM) Stats(service string) (Stats, error) { return f.View().Stats(service) }
