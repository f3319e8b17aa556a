package fsm

import (
	"slices"
	"strconv"
	"strings"
)

// Import: OpImport upserts services, nodes and user records that come from
// another system (a token-server MySQL database) keeping their ids, uids
// and times, which no other command can do. It is the one way to bring a
// user's uid, and with it the storage URL {node}/1.5/{uid}, across.
//
// Rules (docs/operations.md "Migrating from a token-server database"):
//   - services are matched by name, nodes by (service, URL), records by uid;
//     a match with a different id (or a uid of another user) is a conflict;
//   - an imported record replaces the stored record with its uid field by
//     field; nothing is deleted;
//   - every node's current_load of the touched services is recomputed from
//     the stored records (invariant 3); capacity, available, downed and
//     backoff are taken as given;
//   - the next service id, node id and uid go above every imported one, and
//     the applied time goes up to the newest imported created_at, so that
//     records this state machine creates later have higher uids and no
//     lower created_at than any imported one (invariant 2);
//   - OpImportKeepTimes keeps every field exactly as given, even when
//     created_at goes down as uids grow (the source's clock or uid order
//     allowed it) or a user's generation or keys_changed_at goes down from
//     an older record to a newer one: sign-ins compare with the current
//     record only, as Mozilla's token server does. OpImport, the first
//     version, refuses both; it stays as it was so that old logs replay to
//     the state they made;
//   - the batch is checked as a whole: a user with a live record that is
//     not its current one (and, for OpImport, the orders above) is a bad
//     request naming the uid, and nothing changes. The importer applies the repair
//     rules before sending (cmd/internal/mysqlimport).
//
// Re-importing an unchanged batch changes nothing (the counts say
// unchanged).

// MaxImportBatch bounds one OpImport (records + nodes + services), so that a
// log entry stays a few hundred KB.
const MaxImportBatch = 10_000

// ImportBatch is the payload of OpImport. Order within each list is kept.
type ImportBatch struct {
	Services []ImportService
	Nodes    []ImportNode
	Records  []ImportRecord
}

// ImportService creates a service with this id or updates its pattern.
// release_rate, allow_new_users and spread of a created service take their
// defaults (0.1, true, 1); an existing service keeps its own.
type ImportService struct {
	ID      int64
	Name    string
	Pattern string
}

// ImportNode creates or updates a node. current_load is not taken: it is
// recomputed from the records.
type ImportNode struct {
	ID        int64
	Service   string
	URL       string
	Capacity  int64
	Available int64
	Downed    bool
	Backoff   bool
}

// ImportRecord is one user record. NodeID may name a node that does not
// exist (a removed node): the record then reads as having no node, as
// docs/spec.md §1 allows. KeysChangedAt and ReplacedAt are Null when absent.
type ImportRecord struct {
	UID           int64
	Service       string
	Email         string
	NodeID        int64
	Generation    int64
	KeysChangedAt int64
	ClientState   string
	CreatedAt     int64
	ReplacedAt    int64
}

// ImportCount counts one kind of imported object by outcome.
type ImportCount struct {
	Created, Updated, Unchanged int64
}

// ImportCounts is OpImport's answer.
type ImportCounts struct {
	Services, Nodes, Records ImportCount
}

func (c *ImportCount) add(created, changed bool) {
	switch {
	case created:
		c.Created++
	case changed:
		c.Updated++
	default:
		c.Unchanged++
	}
}

// importBatch applies cmd.Import to a copy-on-write clone of the state and
// swaps it in only when the whole batch is valid, so a failing batch
// changes nothing.
func (s *state) importBatch(cmd *Command) Result {
	b := cmd.Import
	if b == nil {
		return fail(badRequest("import", "import batch is missing"))
	}
	if n := len(b.Services) + len(b.Nodes) + len(b.Records); n > MaxImportBatch {
		return fail(badRequest("import", "batch of %d items exceeds %d", n, MaxImportBatch))
	}
	if e := checkImportDuplicates(b); e != nil {
		return fail(e)
	}
	c := s.clone()
	counts, touched, maxCreated, e := c.importItems(b)
	if e != nil {
		return fail(e)
	}
	if e := c.checkImportedUsers(b, cmd.Op == OpImportKeepTimes); e != nil {
		return fail(e)
	}
	c.recountLoads(touched)
	c.lastTS = max(c.lastTS, maxCreated)
	*s = *c
	return Result{Import: &counts}
}

