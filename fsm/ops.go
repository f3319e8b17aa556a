package fsm

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Every operation follows one discipline: run every check that can fail,
// then mutate. A command that returns an error must leave the domain state
// exactly as it was (the property tests fork the state before each command
// and compare).

func (s *state) dispatch(cmd *Command, now int64, opts *Options) Result {
	switch cmd.Op {
	case OpNoop:
		return Result{}
	case OpPutService:
		return s.putService(cmd)
	case OpDeleteService:
		return s.deleteService(cmd)
	case OpAddNode:
		return s.addNode(cmd)
	case OpUpdateNode:
		return s.updateNode(cmd)
	case OpUnassignNode:
		return s.unassignNode(cmd, now, false)
	case OpRemoveNode:
		return s.unassignNode(cmd, now, true)
	case OpAllocate:
		return s.allocate(cmd, now, opts)
	case OpUpdateUser:
		return s.updateUser(cmd, now, opts)
	case OpLogin:
		return s.login(cmd, now, opts)
	case OpRetire:
		return s.retire(cmd, now)
	case OpReplace:
		return s.replace(cmd, now)
	case OpDeleteRecord:
		return s.deleteRecord(cmd)
	case OpAccountEvent:
		return s.accountEvent(cmd, now)
	case OpImport, OpImportKeepTimes:
		return s.importBatch(cmd)
	}
	return Result{Err: badRequest("op", "unknown op %d", cmd.Op)}
}

func fail(e *Error) Result { return Result{Err: e} }

// valueOr is the value a command gives for an optional field (an OptInt64,
// OptString or OptBool) when it carries one, else current.
func valueOr[T any, O ~struct {
	Set bool
	V   T
}](o O, current T) T {
	if opt := (struct {
		Set bool
		V   T
	})(o); opt.Set {
		return opt.V
	}
	return current
}

func (s *state) service(name string) (*svcState, *Error) {
	sv := s.svcByName[name]
	if sv == nil {
		return nil, notFound("service", "unknown service %q", name)
	}
	return sv, nil
}

// ---- services ----

func (s *state) putService(cmd *Command) Result {
	if e := checkServiceName(cmd.Service); e != nil {
		return fail(e)
	}
	var rateNano int64
	if cmd.ReleaseRate.Set {
		var e *Error
		if rateNano, e = checkRate(cmd.ReleaseRate.V); e != nil {
			return fail(e)
		}
	}
	if cmd.Pattern.Set {
		if e := checkPattern(cmd.Pattern.V); e != nil {
			return fail(e)
		}
	}
	if cmd.Spread.Set && cmd.Spread.V < 1 {
		return fail(badRequest("spread", "spread must be >= 1"))
	}
	sv := s.svcByName[cmd.Service]
	created := sv == nil
	if created {
		if !cmd.Pattern.Set {
			return fail(badRequest("pattern", "pattern is required to create a service"))
		}
		defaultRate, _ := parseRate("0.1")
		sv = newSvcState(Service{
			ID:            s.nextServiceID,
			Name:          strings.Clone(cmd.Service),
			ReleaseRate:   "0.1",
			AllowNewUsers: true,
			Spread:        1,
		}, defaultRate)
		s.nextServiceID++
		s.svcByName[sv.Name] = sv
		s.svcByID[sv.ID] = sv
	}
	if cmd.Pattern.Set {
		sv.Pattern = strings.Clone(cmd.Pattern.V)
	}
	if cmd.ReleaseRate.Set {
		sv.ReleaseRate = strings.Clone(cmd.ReleaseRate.V)
		sv.rateNano = rateNano
	}
	sv.AllowNewUsers = valueOr(cmd.AllowNewUsers, sv.AllowNewUsers)
	sv.Spread = valueOr(cmd.Spread, sv.Spread)
	out := sv.Service
	return Result{Created: created, Service: &out}
}

func (s *state) deleteService(cmd *Command) Result {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return fail(e)
	}
	if len(sv.nodes) > 0 || sv.stored > 0 {
		return fail(conflict("service", "service %q still has %d nodes and %d records", sv.Name, len(sv.nodes), sv.stored))
	}
	delete(s.svcByName, sv.Name)
	delete(s.svcByID, sv.ID)
	out := sv.Service
	return Result{Service: &out}
}

