package fsm

import (
	"fmt"
	"reflect"
	"slices"
)

// userKey names a user across steps.
type userKey struct {
	svc   int64
	email string
}

// tracker carries what the invariants need to know about history: which
// nodes an operator or an allowed placement may have pushed past the
// counting rules (docs/spec.md §1, invariants 3 and 4), and each user's last
// generation / keys_changed_at (invariant 6).
type tracker struct {
	handLoad  map[int64]bool // current_load set by hand: invariant 3 does not apply
	mayExceed map[int64]bool // capacity may be exceeded legitimately: invariant 4 does not apply
	lastKeys  map[userKey][2]int64
	// keptOrder: users an OpImportKeepTimes batch wrote; their history
	// holds the source's generations, which may go down (invariant 6 holds
	// only from their current record on, through lastKeys).
	keptOrder map[string]bool
}

func newTracker() *tracker {
	return &tracker{handLoad: map[int64]bool{}, mayExceed: map[int64]bool{}, lastKeys: map[userKey][2]int64{}, keptOrder: map[string]bool{}}
}

// observe records what cmd (already applied with result res; before is the
// state it was applied to) allows.
func (tr *tracker) observe(before *state, cmd Command, res Result) {
	if res.Err != nil || res.Repeated {
		return
	}
	switch cmd.Op {
	case OpAddNode:
		if cmd.CurrentLoad.Set && cmd.CurrentLoad.V != 0 {
			tr.handLoad[res.Node.ID] = true
			tr.mayExceed[res.Node.ID] = true
		}
	case OpUpdateNode:
		if cmd.CurrentLoad.Set {
			tr.handLoad[cmd.NodeID] = true
			tr.mayExceed[cmd.NodeID] = true
		}
		if cmd.Capacity.Set {
			tr.mayExceed[cmd.NodeID] = true
		}
	case OpAllocate, OpUpdateUser, OpLogin:
		if res.User == nil {
			return
		}
		if cmd.Node.Set {
			tr.mayExceed[res.User.NodeID] = true
			return
		}
		if cmd.Op == OpAllocate {
			return
		}
		// A key change stays on the user's node whatever its load.
		sv := before.svcByName[cmd.Service]
		if sv == nil {
			return
		}
		if u := sv.findUser(&user{}, cmd.Email); u != nil && u.current().nodeID == res.User.NodeID {
			tr.mayExceed[res.User.NodeID] = true
		}
	case OpImport, OpImportKeepTimes:
		tr.observeImport(cmd.Import)
		if cmd.Op == OpImportKeepTimes && res.Err == nil {
			for _, r := range cmd.Import.Records {
				tr.keptOrder[r.Email] = true
			}
		}
	case OpDeleteRecord:
		// Purging a user's newest record legitimately exposes an older one
		// with lower values.
		if sv := before.svcByName[cmd.Service]; sv != nil {
			if u, _ := sv.findByUID(cmd.UID); u != nil {
				delete(tr.lastKeys, userKey{u.svc, u.email})
			}
		}
	}
}

func keyOrder(v int64) int64 {
	if v == Null {
		return -1
	}
	return v
}