// importItems imports the batch's services, nodes and records, in that
// order, into s (the caller's clone). It returns the counts, the ids of
// the services whose nodes or records changed (in first-touched order, so
// recounting is deterministic) and the newest created_at of the records
// (-1 when there are none).
func (s *state) importItems(b *ImportBatch) (counts ImportCounts, touched []int64, maxCreated int64, e *Error) {
	seenService := map[int64]bool{}
	touch := func(id int64) {
		if !seenService[id] {
			seenService[id] = true
			touched = append(touched, id)
		}
	}
	for i := range b.Services {
		if e := s.importService(&b.Services[i], &counts.Services); e != nil {
			return counts, nil, 0, e
		}
	}
	for i := range b.Nodes {
		sid, e := s.importNode(&b.Nodes[i], &counts.Nodes)
		if e != nil {
			return counts, nil, 0, e
		}
		touch(sid)
	}
	seen := make(map[int64]bool, len(b.Records))
	maxCreated = -1
	for i := range b.Records {
		r := &b.Records[i]
		if seen[r.UID] {
			return counts, nil, 0, badRequest("uid", "uid %d appears twice in the batch", r.UID)
		}
		seen[r.UID] = true
		sid, e := s.importRecord(r, &counts.Records)
		if e != nil {
			return counts, nil, 0, e
		}
		touch(sid)
		maxCreated = max(maxCreated, r.CreatedAt)
	}
	return counts, touched, maxCreated, nil
}

// checkImportedUsers runs the whole-batch checks, on the final state of
// every touched user and uid: only the newest record may be live and,
// unless the batch keeps the source's times, generation and
// keys_changed_at never go down and uids follow creation order.
func (s *state) checkImportedUsers(b *ImportBatch, keepTimes bool) *Error {
	for i := range b.Records {
		r := &b.Records[i]
		sv := s.svcByName[r.Service]
		u, _ := sv.findByUID(r.UID)
		for j := range u.recs {
			cur := &u.recs[j]
			if cur.live() && j+1 < len(u.recs) {
				return badRequest("replaced_at", "uid %d of %q is live but not the user's newest record", cur.uid, u.email)
			}
			if j > 0 && !keepTimes {
				prev := &u.recs[j-1]
				if cur.generation < prev.generation || nullAsLow(cur.keysChangedAt) < nullAsLow(prev.keysChangedAt) {
					return badRequest("generation", "uid %d of %q has a lower generation or keys_changed_at than the older uid %d (invariant 6)", cur.uid, u.email, prev.uid)
				}
			}
		}
		if !keepTimes {
			if e := s.checkCreatedOrder(r.UID, r.CreatedAt); e != nil {
				return e
			}
		}
	}
	return nil
}

// recountLoads sets every node's current_load of the given services to
// the records stored on it (invariant 3): an import never takes a load
// from the source, and its records may have moved users between nodes.
func (s *state) recountLoads(services []int64) {
	for _, id := range services {
		sv := s.svcByID[id]
		for k := range sv.nodes {
			nd := &sv.nodes[k]
			nd.CurrentLoad = 0
			if t := sv.tree(nd.ID); t != nil {
				nd.CurrentLoad = int64(t.Len())
			}
		}
	}
}

// checkImportDuplicates rejects a batch that names one service or node
// twice: which of the two should win would be a guess.
func checkImportDuplicates(b *ImportBatch) *Error {
	names, ids := map[string]bool{}, map[int64]bool{}
	for _, sv := range b.Services {
		if names[sv.Name] || ids[sv.ID] {
			return badRequest("service", "service %q (id %d) appears twice in the batch", sv.Name, sv.ID)
		}
		names[sv.Name], ids[sv.ID] = true, true
	}
	urls, nodeIDs := map[[2]string]bool{}, map[int64]bool{}
	for _, n := range b.Nodes {
		key := [2]string{n.Service, n.URL}
		if urls[key] || nodeIDs[n.ID] {
			return badRequest("node", "node %q (id %d) appears twice in the batch", n.URL, n.ID)
		}
		urls[key], nodeIDs[n.ID] = true, true
	}
	return nil
}