// ---- nodes ----

func (s *state) addNode(cmd *Command) Result {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return fail(e)
	}
	if !cmd.Capacity.Set {
		return fail(badRequest("capacity", "capacity is required"))
	}
	if e := firstError(
		checkNodeURL("node", cmd.NodeURL),
		checkNonNegative("capacity", cmd.Capacity),
		checkNonNegative("available", cmd.Available),
		checkNonNegative("current_load", cmd.CurrentLoad),
	); e != nil {
		return fail(e)
	}
	if sv.nodeIndexByURL(cmd.NodeURL) >= 0 {
		return fail(conflict("node", "node %q already exists in service %q", cmd.NodeURL, sv.Name))
	}
	nd := Node{
		ID:          s.nextNodeID,
		Service:     sv.Name,
		URL:         strings.Clone(cmd.NodeURL),
		Capacity:    cmd.Capacity.V,
		Available:   valueOr(cmd.Available, ceilRate(cmd.Capacity.V, sv.rateNano)),
		CurrentLoad: cmd.CurrentLoad.V,
		Downed:      cmd.Downed.V,
		Backoff:     cmd.Backoff.V,
	}
	s.nextNodeID++
	// Ids only grow, so appending keeps sv.nodes sorted by id. clone
	// deep-copies sv.nodes, so appending in place cannot leak into a
	// snapshot.
	sv.nodes = append(sv.nodes, nd)
	return Result{Created: true, Node: &nd}
}

func (s *state) serviceNode(cmd *Command) (*svcState, int, *Error) {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return nil, -1, e
	}
	idx := sv.nodeIndex(cmd.NodeID)
	if idx < 0 {
		return nil, -1, notFound("node", "no node %d in service %q", cmd.NodeID, sv.Name)
	}
	return sv, idx, nil
}

// nodeUpdateRejects rejects the fields a node update must not carry
// (docs/spec.md §4: "any other field is a bad request"), naming the first
// one it carries in this order.
func nodeUpdateRejects(cmd *Command) *Error {
	rejected := []struct {
		carried bool
		field   string
	}{
		{cmd.NodeURL != "" || cmd.Node.Set, "node"},
		{cmd.Email != "", "email"},
		{cmd.Pattern.Set, "pattern"},
		{cmd.ReleaseRate.Set, "release_rate"},
		{cmd.AllowNewUsers.Set, "allow_new_users"},
		{cmd.Spread.Set, "spread"},
		{cmd.Generation.Set, "generation"},
		{cmd.KeysChangedAt.Set, "keys_changed_at"},
		{cmd.ClientState.Set, "client_state"},
		{cmd.At.Set, "at"},
	}
	for _, r := range rejected {
		if r.carried {
			return badRequest(r.field, "only capacity, available, current_load, downed and backoff of a node can be updated")
		}
	}
	return nil
}

func (s *state) updateNode(cmd *Command) Result {
	sv, idx, e := s.serviceNode(cmd)
	if e != nil {
		return fail(e)
	}
	if e := firstError(
		nodeUpdateRejects(cmd),
		checkNonNegative("capacity", cmd.Capacity),
		checkNonNegative("available", cmd.Available),
		checkNonNegative("current_load", cmd.CurrentLoad),
	); e != nil {
		return fail(e)
	}
	nd := &sv.nodes[idx]
	nd.Capacity = valueOr(cmd.Capacity, nd.Capacity)
	nd.Available = valueOr(cmd.Available, nd.Available)
	nd.CurrentLoad = valueOr(cmd.CurrentLoad, nd.CurrentLoad)
	nd.Downed = valueOr(cmd.Downed, nd.Downed)
	nd.Backoff = valueOr(cmd.Backoff, nd.Backoff)
	out := *nd
	return Result{Node: &out}
}