// invariantViolations recomputes every invariant of docs/spec.md §1 and every
// internal index from scratch and returns what is broken.
func invariantViolations(f *FSM, tr *tracker) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	if len(s.svcByID) != len(s.svcByName) {
		report("service maps differ: %d by id, %d by name", len(s.svcByID), len(s.svcByName))
	}
	type uidRef struct {
		u *user
		i int
	}
	byUID := map[int64]uidRef{} // across services: uids are globally unique
	nodeOwner := map[int64]int64{}
	for _, sv := range s.servicesByID() {
		id := sv.ID
		if s.svcByName[sv.Name] != sv || s.svcByID[id] != sv {
			report("service %d mis-indexed", id)
		}
		if id >= s.nextServiceID {
			report("service id %d >= next %d", id, s.nextServiceID)
		}
		if nano, ok := parseRate(sv.ReleaseRate); !ok || nano != sv.rateNano {
			report("service %d rate %q parsed as %d", id, sv.ReleaseRate, sv.rateNano)
		}
		urls := map[string]bool{}
		for i, nd := range sv.nodes {
			if i > 0 && sv.nodes[i-1].ID >= nd.ID {
				report("service %d nodes not sorted by id", id)
			}
			if _, dup := nodeOwner[nd.ID]; dup || nd.ID >= s.nextNodeID {
				report("node id %d reused or out of range", nd.ID)
			}
			nodeOwner[nd.ID] = id
			if urls[nd.URL] {
				report("service %d has node url %q twice", id, nd.URL)
			}
			urls[nd.URL] = true
			if nd.Service != sv.Name {
				report("node %d names service %q", nd.ID, nd.Service)
			}
			if nd.Available < 0 { // invariant 5
				report("node %d available %d < 0", nd.ID, nd.Available)
			}
			if nd.CurrentLoad < 0 {
				report("node %d current_load %d < 0", nd.ID, nd.CurrentLoad)
			}
			if !tr.mayExceed[nd.ID] && nd.CurrentLoad > nd.Capacity { // invariant 4
				report("node %d over capacity: load %d > capacity %d", nd.ID, nd.CurrentLoad, nd.Capacity)
			}
		}

		perNode := map[int64]int64{}
		var live, stored int64
		var prev *user
		sv.users.Ascend(func(e userEntry) bool {
			u := e.u
			if e.key != emailKey(u.email) || u.svc != id {
				report("user %q mis-keyed", u.email)
			}
			if prev != nil && prev.email >= u.email {
				report("users of service %d out of order at %q", id, u.email)
			}
			prev = u
			if len(u.recs) == 0 {
				report("user %q has no records", u.email)
				return true
			}
			for i := range u.recs {
				r := &u.recs[i]
				if _, dup := byUID[r.uid]; dup { // invariant 2
					report("uid %d stored twice", r.uid)
				}
				byUID[r.uid] = uidRef{u, i}
				if r.uid >= s.nextUID || r.uid < 1 {
					report("uid %d outside [1, %d)", r.uid, s.nextUID)
				}
				if i > 0 && u.recs[i-1].uid >= r.uid {
					report("user %q records not ascending by uid", u.email)
				}
				if i < len(u.recs)-1 && r.live() { // invariant 1
					report("user %q has live record %d that is not current", u.email, r.uid)
				}
				if i > 0 && !tr.keptOrder[u.email] { // invariant 6 within a user's history
					p := &u.recs[i-1]
					if r.generation < p.generation || keyOrder(r.keysChangedAt) < keyOrder(p.keysChangedAt) {
						report("user %q: record %d has lower generation/keys_changed_at than record %d", u.email, r.uid, p.uid)
					}
				}
				if r.createdAt > s.lastTS {
					report("record %d created in the future", r.uid)
				}
				if !ValidClientState(r.clientState) || r.generation < 0 || (r.keysChangedAt != Null && r.keysChangedAt < 0) {
					report("record %d holds invalid fields", r.uid)
				}
				perNode[r.nodeID]++
				stored++
				if r.live() {
					live++
				} else {
					if !s.old.Has(oldEntry{svc: id, replacedAt: r.replacedAt, uid: r.uid}) {
						report("replaced record %d missing from the old index", r.uid)
					}
				}
				if t := sv.tree(r.nodeID); t == nil {
					report("record %d: no tree for node %d", r.uid, r.nodeID)
				} else if got, ok := t.Get(recEntry{uid: r.uid}); !ok || got.u != u {
					report("record %d: node tree entry missing or stale", r.uid)
				}
				if r.nodeID >= s.nextNodeID || r.nodeID < 1 {
					report("record %d on never-created node %d", r.uid, r.nodeID)
				}
			}
			// Invariant 6 across steps.
			k := userKey{u.svc, u.email}
			cur := u.current()
			if last, ok := tr.lastKeys[k]; ok && (cur.generation < last[0] || keyOrder(cur.keysChangedAt) < last[1]) {
				report("user %q: generation/keys_changed_at went down from %v to (%d, %d)", u.email, last, cur.generation, keyOrder(cur.keysChangedAt))
			}
			tr.lastKeys[k] = [2]int64{cur.generation, keyOrder(cur.keysChangedAt)}
			return true
		})
		if sv.live != live || sv.stored != stored {
			report("service %d counters live=%d stored=%d, actual %d/%d", id, sv.live, sv.stored, live, stored)
		}
		for _, nd := range sv.nodes {
			if !tr.handLoad[nd.ID] && nd.CurrentLoad != perNode[nd.ID] { // invariant 3
				report("node %d current_load %d but %d records stored on it", nd.ID, nd.CurrentLoad, perNode[nd.ID])
			}
		}
		treeRecords := 0
		for i, t := range sv.trees {
			if i > 0 && sv.trees[i-1].node >= t.node {
				report("service %d node trees out of order", id)
			}
			if t.recs.Len() == 0 && sv.nodeIndex(t.node) < 0 {
				report("empty tree kept for removed node %d", t.node)
			}
			if owner, ok := nodeOwner[t.node]; ok && owner != id {
				report("service %d holds a tree for node %d of service %d", id, t.node, owner)
			}
			if int64(t.recs.Len()) != perNode[t.node] {
				report("tree of node %d has %d entries, %d records name it", t.node, t.recs.Len(), perNode[t.node])
			}
			treeRecords += t.recs.Len()
			t.recs.Ascend(func(e recEntry) bool {
				ref, ok := byUID[e.uid]
				if !ok || ref.u != e.u || ref.u.recs[ref.i].nodeID != t.node {
					report("node %d tree entry %d points at a stale or missing record", t.node, e.uid)
				}
				return true
			})
		}
		if int64(treeRecords) != stored {
			report("service %d: %d tree entries, %d records", id, treeRecords, stored)
		}
	}
	oldCount := 0
	for _, sv := range s.svcByID {
		oldCount += int(sv.stored - sv.live)
	}
	if s.old.Len() != oldCount {
		report("old index has %d entries, %d records replaced", s.old.Len(), oldCount)
	}
	s.old.Ascend(func(oe oldEntry) bool {
		ref, ok := byUID[oe.uid]
		if !ok || ref.u.recs[ref.i].nodeID != oe.node || ref.u.recs[ref.i].replacedAt != oe.replacedAt || ref.u.svc != oe.svc {
			report("old index entry %+v does not match its record", oe)
		}
		return true
	})
	// created_at may go down as uids grow: imported records keep their
	// source's times (uid uniqueness is checked above).
	for k := range tr.lastKeys {
		if sv := s.svcByID[k.svc]; sv == nil || sv.findUser(&user{}, k.email) == nil {
			delete(tr.lastKeys, k)
		}
	}

	// Idempotency table.
	if s.idem.Len() != s.idemOrder.Len() {
		report("idempotency trees differ: %d vs %d", s.idem.Len(), s.idemOrder.Len())
	}
	if s.idem.Len() > f.opts.idemMax() {
		report("idempotency table holds %d > %d", s.idem.Len(), f.opts.idemMax())
	}
	prevTS := int64(-1 << 63)
	s.idemOrder.Ascend(func(e *idemEntry) bool {
		if got, ok := s.idem.Get(e); !ok || got != e {
			report("idempotency key %q missing from key index", e.key)
		}
		if e.ts < prevTS || s.lastTS-e.ts > f.opts.idemTTL() {
			report("idempotency entry %q ts %d out of order or expired", e.key, e.ts)
		}
		prevTS = e.ts
		return true
	})
	return bad
}