func (s *state) importService(in *ImportService, count *ImportCount) *Error {
	if e := firstError(checkServiceName(in.Name), checkPattern(in.Pattern)); e != nil {
		return e
	}
	if in.ID < 1 {
		return badRequest("id", "service %q: id must be >= 1", in.Name)
	}
	if sv := s.svcByName[in.Name]; sv != nil {
		if sv.ID != in.ID {
			return conflict("service", "service %q exists with id %d, not %d", in.Name, sv.ID, in.ID)
		}
		changed := sv.Pattern != in.Pattern
		sv.Pattern = strings.Clone(in.Pattern)
		count.add(false, changed)
		return nil
	}
	if other := s.svcByID[in.ID]; other != nil {
		return conflict("service", "service id %d belongs to %q, not %q", in.ID, other.Name, in.Name)
	}
	defaultRate, _ := parseRate("0.1")
	sv := newSvcState(Service{ID: in.ID, Name: strings.Clone(in.Name), Pattern: strings.Clone(in.Pattern),
		ReleaseRate: "0.1", AllowNewUsers: true, Spread: 1}, defaultRate)
	s.svcByName[sv.Name] = sv
	s.svcByID[sv.ID] = sv
	s.nextServiceID = max(s.nextServiceID, in.ID+1)
	count.add(true, false)
	return nil
}

// nodeOwner returns the service holding node id (as a node or as the tree
// of a removed node's records), or nil.
func (s *state) nodeOwner(id int64, wantNode bool) *svcState {
	for _, sv := range s.servicesByID() {
		if sv.nodeIndex(id) >= 0 {
			return sv
		}
		if !wantNode && sv.tree(id) != nil {
			return sv
		}
	}
	return nil
}

func (s *state) importNode(in *ImportNode, count *ImportCount) (int64, *Error) {
	sv, e := s.service(in.Service)
	if e != nil {
		return 0, e
	}
	if e := firstError(checkNodeURL("node", in.URL), checkNonNegative("capacity", SomeInt64(in.Capacity)),
		checkNonNegative("available", SomeInt64(in.Available))); e != nil {
		return 0, e
	}
	if in.ID < 1 {
		return 0, badRequest("id", "node %q: id must be >= 1", in.URL)
	}
	if idx := sv.nodeIndexByURL(in.URL); idx >= 0 {
		nd := &sv.nodes[idx]
		if nd.ID != in.ID {
			return 0, conflict("node", "node %q of %q exists with id %d, not %d", in.URL, sv.Name, nd.ID, in.ID)
		}
		changed := nd.Capacity != in.Capacity || nd.Available != in.Available || nd.Downed != in.Downed || nd.Backoff != in.Backoff
		nd.Capacity, nd.Available, nd.Downed, nd.Backoff = in.Capacity, in.Available, in.Downed, in.Backoff
		count.add(false, changed)
		return sv.ID, nil
	}
	if owner := s.nodeOwner(in.ID, false); owner != nil && (owner != sv || sv.nodeIndex(in.ID) >= 0) {
		return 0, conflict("node", "node id %d is already used in service %q", in.ID, owner.Name)
	}
	nd := Node{ID: in.ID, Service: sv.Name, URL: strings.Clone(in.URL), Capacity: in.Capacity,
		Available: in.Available, Downed: in.Downed, Backoff: in.Backoff}
	i, _ := slices.BinarySearchFunc(sv.nodes, in.ID, func(n Node, id int64) int { return cmpInt64(n.ID, id) })
	sv.nodes = slices.Insert(sv.nodes, i, nd)
	s.nextNodeID = max(s.nextNodeID, in.ID+1)
	count.add(true, false)
	return sv.ID, nil
}

