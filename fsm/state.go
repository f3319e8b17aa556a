package fsm

import (
	"encoding/binary"
	"slices"

	"github.com/google/btree"
)

// btreeDegree trades node copy cost on copy-on-write against per-item
// slack. 32 keeps a copied node under ~1 KB while items stay dense enough
// for the 300 B/record memory budget (see BenchmarkHeapPerRecord1M).
const btreeDegree = 32

// rec is one stored record. It deliberately has no email or service: those
// live once in the owning user, so a user's records share them.
type rec struct {
	uid           int64
	nodeID        int64
	generation    int64
	keysChangedAt int64 // Null when absent
	createdAt     int64
	replacedAt    int64 // Null while live
	clientState   string
}

func (r *rec) live() bool { return r.replacedAt == Null }

// user is every stored record of one (service, email), ascending uid.
//
// A *user is immutable once it is in a tree: trees are shared with
// snapshots and forks by copy-on-write, so a change builds a new *user and
// publishes it (state.publish). Never write through a *user taken from a
// tree.
type user struct {
	svc   int64
	email string
	recs  []rec
}

func (u *user) current() *rec { return &u.recs[len(u.recs)-1] }

func (u *user) retired() bool { return u.current().generation == MaxGeneration }

// newUser makes a user with one record in a single allocation (most
// users never get a second record).
func newUser(svc int64, email string, r rec) *user {
	w := &struct {
		user
		first [1]rec
	}{user: user{svc: svc, email: email}, first: [1]rec{r}}
	w.recs = w.first[:]
	return &w.user
}

// withRecs returns a copy of u with recs replaced; recs must be fresh
// (not shared with u).
func (u *user) withRecs(recs []rec) *user { return &user{svc: u.svc, email: u.email, recs: recs} }

// copyRecs returns a private copy of u.recs with room for extra more.
func (u *user) copyRecs(extra int) []rec {
	out := make([]rec, len(u.recs), len(u.recs)+extra)
	copy(out, u.recs)
	return out
}

// recByUID returns the index of the record with uid in u.
func (u *user) recByUID(uid int64) (int, bool) {
	i, ok := slices.BinarySearchFunc(u.recs, uid, func(r rec, uid int64) int { return cmpInt64(r.uid, uid) })
	return i, ok
}

// userEntry orders a service's users by email. key holds the email's first
// 8 bytes so that almost every comparison is one integer compare instead
// of two pointer chases (user, then string bytes).
type userEntry struct {
	key uint64
	u   *user
}

// emailKey is the first 8 bytes of email, big-endian, zero-padded. Emails
// are printable (no 0x00), so comparing keys then emails is exactly the
// lexicographic order of emails.
func emailKey(email string) uint64 {
	var b [8]byte
	copy(b[:], email)
	return binary.BigEndian.Uint64(b[:])
}

func lessUserEntry(a, b userEntry) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.u.email < b.u.email
}

// recEntry indexes one record in its node's tree. Records on a node arrive
// in uid order; uid order is also creation order.
type recEntry struct {
	uid int64
	u   *user
}

func lessRecEntry(a, b recEntry) bool { return a.uid < b.uid }

// oldEntry indexes replaced records in the order the purge job reads them:
// per service, newest replaced_at first, then highest uid. node finds the
// record's tree.
type oldEntry struct {
	svc        int64
	replacedAt int64
	uid        int64
	node       int64
}

func lessOld(a, b oldEntry) bool {
	if a.svc != b.svc {
		return a.svc < b.svc
	}
	if a.replacedAt != b.replacedAt {
		return a.replacedAt > b.replacedAt
	}
	return a.uid > b.uid
}

// nodeTree holds the records stored on one node id. A removed node's tree
// lives on while records still name it.
type nodeTree struct {
	node int64
	recs *btree.BTreeG[recEntry]
}

// svcState is a service with its nodes, users and record counters. Apply
// mutates it in place, so clone deep-copies it; the trees inside are
// copied by copy-on-write.
type svcState struct {
	Service
	rateNano int64  // ReleaseRate in units of 1e-9, parsed once
	nodes    []Node // existing nodes, ascending id
	users    *btree.BTreeG[userEntry]
	trees    []nodeTree // ascending node id; existing nodes and removed ones with records
	live     int64      // records with replaced_at null
	stored   int64      // all stored records
}