// unassignNode marks every record on the node replaced (already replaced
// ones too, as the SQL original did) and, for remove, deletes the node
// first. Count is the number of records on the node. Cost: O(k log n) for
// k records on the node.
func (s *state) unassignNode(cmd *Command, now int64, remove bool) Result {
	sv, idx, e := s.serviceNode(cmd)
	if e != nil {
		return fail(e)
	}
	nodeID := sv.nodes[idx].ID
	if remove {
		sv.nodes = slices.Delete(sv.nodes, idx, idx+1)
	}
	// Collect first: the tree must not change while it is iterated.
	var uids []int64
	if t := sv.tree(nodeID); t != nil {
		uids = make([]int64, 0, t.Len())
		t.Ascend(func(e recEntry) bool {
			uids = append(uids, e.uid)
			return true
		})
	}
	for _, uid := range uids {
		e, _ := sv.tree(nodeID).Get(recEntry{uid: uid})
		u := e.u
		i, _ := u.recByUID(uid)
		if u.recs[i].replacedAt == now {
			continue
		}
		recs := u.copyRecs(0)
		recs[i].replacedAt = now
		s.publish(u, u.withRecs(recs))
	}
	sv.dropTreeIfGone(nodeID)
	return Result{Count: int64(len(uids))}
}

// ---- users ----

// placement says how a new record's node is chosen and charged.
type placement int

const (
	placeChoose   placement = iota // docs/spec.md §3: load+1, available−1
	placeExplicit                  // allocate with a named node: load+1, available−1, capacity and flags ignored
	placeSameNode                  // update / key change: load+1 only
)

// addRecord makes r the new current record of u (nil: a new user with
// email). A live current record is replaced at now. On error nothing has
// changed.
func (s *state) addRecord(sv *svcState, u *user, email string, r rec, nodeIdx int, how placement, cmd *Command, now int64, opts *Options) (*user, *Error) {
	var released []int64
	if how == placeChoose {
		idx, rel, e := chooseNode(sv, cmd.Seed)
		if e != nil {
			return nil, e
		}
		nodeIdx, released = idx, rel
	}
	switch how {
	case placeChoose:
		commitChoice(sv, nodeIdx, released)
	case placeExplicit:
		takeSlot(&sv.nodes[nodeIdx])
	case placeSameNode:
		addLoad(&sv.nodes[nodeIdx])
	}
	r.uid = s.nextUID
	s.nextUID++
	r.nodeID = sv.nodes[nodeIdx].ID
	r.createdAt = now
	r.replacedAt = Null
	var nu *user
	if u == nil {
		nu = newUser(sv.ID, strings.Clone(email), r)
	} else {
		recs := u.copyRecs(1)
		if cur := &recs[len(recs)-1]; cur.live() {
			cur.replacedAt = now
		}
		nu = u.withRecs(append(recs, r))
	}
	s.publish(u, nu)
	return nu, nil
}

// isOldClientState: cs is the client state of an older record and differs
// from the current one.
func (u *user) isOldClientState(cs string) bool {
	cur := u.current().clientState
	if cs == cur {
		return false
	}
	for i := 0; i < len(u.recs)-1; i++ {
		if u.recs[i].clientState == cs {
			return true
		}
	}
	return false
}

// sharedClientState returns the stored string when equal, so a user's
// records share one backing array, and a private copy otherwise (the
// command's string may pin a larger buffer).
func sharedClientState(stored, given string) string {
	if given == stored {
		return stored
	}
	return strings.Clone(given)
}

func maxNullable(stored int64, given OptInt64) int64 {
	if !given.Set {
		return stored
	}
	if stored == Null {
		return given.V
	}
	return max(stored, given.V)
}

// userCommandService resolves the service of an allocate, update or login
// and validates the fields those share.
func (s *state) userCommandService(cmd *Command) (*svcState, *Error) {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return nil, e
	}
	e = firstError(
		checkEmail(cmd.Email),
		checkNonNegative("generation", cmd.Generation),
		checkNonNegative("keys_changed_at", cmd.KeysChangedAt),
		checkClientState(cmd.ClientState),
	)
	if e == nil && cmd.Node.Set {
		e = checkNodeURL("node", cmd.Node.V)
	}
	if e != nil {
		return nil, e
	}
	return sv, nil
}

// namedNode resolves an explicitly given node URL in sv, or -1 when none
// was given.
func namedNode(sv *svcState, cmd *Command) (int, *Error) {
	if !cmd.Node.Set {
		return -1, nil
	}
	idx := sv.nodeIndexByURL(cmd.Node.V)
	if idx < 0 {
		return -1, notFound("node", "no node %q in service %q", cmd.Node.V, sv.Name)
	}
	return idx, nil
}