func (s *state) importRecord(in *ImportRecord, count *ImportCount) (int64, *Error) {
	sv, e := s.service(in.Service)
	if e != nil {
		return 0, e
	}
	if e := firstError(checkEmail(in.Email), checkClientState(SomeString(in.ClientState))); e != nil {
		e.Msg = "uid " + strconv.FormatInt(in.UID, 10) + ": " + e.Msg
		return 0, e
	}
	switch {
	case in.UID < 1:
		return 0, badRequest("uid", "uid %d must be >= 1", in.UID)
	case in.NodeID < 1:
		return 0, badRequest("node_id", "uid %d: node id %d must be >= 1", in.UID, in.NodeID)
	case in.Generation < 0:
		return 0, badRequest("generation", "uid %d: negative generation", in.UID)
	case in.KeysChangedAt != Null && in.KeysChangedAt < 0:
		return 0, badRequest("keys_changed_at", "uid %d: negative keys_changed_at", in.UID)
	case in.CreatedAt < 0:
		return 0, badRequest("created_at", "uid %d: negative created_at", in.UID)
	case in.ReplacedAt != Null && in.ReplacedAt < 0:
		return 0, badRequest("replaced_at", "uid %d: negative replaced_at", in.UID)
	}
	if owner := s.nodeOwner(in.NodeID, true); owner != nil && owner != sv {
		return 0, conflict("node_id", "uid %d: node %d belongs to service %q", in.UID, in.NodeID, owner.Name)
	}
	for _, other := range s.servicesByID() {
		if other == sv {
			continue
		}
		if u, _ := other.findByUID(in.UID); u != nil {
			return 0, conflict("uid", "uid %d belongs to %q in service %q", in.UID, u.email, other.Name)
		}
	}
	r := rec{uid: in.UID, nodeID: in.NodeID, generation: in.Generation, keysChangedAt: in.KeysChangedAt,
		createdAt: in.CreatedAt, replacedAt: in.ReplacedAt, clientState: in.ClientState}
	if old, i := sv.findByUID(in.UID); old != nil {
		if old.email != in.Email {
			return 0, conflict("uid", "uid %d belongs to %q, not %q", in.UID, old.email, in.Email)
		}
		cur := old.recs[i]
		if cur == r {
			count.add(false, false)
			return sv.ID, nil
		}
		r.clientState = sharedClientState(cur.clientState, in.ClientState)
		recs := old.copyRecs(0)
		recs[i] = r
		nu := old.withRecs(recs)
		if cur.nodeID != r.nodeID {
			// publish matches records by uid on their (unchanging) node:
			// a moved record is taken out and put back.
			s.publish(old, nil)
			s.publish(nil, nu)
		} else {
			s.publish(old, nu)
		}
		count.add(false, true)
	} else {
		r.clientState = strings.Clone(in.ClientState)
		old := sv.findUser(&s.probe, in.Email)
		if old == nil {
			s.publish(nil, newUser(sv.ID, strings.Clone(in.Email), r))
		} else {
			recs := old.copyRecs(1)
			i, _ := old.recByUID(in.UID)
			recs = slices.Insert(recs, i, r)
			s.publish(old, old.withRecs(recs))
		}
		count.add(true, false)
	}
	s.nextUID = max(s.nextUID, in.UID+1)
	s.nextNodeID = max(s.nextNodeID, in.NodeID+1)
	return sv.ID, nil
}

// checkCreatedOrder checks created_at against the records with the next
// lower and next higher uid in any service: the rule of OpImport, kept so
// that a log holding an OpImport replays as it applied when written
// (OpImportKeepTimes drops it). Checking every
// imported uid against its neighbours in the final state covers every
// adjacent pair that involves an imported record.
func (s *state) checkCreatedOrder(uid, createdAt int64) *Error {
	var lower, higher *rec
	for _, sv := range s.servicesByID() {
		for _, t := range sv.trees {
			t.recs.DescendLessOrEqual(recEntry{uid: uid - 1}, func(e recEntry) bool {
				if i, ok := e.u.recByUID(e.uid); ok && (lower == nil || e.uid > lower.uid) {
					lower = &e.u.recs[i]
				}
				return false
			})
			t.recs.AscendGreaterOrEqual(recEntry{uid: uid + 1}, func(e recEntry) bool {
				if i, ok := e.u.recByUID(e.uid); ok && (higher == nil || e.uid < higher.uid) {
					higher = &e.u.recs[i]
				}
				return false
			})
		}
	}
	if lower != nil && lower.createdAt > createdAt {
		return badRequest("created_at", "uid %d: created_at %d is before created_at %d of the lower uid %d", uid, createdAt, lower.createdAt, lower.uid)
	}
	if higher != nil && higher.createdAt < createdAt {
		return badRequest("created_at", "uid %d: created_at %d is after created_at %d of the higher uid %d", uid, createdAt, higher.createdAt, higher.uid)
	}
	return nil
}