func newSvcState(s Service, rateNano int64) *svcState {
	return &svcState{Service: s, rateNano: rateNano, users: btree.NewG(btreeDegree, lessUserEntry)}
}

func (sv *svcState) clone() *svcState {
	c := *sv
	c.nodes = slices.Clone(sv.nodes)
	c.users = sv.users.Clone()
	c.trees = make([]nodeTree, len(sv.trees))
	for i, t := range sv.trees {
		c.trees[i] = nodeTree{node: t.node, recs: t.recs.Clone()}
	}
	return &c
}

func (sv *svcState) nodeIndex(id int64) int {
	i, ok := slices.BinarySearchFunc(sv.nodes, id, func(n Node, id int64) int { return cmpInt64(n.ID, id) })
	if !ok {
		return -1
	}
	return i
}

func (sv *svcState) nodeIndexByURL(url string) int {
	for i := range sv.nodes {
		if sv.nodes[i].URL == url {
			return i
		}
	}
	return -1
}

func (sv *svcState) treeIndex(node int64) (int, bool) {
	return slices.BinarySearchFunc(sv.trees, node, func(t nodeTree, id int64) int { return cmpInt64(t.node, id) })
}

// tree returns the records on node, or nil.
func (sv *svcState) tree(node int64) *btree.BTreeG[recEntry] {
	if i, ok := sv.treeIndex(node); ok {
		return sv.trees[i].recs
	}
	return nil
}

func (sv *svcState) treeFor(node int64) *btree.BTreeG[recEntry] {
	i, ok := sv.treeIndex(node)
	if !ok {
		sv.trees = slices.Insert(sv.trees, i, nodeTree{node: node, recs: btree.NewG(btreeDegree, lessRecEntry)})
	}
	return sv.trees[i].recs
}

// dropTreeIfGone forgets node's tree once nothing refers to it: the node
// was removed and its last record purged.
func (sv *svcState) dropTreeIfGone(node int64) {
	if i, ok := sv.treeIndex(node); ok && sv.trees[i].recs.Len() == 0 && sv.nodeIndex(node) < 0 {
		sv.trees = slices.Delete(sv.trees, i, i+1)
	}
}

// findByUID finds a record of this service by uid: one lookup per node
// tree (nodes are few).
func (sv *svcState) findByUID(uid int64) (*user, int) {
	for _, t := range sv.trees {
		if e, ok := t.recs.Get(recEntry{uid: uid}); ok {
			i, _ := e.u.recByUID(uid)
			return e.u, i
		}
	}
	return nil, -1
}

func (sv *svcState) findUser(probe *user, email string) *user {
	probe.email = email
	e, _ := sv.users.Get(userEntry{key: emailKey(email), u: probe})
	probe.email = ""
	return e.u
}

// idemEntry is one remembered idempotent write. Immutable once stored.
type idemEntry struct {
	key    string
	hash   uint64
	ts     int64
	seq    uint64 // insertion order; ts is non-decreasing in seq
	result []byte // EncodeResult of the first answer
}

func lessIdemKey(a, b *idemEntry) bool { return a.key < b.key }
func lessIdemSeq(a, b *idemEntry) bool { return a.seq < b.seq }

// state is the whole replicated state. It is single-threaded: FSM keeps
// one private mutable state for the writer and publishes immutable copies
// (cloneForReaders) that readers share without a lock.
type state struct {
	lastTS        int64
	nextServiceID int64
	nextNodeID    int64
	nextUID       int64

	svcByName map[string]*svcState
	svcByID   map[int64]*svcState

	old *btree.BTreeG[oldEntry]

	idem      *btree.BTreeG[*idemEntry] // by key
	idemOrder *btree.BTreeG[*idemEntry] // by seq
	idemSeq   uint64

	// probe is a reusable lookup key for the Apply path only (readers run
	// concurrently and must build their own).
	probe user
}