func (s *state) allocate(cmd *Command, now int64, opts *Options) Result {
	sv, e := s.userCommandService(cmd)
	if e != nil {
		return fail(e)
	}
	named, e := namedNode(sv, cmd)
	if e != nil {
		return fail(e)
	}
	u := sv.findUser(&s.probe, cmd.Email)
	if u != nil && (u.current().live() || u.retired()) {
		return Result{User: s.userView(sv, u)}
	}
	var r rec
	if u == nil {
		r = rec{generation: cmd.Generation.V, keysChangedAt: Null, clientState: strings.Clone(cmd.ClientState.V)}
		if cmd.KeysChangedAt.Set {
			r.keysChangedAt = cmd.KeysChangedAt.V
		}
	} else {
		// Re-allocation after unassign / remove / replace carries the
		// stored fields, not the given ones (docs/spec.md §4).
		cur := u.current()
		r = rec{generation: cur.generation, keysChangedAt: cur.keysChangedAt, clientState: cur.clientState}
	}
	how := placeChoose
	if named >= 0 {
		how = placeExplicit
	}
	nu, e := s.addRecord(sv, u, cmd.Email, r, named, how, cmd, now, opts)
	if e != nil {
		return fail(e)
	}
	return Result{Created: true, User: s.userView(sv, nu)}
}

// placeOnCurrentNode picks how a key change places its new record: on the
// current node while it exists, else by §3.
func (s *state) placeOnCurrentNode(sv *svcState, cur *rec) (int, placement) {
	if idx := sv.nodeIndex(cur.nodeID); idx >= 0 {
		return idx, placeSameNode
	}
	return -1, placeChoose
}

func (s *state) updateUser(cmd *Command, now int64, opts *Options) Result {
	sv, e := s.userCommandService(cmd)
	if e != nil {
		return fail(e)
	}
	u := sv.findUser(&s.probe, cmd.Email)
	if u == nil {
		return fail(notFound("email", "unknown user %q in service %q", cmd.Email, sv.Name))
	}
	named, e := namedNode(sv, cmd)
	if e != nil {
		return fail(e)
	}
	// A retired user is never re-allocated and its generation is already
	// the maximum: an update cannot change it (decision documented in
	// DESIGN.md; docs/spec.md §4 leaves it open).
	if u.retired() {
		return Result{User: s.userView(sv, u)}
	}
	cur := u.current()
	gen := max(cur.generation, cmd.Generation.V)
	kca := maxNullable(cur.keysChangedAt, cmd.KeysChangedAt)
	newState := cmd.ClientState.Set && cmd.ClientState.V != cur.clientState
	if newState && u.isOldClientState(cmd.ClientState.V) {
		return fail(&Error{Status: StatusInvalidClientState, Field: "client_state", Reason: "stale value",
			Msg: "client_state was already used by an older record of this user"})
	}
	if !newState && !cmd.Node.Set {
		if gen == cur.generation && kca == cur.keysChangedAt {
			return Result{User: s.userView(sv, u)}
		}
		recs := u.copyRecs(0)
		recs[len(recs)-1].generation = gen
		recs[len(recs)-1].keysChangedAt = kca
		nu := u.withRecs(recs)
		s.publish(u, nu)
		return Result{User: s.userView(sv, nu)}
	}
	r := rec{generation: gen, keysChangedAt: kca, clientState: cur.clientState}
	if cmd.ClientState.Set {
		r.clientState = sharedClientState(cur.clientState, cmd.ClientState.V)
	}
	idx, how := named, placeSameNode
	if named < 0 {
		idx, how = s.placeOnCurrentNode(sv, cur)
	}
	nu, e := s.addRecord(sv, u, cmd.Email, r, idx, how, cmd, now, opts)
	if e != nil {
		return fail(e)
	}
	return Result{User: s.userView(sv, nu)}
}

func invalidClientState(reason string) *Error {
	return &Error{Status: StatusInvalidClientState, Field: "client_state", Reason: reason, Msg: "invalid client_state: " + reason}
}