// checkInvariants fails t for every broken invariant.
func checkInvariants(t tb, f *FSM, tr *tracker) {
	t.Helper()
	for _, v := range invariantViolations(f, tr) {
		t.Errorf("invariant: %s", v)
	}
	for _, v := range readViolations(f) {
		t.Errorf("read: %s", v)
	}
}

// readViolations checks the index-backed reads against answers recomputed
// naively from every user's records.
func readViolations(f *FSM) []string {
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	type flat struct {
		svc string
		r   Record
	}
	var all []flat
	emails := map[string]bool{}
	f.mu.Lock()
	for _, sv := range f.st.svcByID {
		sv.users.Ascend(func(e userEntry) bool {
			emails[e.u.email] = true
			return true
		})
	}
	last := f.st.lastTS
	f.mu.Unlock()
	for _, sv := range f.ListServices() {
		for e := range emails {
			rs, err := f.Records(sv.Name, e)
			if err != nil {
				continue
			}
			u, err := f.GetUser(sv.Name, e)
			if err != nil || u.Record != rs[len(rs)-1] || u.FirstSeenAt != rs[0].CreatedAt {
				report("GetUser(%s, %s) = %+v, %v; records %+v", sv.Name, e, u, err, rs)
			}
			for _, r := range rs {
				all = append(all, flat{sv.Name, r})
			}
		}
	}
	for _, asOf := range []int64{last, last - 1, last - 100, last - 400, t0} {
		for _, sv := range append(f.ListServices(), Service{}) {
			want := int64(0)
			for _, fr := range all {
				if (sv.Name == "" || fr.svc == sv.Name) && fr.r.ReplacedAt == Null && fr.r.CreatedAt <= asOf {
					want++
				}
			}
			if got, err := f.CountUsers(sv.Name, asOf); err != nil || got != want {
				report("CountUsers(%q, %d) = %d, %v; want %d", sv.Name, asOf, got, err, want)
			}
		}
	}
	for _, sv := range f.ListServices() {
		var want []Record
		cutoff := last - 100
		for _, fr := range all {
			if fr.svc == sv.Name && fr.r.ReplacedAt != Null && fr.r.ReplacedAt < cutoff {
				want = append(want, fr.r)
			}
		}
		slices.SortFunc(want, func(a, b Record) int {
			if a.ReplacedAt != b.ReplacedAt {
				return cmpInt64(b.ReplacedAt, a.ReplacedAt)
			}
			return cmpInt64(b.UID, a.UID)
		})
		var got []Record
		for offset := 0; ; offset += 3 {
			page, err := f.OldRecords(OldRecordsQuery{Service: sv.Name, Now: last, GraceMs: 100, Limit: 3, Offset: offset})
			if err != nil {
				report("OldRecords: %v", err)
				break
			}
			got = append(got, page...)
			if len(page) < 3 {
				break
			}
		}
		if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			report("OldRecords(%s) = %+v, want %+v", sv.Name, got, want)
		}
		st, err := f.Stats(sv.Name)
		var users, records int64
		for _, fr := range all {
			if fr.svc == sv.Name {
				records++
				if fr.r.ReplacedAt == Null {
					users++
				}
			}
		}
		nodes, _ := f.ListNodes(sv.Name)
		if err != nil || st != (Stats{Users: users, Records: records, Nodes: int64(len(nodes))}) {
			report("Stats(%s) = %+v, %v", sv.Name, st, err)
		}
	}
	return bad
}