func newState() *state {
	return &state{
		nextServiceID: 1,
		nextNodeID:    1,
		nextUID:       1,
		svcByName:     map[string]*svcState{},
		svcByID:       map[int64]*svcState{},
		old:           btree.NewG(btreeDegree, lessOld),
		idem:          btree.NewG(btreeDegree, lessIdemKey),
		idemOrder:     btree.NewG(btreeDegree, lessIdemSeq),
	}
}

// clone returns an independent copy: O(1) per tree (copy-on-write) and
// O(services + nodes) for the rest. Both s and the copy may be written
// afterwards without affecting each other.
func (s *state) clone() *state {
	c := s.cloneDomain()
	c.idem = s.idem.Clone()
	c.idemOrder = s.idemOrder.Clone()
	return c
}

// cloneForReaders is clone without the idempotency table, which no read
// serves: leaving it out (rather than cloning it) spares the writer
// copying its nodes on the next idempotent write. The result must only be
// read: it is a View's state.
func (s *state) cloneForReaders() *state {
	c := s.cloneDomain()
	c.idem, c.idemOrder = nil, nil
	return c
}

// cloneDomain copies everything but the idempotency trees, which the
// copy still shares with s until the caller replaces them.
func (s *state) cloneDomain() *state {
	c := *s
	c.probe = user{}
	c.svcByName = make(map[string]*svcState, len(s.svcByName))
	c.svcByID = make(map[int64]*svcState, len(s.svcByID))
	for id, sv := range s.svcByID {
		cp := sv.clone()
		c.svcByID[id] = cp
		c.svcByName[cp.Name] = cp
	}
	c.old = s.old.Clone()
	return &c
}

// servicesByID lists services in id order (deterministic iteration).
func (s *state) servicesByID() []*svcState {
	out := make([]*svcState, 0, len(s.svcByID))
	for _, sv := range s.svcByID {
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b *svcState) int { return cmpInt64(a.ID, b.ID) })
	return out
}

// publish replaces old with nu (either may be nil; both are the same
// (service, email)) and keeps every index and counter in step. Records are
// matched by uid; a record's node never changes.
func (s *state) publish(old, nu *user) {
	var sv *svcState
	var oldRecs, newRecs []rec
	if old != nil {
		sv, oldRecs = s.svcByID[old.svc], old.recs
	}
	if nu != nil {
		sv, newRecs = s.svcByID[nu.svc], nu.recs
		// Same key as old: this swaps the pointer in place.
		sv.users.ReplaceOrInsert(userEntry{key: emailKey(nu.email), u: nu})
	} else {
		sv.users.Delete(userEntry{key: emailKey(old.email), u: old})
	}
	i, j := 0, 0
	for i < len(oldRecs) || j < len(newRecs) {
		switch {
		case j >= len(newRecs) || (i < len(oldRecs) && oldRecs[i].uid < newRecs[j].uid):
			r := &oldRecs[i]
			sv.tree(r.nodeID).Delete(recEntry{uid: r.uid})
			sv.dropTreeIfGone(r.nodeID)
			if r.live() {
				sv.live--
			} else {
				s.old.Delete(oldEntry{svc: sv.ID, replacedAt: r.replacedAt, uid: r.uid})
			}
			sv.stored--
			i++
		case i >= len(oldRecs) || newRecs[j].uid < oldRecs[i].uid:
			r := &newRecs[j]
			sv.treeFor(r.nodeID).ReplaceOrInsert(recEntry{uid: r.uid, u: nu})
			if r.live() {
				sv.live++
			} else {
				s.old.ReplaceOrInsert(oldEntry{svc: sv.ID, replacedAt: r.replacedAt, uid: r.uid, node: r.nodeID})
			}
			sv.stored++
			j++
		default:
			o, n := &oldRecs[i], &newRecs[j]
			sv.tree(n.nodeID).ReplaceOrInsert(recEntry{uid: n.uid, u: nu})
			if o.replacedAt != n.replacedAt {
				if o.live() {
					sv.live--
				} else {
					s.old.Delete(oldEntry{svc: sv.ID, replacedAt: o.replacedAt, uid: o.uid})
				}
				if n.live() {
					sv.live++
				} else {
					s.old.ReplaceOrInsert(oldEntry{svc: sv.ID, replacedAt: n.replacedAt, uid: n.uid, node: n.nodeID})
				}
			}
			i++
			j++
		}
	}
}