func (s *state) login(cmd *Command, now int64, opts *Options) Result {
	d := s.decideLogin(cmd, &s.probe)
	switch {
	case d.err != nil:
		return fail(d.err)
	case d.unchanged:
		return s.loginResult(d.sv, d.u)
	}
	sv, u := d.sv, d.u
	if u == nil {
		nu, e := s.addRecord(sv, nil, cmd.Email, d.newRec, -1, placeChoose, cmd, now, opts)
		if e != nil {
			return fail(e)
		}
		return s.loginResult(sv, nu)
	}
	cur := u.current()
	if d.inPlace {
		recs := u.copyRecs(0)
		recs[len(recs)-1].generation = d.newRec.generation
		recs[len(recs)-1].keysChangedAt = d.newRec.keysChangedAt
		nu := u.withRecs(recs)
		s.publish(u, nu)
		return s.loginResult(sv, nu)
	}
	idx, how := -1, placeChoose
	if cur.live() {
		// Key change of a live user: stays on its node (docs/spec.md §4 update).
		idx, how = s.placeOnCurrentNode(sv, cur)
	}
	nu, e := s.addRecord(sv, u, cmd.Email, d.newRec, idx, how, cmd, now, opts)
	if e != nil {
		return fail(e)
	}
	return s.loginResult(sv, nu)
}

// loginDecision is what a login would do to the state it was decided on,
// found without changing it: fail (err), answer with the stored user
// unchanged, or change the user (newRec: a new record, or with inPlace
// the current record's generation and keys_changed_at).
type loginDecision struct {
	sv        *svcState
	u         *user // nil: a new user
	err       *Error
	unchanged bool
	inPlace   bool
	newRec    rec
}

// decideLogin runs every check of a login and works out its effect. probe
// is scratch space for the user lookup (the writer's own, or a fresh one
// on a shared read view).
func (s *state) decideLogin(cmd *Command, probe *user) loginDecision {
	sv, e := s.userCommandService(cmd)
	if e != nil {
		return loginDecision{err: e}
	}
	if cmd.Node.Set {
		return loginDecision{err: badRequest("node", "login does not take a node")}
	}
	// 0 counts as absent; absent is 0 below and every comparison that
	// could fail on it is guarded.
	given, keys := cmd.Generation.V, cmd.KeysChangedAt.V
	clientState := cmd.ClientState.V
	u := sv.findUser(probe, cmd.Email)
	if u == nil {
		if !sv.AllowNewUsers {
			return loginDecision{err: &Error{Status: StatusNewUsersDisabled, Msg: "service " + sv.Name + " does not accept new users"}}
		}
		r := rec{generation: given, keysChangedAt: Null, clientState: strings.Clone(clientState)}
		if keys != 0 {
			r.keysChangedAt = keys
		}
		return loginDecision{sv: sv, newRec: r}
	}
	if u.retired() {
		if given != 0 && given < MaxGeneration {
			return loginDecision{err: &Error{Status: StatusInvalidGeneration, Field: "generation", Msg: "the user is retired"}}
		}
		return loginDecision{sv: sv, u: u, unchanged: true}
	}
	cur := u.current()
	storedKeys := max(cur.keysChangedAt, 0) // Null compares as 0
	changed := clientState != cur.clientState
	var fails *Error
	switch {
	case keys != 0 && keys > storedKeys && given != 0 && given < keys:
		fails = &Error{Status: StatusInvalidKeysChangedAt, Field: "keys_changed_at", Msg: "keys_changed_at is above generation"}
	case cur.clientState != "" && clientState == "":
		fails = invalidClientState("empty string")
	case changed && u.isOldClientState(clientState):
		fails = invalidClientState("stale value")
	case changed && given != 0 && given <= cur.generation:
		fails = invalidClientState("new value with no generation change")
	case changed && keys != 0 && keys <= storedKeys:
		fails = invalidClientState("new value with no keys_changed_at change")
	case given != 0 && given < cur.generation:
		fails = &Error{Status: StatusInvalidGeneration, Field: "generation", Msg: "generation is below the stored one"}
	case storedKeys > 0 && (keys == 0 || keys < storedKeys):
		fails = &Error{Status: StatusInvalidKeysChangedAt, Field: "keys_changed_at", Msg: "keys_changed_at is absent or below the stored one"}
	}
	if fails != nil {
		return loginDecision{err: fails}
	}
	gen := cur.generation
	if given != 0 {
		gen = given
	} else if keys != 0 && keys > cur.generation && (cur.keysChangedAt == Null || keys > cur.keysChangedAt) {
		gen = keys
	}
	kca := cur.keysChangedAt
	if keys != 0 {
		kca = keys
	}
	d := loginDecision{sv: sv, u: u, newRec: rec{generation: gen, keysChangedAt: kca}}
	if !changed && cur.live() {
		d.unchanged = gen == cur.generation && kca == cur.keysChangedAt
		d.inPlace = !d.unchanged
		return d
	}
	d.newRec.clientState = sharedClientState(cur.clientState, clientState)
	return d
}