// nullAsLow orders a nullable value with null below every value.
func nullAsLow(v int64) int64 {
	if v == Null {
		return -1
	}
	return v
}

// ---- codec (command and result format 2) ----

func encodeImportBatch(e *encoder, b *ImportBatch) {
	encodeList(e, b.Services)
	encodeList(e, b.Nodes)
	encodeList(e, b.Records)
}

func decodeImportBatch(d *decoder) *ImportBatch {
	b := &ImportBatch{}
	b.Services = decodeList[ImportService](d, "services")
	b.Nodes = decodeList[ImportNode](d, "nodes")
	b.Records = decodeList[ImportRecord](d, "records")
	return b
}

// importServiceFields and importNodeFields point at the fields of an
// imported service or node in encoding order (see serviceFields); a node's
// downed and backoff follow as one flags byte.
func importServiceFields(s *ImportService) []any { return []any{&s.ID, &s.Name, &s.Pattern} }

func importNodeFields(n *ImportNode) []any {
	return []any{&n.ID, &n.Service, &n.URL, &n.Capacity, &n.Available}
}

func encodeImportNode(e *encoder, n *ImportNode) {
	e.values(importNodeFields(n))
	e.b = append(e.b, nodeFlags(n.Downed, n.Backoff))
}

func decodeImportNode(d *decoder) ImportNode {
	var n ImportNode
	d.values(importNodeFields(&n))
	flags := d.byte1()
	if flags&^(nodeFlagDowned|nodeFlagBackoff) != 0 {
		d.fail("bad import node flags %#x", flags)
	}
	n.Downed, n.Backoff = flagsOfNode(flags)
	return n
}

// importRecordFields points at the fields of an imported record in
// encoding order. They follow a flags byte, the snapshot's record flags
// (recordFlags), which says whether the nullable keys_changed_at and
// replaced_at are present.
func importRecordFields(r *ImportRecord, flags byte) []any {
	return []any{&r.UID, &r.Service, &r.Email, &r.NodeID, &r.Generation,
		nullableField{&r.KeysChangedAt, flags&recFlagKeysChangedAt != 0},
		&r.ClientState, &r.CreatedAt, nullableField{&r.ReplacedAt, flags&recFlagReplaced != 0}}
}

func encodeImportRecord(e *encoder, r *ImportRecord) {
	flags := recordFlags(r.KeysChangedAt, r.ReplacedAt)
	e.b = append(e.b, flags)
	e.values(importRecordFields(r, flags))
}

func decodeImportRecord(d *decoder) ImportRecord {
	flags := d.byte1()
	if flags&^(recFlagKeysChangedAt|recFlagReplaced) != 0 {
		d.fail("bad import record flags %#x", flags)
	}
	var r ImportRecord
	d.values(importRecordFields(&r, flags))
	return r
}

func encodeImportCounts(e *encoder, c *ImportCounts) {
	for _, k := range []*ImportCount{&c.Services, &c.Nodes, &c.Records} {
		e.varint(k.Created)
		e.varint(k.Updated)
		e.varint(k.Unchanged)
	}
}

func decodeImportCounts(d *decoder) *ImportCounts {
	c := &ImportCounts{}
	for _, k := range []*ImportCount{&c.Services, &c.Nodes, &c.Records} {
		k.Created, k.Updated, k.Unchanged = d.varint(), d.varint(), d.varint()
	}
	return c
}