func (s *state) loginResult(sv *svcState, u *user) Result {
	view := s.userView(sv, u)
	return Result{User: view, FxaKid: FxaKid(view.KeysChangedAt, view.Generation, view.ClientState)}
}

// FxaKid is the token server's key id: keys_changed_at (or generation when
// it is absent or 0) as 13 zero-padded digits, "-", then the base64url (no
// padding) of the hex-decoded client state. A client state that is not
// valid hex (the data model allows [A-Za-z0-9._-]) is encoded from its raw
// bytes instead, so every stored user has a well-defined kid.
//
// It is the only implementation: login answers carry it (and idempotent
// repeats replay the stored answer, so the rule is part of the replicated
// results and must not change), and the token server's purge calls it for
// a listed record so that its DELETE names the same kid the user's tokens
// did.
func FxaKid(keysChangedAt, generation int64, clientState string) string {
	v := generation
	if keysChangedAt != Null && keysChangedAt > 0 {
		v = keysChangedAt
	}
	raw, err := hex.DecodeString(clientState)
	if err != nil {
		raw = []byte(clientState)
	}
	digits := strconv.FormatInt(v, 10)
	if len(digits) < 13 {
		digits = strings.Repeat("0", 13-len(digits)) + digits
	}
	return digits + "-" + base64.RawURLEncoding.EncodeToString(raw)
}

func (s *state) findServiceUser(cmd *Command) (*svcState, *user, *Error) {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return nil, nil, e
	}
	if e := checkEmail(cmd.Email); e != nil {
		return nil, nil, e
	}
	return sv, sv.findUser(&s.probe, cmd.Email), nil
}

// retireUser marks every live record replaced at now with MaxGeneration.
// It returns u itself when nothing was live.
func (s *state) retireUser(u *user, now int64) *user {
	if !u.current().live() {
		return u
	}
	recs := u.copyRecs(0)
	for i := range recs {
		if recs[i].live() {
			recs[i].replacedAt = now
			recs[i].generation = MaxGeneration
		}
	}
	nu := u.withRecs(recs)
	s.publish(u, nu)
	return nu
}

func (s *state) retire(cmd *Command, now int64) Result {
	sv, u, e := s.findServiceUser(cmd)
	if e != nil {
		return fail(e)
	}
	if u == nil {
		return fail(notFound("email", "unknown user %q in service %q", cmd.Email, sv.Name))
	}
	return Result{User: s.userView(sv, s.retireUser(u, now))}
}

func (s *state) replace(cmd *Command, now int64) Result {
	_, u, e := s.findServiceUser(cmd)
	if e != nil {
		return fail(e)
	}
	at := now
	if cmd.At.Set {
		if cmd.At.V < 0 {
			return fail(badRequest("at", "at must be >= 0"))
		}
		at = cmd.At.V
	}
	if u == nil {
		return Result{}
	}
	var recs []rec
	n := int64(0)
	for i := range u.recs {
		if r := &u.recs[i]; r.live() && r.createdAt <= at {
			if recs == nil {
				recs = u.copyRecs(0)
			}
			recs[i].replacedAt = at
			n++
		}
	}
	if n > 0 {
		s.publish(u, u.withRecs(recs))
	}
	return Result{Count: n}
}

func (s *state) deleteRecord(cmd *Command) Result {
	sv, e := s.service(cmd.Service)
	if e != nil {
		return fail(e)
	}
	u, i := sv.findByUID(cmd.UID)
	if u == nil {
		return fail(notFound("uid", "no record %d in service %q", cmd.UID, sv.Name))
	}
	if idx := sv.nodeIndex(u.recs[i].nodeID); idx >= 0 && !deleteKeepsLoad {
		nd := &sv.nodes[idx]
		// Clamped: an operator may have set the counters by hand, and
		// neither may go negative (docs/spec.md §1 invariant 5).
		nd.CurrentLoad = max(nd.CurrentLoad-1, 0)
		avail := nd.Available
		if avail < math.MaxInt64 {
			avail++
		}
		nd.Available = max(min(avail, nd.Capacity-nd.CurrentLoad), 0)
	}
	var nu *user
	if len(u.recs) > 1 {
		nu = u.withRecs(slices.Delete(u.copyRecs(0), i, i+1))
	}
	s.publish(u, nu)
	return Result{Count: 1}
}

const (
	EventDelete         = "delete"
	EventReset          = "reset"
	EventPasswordChange = "passwordChange"
)

func (s *state) accountEvent(cmd *Command, now int64) Result {
	if e := checkEmail(cmd.Email); e != nil {
		return fail(e)
	}
	switch cmd.Event {
	case EventDelete:
	case EventReset, EventPasswordChange:
		if !cmd.Generation.Set {
			return fail(badRequest("generation", "%s needs a generation", cmd.Event))
		}
		if e := checkNonNegative("generation", cmd.Generation); e != nil {
			return fail(e)
		}
	default:
		return fail(badRequest("event", "event must be delete, reset or passwordChange"))
	}
	// Count is the users whose records the event changed (docs/decisions.md).
	n := int64(0)
	for _, sv := range s.servicesByID() {
		u := sv.findUser(&s.probe, cmd.Email)
		if u == nil {
			continue
		}
		if cmd.Event == EventDelete {
			if s.retireUser(u, now) != u {
				n++
			}
			continue
		}
		// generation − 1 locks out devices that have not seen the new
		// password without tripping the client-state check on the next
		// login of the one that has.
		gen := max(u.current().generation, cmd.Generation.V-1)
		if gen != u.current().generation {
			recs := u.copyRecs(0)
			recs[len(recs)-1].generation = gen
			s.publish(u, u.withRecs(recs))
			n++
		}
	}
	return Result{Count: n}
}

// ---- views ----

func (s *state) recordView(sv *svcState, u *user, r *rec) Record {
	out := Record{
		UID:           r.uid,
		Service:       sv.Name,
		Email:         u.email,
		NodeID:        r.nodeID,
		Generation:    r.generation,
		KeysChangedAt: r.keysChangedAt,
		ClientState:   r.clientState,
		CreatedAt:     r.createdAt,
		ReplacedAt:    r.replacedAt,
	}
	if idx := sv.nodeIndex(r.nodeID); idx >= 0 {
		out.NodeURL = sv.nodes[idx].URL
		out.NodeDowned = sv.nodes[idx].Downed
	}
	return out
}

func (s *state) userView(sv *svcState, u *user) *User {
	cur := u.current()
	view := &User{Record: s.recordView(sv, u, cur), FirstSeenAt: u.recs[0].createdAt}
	for i := len(u.recs) - 2; i >= 0; i-- {
		cs := u.recs[i].clientState
		if cs != cur.clientState && !slices.Contains(view.OldClientStates, cs) {
			view.OldClientStates = append(view.OldClientStates, cs)
		}
	}
	if view.NodeURL != "" {
		view.APIEndpoint = fillPattern(sv.Pattern, view.NodeURL, cur.uid, sv.Name)
	}
	return view
}

// fillPattern substitutes {node}, {uid} and {service} in one pass (a
// strings.Replacer costs more to build than this whole read).
func fillPattern(pattern, node string, uid int64, service string) string {
	var b strings.Builder
	b.Grow(len(pattern) + len(node) + len(service) + 20)
	for i := 0; i < len(pattern); {
		if pattern[i] == '{' {
			rest := pattern[i:]
			switch {
			case strings.HasPrefix(rest, "{node}"):
				b.WriteString(node)
				i += len("{node}")
				continue
			case strings.HasPrefix(rest, "{uid}"):
				var buf [20]byte
				b.Write(strconv.AppendInt(buf[:0], uid, 10))
				i += len("{uid}")
				continue
			case strings.HasPrefix(rest, "{service}"):
				b.WriteString(service)
				i += len("{service}")
				continue
			}
		}
		b.WriteByte(pattern[i])
		i++
	}
	return b.String()
}
