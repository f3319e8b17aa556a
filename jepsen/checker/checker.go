package checker

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/model"
)

// Anomaly kinds. Each is a reason the run is invalid, except the ones listed
// in inconclusiveKinds, which only mean the harness could not judge.
const (
	AnomalyNotLinearizable   = "not-linearizable"       // porcupine found no linearization for a user
	AnomalyStaleReadNotState = "stale-read-never-state" // a stale read returned a state that never existed
	AnomalyMultipleLive      = "multiple-live-records"  // invariant 1
	AnomalyRetiredLive       = "retired-reappeared"     // a user answered as retired has a live or non-retired newest record
	AnomalyReplacedAt        = "replaced-at-order"      // replaced_at before created_at, cleared, or moved back
	AnomalyUIDOrder          = "uid-order"              // invariant 2: uids of a user's records not increasing
	AnomalyUIDReused         = "uid-reused"             // invariant 2: one uid for two records or two users
	AnomalyLoadMismatch      = "load-mismatch"          // invariant 3
	AnomalyOverCapacity      = "over-capacity"          // invariant 4
	AnomalyNegativeAvailable = "available-below-zero"
	AnomalyDecrease          = "generation-decreased"    // invariant 6 across a user's records
	AnomalyLostWrite         = "lost-write"              // an acknowledged record is not stored
	AnomalyLostAckWrite      = "lost-acknowledged-write" // an acknowledged allocation or update is not in the final read
	AnomalyStaleBeyondBound  = "stale-read-beyond-bound" // a stale read with max_staleness missed a write acknowledged longer ago
	AnomalyUnknownNode       = "unknown-node"            // a record on a node that never existed
	AnomalyFinalMismatch     = "final-read-mismatch"     // the final user read is older than the records read before it
	AnomalyMemberCrashed     = "member-crashed"          // a member exited without being killed by the nemesis
	AnomalyNoRecovery        = "no-recovery"             // the healed cluster did not become ready
	AnomalyCheckTimeout      = "check-timeout"
	AnomalyFinalReadFailed   = "final-read-failed"
)

// inconclusiveKinds make a run "unknown" rather than "invalid": the harness
// could not look, which is not evidence of a bug.
var inconclusiveKinds = map[string]bool{AnomalyCheckTimeout: true, AnomalyFinalReadFailed: true}

// Anomaly is one finding of the checker.
type Anomaly struct {
	Kind   string `json:"kind"`
	Email  string `json:"email,omitempty"`
	NodeID int64  `json:"node_id,omitempty"`
	Detail string `json:"detail"`
	OpIDs  []int  `json:"op_ids,omitempty"`
}

// FinalState is what the harness read, linearizably, after healing.
type FinalState struct {
	Nodes []history.NodeView `json:"nodes"`
	// Records holds every workload email that was read; an email with no
	// record maps to an empty slice. An email missing from the map could
	// not be read.
	Records map[string][]history.RecordView `json:"records"`
}

// CheckInput is everything the checker judges.
type CheckInput struct {
	History []history.Op
	Final   FinalState
	Emails  []string
	// MaxCapacity is, per node id, the highest capacity the node ever had
	// or was asked to have (setup and every node change, answered or not).
	MaxCapacity map[int64]int64
	// Timeout bounds the linearizability search (0: none).
	Timeout time.Duration
}

// Verdicts.
const (
	VerdictValid   = "valid"
	VerdictInvalid = "invalid"
	VerdictUnknown = "unknown"
)

// CheckResult is the checker's judgement.
type CheckResult struct {
	Verdict      string    `json:"verdict"`
	Linearizable string    `json:"linearizable"` // porcupine: Ok, Illegal, Unknown
	StaleReads   string    `json:"stale_reads"`  // Ok, Illegal, Unknown, or none
	Anomalies    []Anomaly `json:"anomalies"`
	// LostAcknowledgedWrites counts the acknowledged allocations, logins
	// and updates whose effect the final linearizable read does not show.
	LostAcknowledgedWrites int `json:"lost_acknowledged_writes"`

	model porcupine.Model
	info  porcupine.LinearizationInfo
}

// Valid is true when nothing at all was wrong.
func (r CheckResult) Valid() bool { return r.Verdict == VerdictValid }

// AddAnomalies adds what the run itself found (a member that crashed, a
// cluster that did not recover) and recomputes the verdict.
func (r *CheckResult) AddAnomalies(anomalies ...Anomaly) {
	r.Anomalies = append(r.Anomalies, anomalies...)
	r.Verdict = verdictOf(r.Anomalies)
}

// verdictOf turns anomalies into a verdict.
func verdictOf(anomalies []Anomaly) string {
	verdict := VerdictValid
	for _, a := range anomalies {
		if !inconclusiveKinds[a.Kind] {
			return VerdictInvalid
		}
		verdict = VerdictUnknown
	}
	return verdict
}

// Check judges a history and final state.
func Check(in CheckInput) CheckResult {
	res := CheckResult{model: model.UserModel()}
	ops := model.Operations(in.History)
	result, info := porcupine.CheckOperationsVerbose(res.model, ops, in.Timeout)
	res.Linearizable, res.info = string(result), info
	okEmails := map[string]bool{}
	switch result {
	case porcupine.Unknown:
		res.Anomalies = append(res.Anomalies, Anomaly{Kind: AnomalyCheckTimeout,
			Detail: fmt.Sprintf("linearizability search of %d operations did not finish within %s", len(ops), in.Timeout)})
	default:
		for i, part := range model.PartitionByEmail(ops) {
			email := part[0].Input.(history.UserInput).Email
			longest := 0
			for _, lin := range info.PartialLinearizations()[i] {
				longest = max(longest, len(lin))
			}
			if longest == len(part) {
				okEmails[email] = true
				continue
			}
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: AnomalyNotLinearizable, Email: email,
				Detail: fmt.Sprintf("no linearization of its %d operations; the longest linearizable prefix has %d "+
					"(see history.html)", len(part), longest),
				OpIDs: frontierOps(part, info.PartialLinearizations()[i])})
		}
	}
	res.StaleReads, res.Anomalies = checkStaleReads(in.History, okEmails, in.Timeout, res.Anomalies)
	res.Anomalies = append(res.Anomalies, checkFinalState(in)...)
	var lost []Anomaly
	res.LostAcknowledgedWrites, lost = countLostAcknowledged(in)
	res.Anomalies = append(res.Anomalies, lost...)
	res.Anomalies = append(res.Anomalies, checkBoundedStaleReads(in.History)...)
	res.Verdict = verdictOf(res.Anomalies)
	return res
}

// countLostAcknowledged counts the acknowledged writes that answered with
// a user record (allocate, login, update) and whose effect the final
// linearizable read does not show: the record (uid, node) is not stored
// (and no delete may have purged it), or it is stored with a lower
// generation or keys_changed_at than the answer gave. Both only ever grow
// on a record, so a lower value means the write was lost. Users whose
// final read failed are not judged (final-read-failed says so).
func countLostAcknowledged(in CheckInput) (int, []Anomaly) {
	deleted := deletedRecords(in.History)
	lost := map[string][]int{}
	why := map[string][]string{}
	n := 0
	for _, op := range in.History {
		switch op.Kind {
		case history.OpAllocate, history.OpLogin, history.OpUpdate:
		default:
			continue
		}
		u := op.Output.User
		if op.Outcome != history.OutcomeOK || op.Output.Status != "" || op.Email == "" || u.UID == 0 {
			continue
		}
		recs, read := in.Final.Records[op.Email]
		if !read {
			continue
		}
		var problem string
		i := slices.IndexFunc(recs, func(r history.RecordView) bool { return r.UID == u.UID })
		switch {
		case i < 0 && deleted[u.UID]:
		case i < 0:
			problem = fmt.Sprintf("op %d: uid %d is not stored", op.ID, u.UID)
		case recs[i].NodeID != u.NodeID:
			problem = fmt.Sprintf("op %d: uid %d is on node %d, answered on %d", op.ID, u.UID, recs[i].NodeID, u.NodeID)
		case recs[i].Generation < u.Generation:
			problem = fmt.Sprintf("op %d: uid %d has generation %d, answered %d", op.ID, u.UID, recs[i].Generation, u.Generation)
		case kcaValue(recs[i].KeysChangedAt) < kcaValue(u.KeysChangedAt):
			problem = fmt.Sprintf("op %d: uid %d has keys_changed_at %d, answered %d", op.ID, u.UID,
				kcaValue(recs[i].KeysChangedAt), kcaValue(u.KeysChangedAt))
		}
		if problem != "" {
			n++
			lost[op.Email] = append(lost[op.Email], op.ID)
			why[op.Email] = append(why[op.Email], problem)
		}
	}
	var out []Anomaly
	for _, email := range slices.Sorted(maps.Keys(lost)) {
		detail := strings.Join(why[email][:min(3, len(why[email]))], "; ")
		if len(why[email]) > 3 {
			detail += fmt.Sprintf("; and %d more", len(why[email])-3)
		}
		out = append(out, Anomaly{Kind: AnomalyLostAckWrite, Email: email, OpIDs: lost[email],
			Detail: fmt.Sprintf("%d acknowledged writes not in the final read: %s", len(lost[email]), detail)})
	}
	return n, out
}

// frontierOps names the operations none of the longest partial
// linearizations could include next: where to start reading.
func frontierOps(part []porcupine.Operation, partials [][]int) []int {
	longest := 0
	for _, lin := range partials {
		longest = max(longest, len(lin))
	}
	included := map[int]bool{}
	for _, lin := range partials {
		if len(lin) == longest {
			for _, id := range lin {
				included[id] = true
			}
		}
	}
	var out []int
	var firstReturn int64 = -1
	// The op that returned earliest among those left out is the one the
	// search could not place.
	for id, op := range part {
		if included[id] {
			continue
		}
		if firstReturn < 0 || op.Return < firstReturn {
			firstReturn = op.Return
		}
	}
	for id, op := range part {
		if !included[id] && op.Return == firstReturn {
			var opID int
			if _, err := fmt.Sscanf(op.Metadata.(string), "op %d", &opID); err == nil {
				out = append(out, opID)
			}
		}
	}
	return out
}

// checkStaleReads verifies that every answered stale read returned a state
// the user was in at some point before the read returned: the read is
// checked as a linearizable read whose call is moved to the start of the
// run. It runs only for users whose strict history linearized.
func checkStaleReads(hist []history.Op, okEmails map[string]bool, timeout time.Duration, anomalies []Anomaly) (string, []Anomaly) {
	staleByEmail := map[string][]history.Op{}
	for _, op := range hist {
		if op.Kind == history.OpGetStale && op.Outcome == history.OutcomeOK {
			staleByEmail[op.Email] = append(staleByEmail[op.Email], op)
		}
	}
	if len(staleByEmail) == 0 {
		return "none", anomalies
	}
	verdict := string(porcupine.Ok)
	userModel := model.UserModel()
	// One budget for all users: a pathological history must not multiply
	// the timeout by the number of users.
	deadline := time.Now().Add(timeout)
	budget := func() time.Duration {
		if timeout == 0 {
			return 0
		}
		return max(time.Until(deadline), time.Second)
	}
	strict := model.Operations(hist)
	for _, email := range slices.Sorted(maps.Keys(staleByEmail)) {
		if !okEmails[email] {
			continue // already invalid; the search would only repeat the failure
		}
		base := model.OpsOfEmail(strict, email)
		asEarlyReads := func(reads []history.Op) []porcupine.Operation {
			ops := append([]porcupine.Operation(nil), base...)
			for _, r := range reads {
				ops = append(ops, porcupine.Operation{ClientId: r.Client, Input: r.Input, Output: r.Output,
					Call: -1, Return: int64(r.Return), Metadata: fmt.Sprintf("op %d via %s", r.ID, r.Member)})
			}
			return ops
		}
		switch porcupine.CheckOperationsTimeout(userModel, asEarlyReads(staleByEmail[email]), budget()) {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			if verdict == string(porcupine.Ok) {
				verdict = string(porcupine.Unknown)
			}
			anomalies = append(anomalies, Anomaly{Kind: AnomalyCheckTimeout, Email: email,
				Detail: "stale-read check did not finish"})
			continue
		}
		verdict = string(porcupine.Illegal)
		// Name the culprits: reads that are impossible even on their own.
		var culprits []int
		for _, r := range staleByEmail[email] {
			if porcupine.CheckOperationsTimeout(userModel, asEarlyReads([]history.Op{r}), budget()) == porcupine.Illegal {
				culprits = append(culprits, r.ID)
			}
		}
		detail := "stale reads returned states the user was never in"
		if len(culprits) == 0 {
			detail = "the stale reads cannot all have observed states of one history"
		}
		anomalies = append(anomalies, Anomaly{Kind: AnomalyStaleReadNotState, Email: email, Detail: detail, OpIDs: culprits})
	}
	return verdict, anomalies
}

// checkFinalState checks docs/spec.md §1's invariants on the state read after
// healing, and that every record a client was told about is stored.
func checkFinalState(in CheckInput) []Anomaly {
	var out []Anomaly
	if in.Final.Nodes == nil {
		out = append(out, Anomaly{Kind: AnomalyFinalReadFailed, Detail: "could not read the final nodes"})
	}
	t := finalTally{
		complete:      true,
		recordsOnNode: map[int64]int64{},
		usersOnNode:   map[int64]map[string]bool{},
		uidOwner:      map[int64]string{},
	}
	nodes := map[int64]history.NodeView{}
	for _, n := range in.Final.Nodes {
		nodes[n.ID] = n
	}
	removed := removedNodes(in.History)
	retired := retiredUsers(in.History)
	for _, email := range in.Emails {
		recs, ok := in.Final.Records[email]
		if !ok {
			out = append(out, Anomaly{Kind: AnomalyFinalReadFailed, Email: email, Detail: "could not read the final records"})
			t.complete = false
			continue
		}
		// A record's node is only judged unknown when the nodes were read.
		var known map[int64]history.NodeView
		if in.Final.Nodes != nil {
			known = nodes
		}
		out = append(out, t.checkRecords(email, recs, known, removed)...)
		if ids, ok := retired[email]; ok {
			out = append(out, checkRetired(email, recs, ids)...)
		}
	}
	out = append(out, checkRecordObservations(in)...)
	out = append(out, t.checkNodes(in)...)
	out = append(out, checkAcknowledged(in)...)
	return out
}

// finalTally is what the per-user checks of the final state gather for the
// per-node ones.
type finalTally struct {
	complete      bool // every user's records were read: counts per node are exact
	recordsOnNode map[int64]int64
	usersOnNode   map[int64]map[string]bool // users with a stored record on the node
	uidOwner      map[int64]string
}

// checkRecords checks one user's stored records: uids never reused across
// users, at most one live record and it the newest, replaced_at not before
// created_at, no record on a node that never existed, and order with
// non-decreasing generation and keys_changed_at. nodes nil skips the
// unknown-node check (the nodes could not be read).
func (t *finalTally) checkRecords(email string, recs []history.RecordView, nodes map[int64]history.NodeView, removed map[int64]bool) []Anomaly {
	var out []Anomaly
	add := func(a Anomaly) { out = append(out, a) }
	live := 0
	for i, r := range recs {
		t.recordsOnNode[r.NodeID]++
		if t.usersOnNode[r.NodeID] == nil {
			t.usersOnNode[r.NodeID] = map[string]bool{}
		}
		t.usersOnNode[r.NodeID][email] = true
		if owner, dup := t.uidOwner[r.UID]; dup {
			add(Anomaly{Kind: AnomalyUIDReused, Email: email,
				Detail: fmt.Sprintf("uid %d is stored for %s and %s", r.UID, owner, email)})
		}
		t.uidOwner[r.UID] = email
		if r.ReplacedAt == fsm.Null {
			live++
			if i != len(recs)-1 {
				add(Anomaly{Kind: AnomalyMultipleLive, Email: email,
					Detail: fmt.Sprintf("record uid %d is live but is not the newest", r.UID)})
			}
		} else if r.ReplacedAt < r.CreatedAt {
			add(Anomaly{Kind: AnomalyReplacedAt, Email: email,
				Detail: fmt.Sprintf("record uid %d was replaced at %d, before it was created at %d", r.UID, r.ReplacedAt, r.CreatedAt)})
		}
		if nodes != nil {
			if _, known := nodes[r.NodeID]; !known && !removed[r.NodeID] {
				add(Anomaly{Kind: AnomalyUnknownNode, Email: email, NodeID: r.NodeID,
					Detail: fmt.Sprintf("record uid %d is on node %d, which does not exist and was never removed", r.UID, r.NodeID)})
			}
		}
		if i > 0 {
			out = append(out, checkRecordOrder(email, recs[i-1], r)...)
		}
	}
	if live > 1 {
		add(Anomaly{Kind: AnomalyMultipleLive, Email: email, Detail: fmt.Sprintf("%d live records", live)})
	}
	return out
}

// checkRecordOrder checks a record against the one stored before it: a
// newer uid and creation time, and neither generation nor keys_changed_at
// going down.
func checkRecordOrder(email string, prev, r history.RecordView) []Anomaly {
	var out []Anomaly
	if r.UID <= prev.UID || r.CreatedAt < prev.CreatedAt {
		out = append(out, Anomaly{Kind: AnomalyUIDOrder, Email: email,
			Detail: fmt.Sprintf("records out of order: uid %d (created %d) after uid %d (created %d)",
				r.UID, r.CreatedAt, prev.UID, prev.CreatedAt)})
	}
	if r.Generation < prev.Generation || kcaValue(r.KeysChangedAt) < kcaValue(prev.KeysChangedAt) {
		out = append(out, Anomaly{Kind: AnomalyDecrease, Email: email,
			Detail: fmt.Sprintf("uid %d has generation %d / keys_changed_at %d, below uid %d's %d / %d",
				r.UID, r.Generation, kcaValue(r.KeysChangedAt), prev.UID, prev.Generation, kcaValue(prev.KeysChangedAt))})
	}
	return out
}

// checkRetired checks a user some answer called retired (operations ids).
// Retired is for good: only a purge of every record could undo it, and the
// workload never deletes a user's newest record.
func checkRetired(email string, recs []history.RecordView, ids []int) []Anomaly {
	if len(recs) == 0 {
		return []Anomaly{{Kind: AnomalyRetiredLive, Email: email, OpIDs: ids, Detail: "answered as retired, but has no record left"}}
	}
	if last := recs[len(recs)-1]; last.Generation != fsm.MaxGeneration || last.ReplacedAt == fsm.Null {
		return []Anomaly{{Kind: AnomalyRetiredLive, Email: email, OpIDs: ids,
			Detail: fmt.Sprintf("answered as retired, but its newest record uid %d has generation %d, replaced_at %d",
				last.UID, last.Generation, last.ReplacedAt)}}
	}
	return nil
}

// checkNodes checks each final node: available never negative and, when
// every user's records were read, current_load equal to the stored records
// and no more users on it than its capacity ever allowed.
func (t *finalTally) checkNodes(in CheckInput) []Anomaly {
	var out []Anomaly
	add := func(a Anomaly) { out = append(out, a) }
	for _, n := range in.Final.Nodes {
		if n.Available < 0 {
			add(Anomaly{Kind: AnomalyNegativeAvailable, NodeID: n.ID, Detail: fmt.Sprintf("available = %d", n.Available)})
		}
		if !t.complete {
			continue
		}
		if n.CurrentLoad != t.recordsOnNode[n.ID] {
			add(Anomaly{Kind: AnomalyLoadMismatch, NodeID: n.ID,
				Detail: fmt.Sprintf("current_load %d but %d stored records", n.CurrentLoad, t.recordsOnNode[n.ID])})
		}
		capacity, known := in.MaxCapacity[n.ID]
		if !known {
			capacity = n.Capacity
		}
		// Each §3 choice needs capacity > current_load, and current_load
		// counts every stored record, so a choice never brings a node's
		// distinct users (with a stored record there) above its capacity;
		// key changes and updates of a replaced user add records without
		// a choice, but never a new user; deletes only remove records.
		if users := int64(len(t.usersOnNode[n.ID])); users > capacity {
			add(Anomaly{Kind: AnomalyOverCapacity, NodeID: n.ID,
				Detail: fmt.Sprintf("%d users have records on it, capacity was never above %d", users, capacity)})
		}
	}
	return out
}

func kcaValue(v int64) int64 {
	if v == fsm.Null {
		return 0
	}
	return v
}

// checkAcknowledged: every record a client saw in a definite answer (a
// write's result or any read) must still be stored, on the same node, for
// the same user; and the final linearizable read must show the newest one.
func checkAcknowledged(in CheckInput) []Anomaly {
	var out []Anomaly
	type owner struct {
		email string
		node  int64
	}
	owners := map[int64][]owner{} // every (user, node) a uid was answered for
	ownerOps := map[int64][]int{}
	lost := map[string][]int{}
	deleted := deletedRecords(in.History)
	for _, op := range in.History {
		if op.Outcome != history.OutcomeOK || op.Output.Status != "" || op.Email == "" || op.Output.User.UID == 0 {
			continue
		}
		u := op.Output.User
		o := owner{op.Email, u.NodeID}
		if !slices.Contains(owners[u.UID], o) {
			owners[u.UID] = append(owners[u.UID], o)
			ownerOps[u.UID] = append(ownerOps[u.UID], op.ID)
		}
		recs, read := in.Final.Records[op.Email]
		if !read {
			continue
		}
		i := slices.IndexFunc(recs, func(r history.RecordView) bool { return r.UID == u.UID })
		if (i < 0 && !deleted[u.UID]) || (i >= 0 && recs[i].NodeID != u.NodeID) {
			lost[op.Email] = append(lost[op.Email], op.ID)
		}
		// The final user read starts after the records were read, so it
		// cannot show an older record than the newest stored one.
		if op.Final && op.Kind == history.OpGet && len(recs) > 0 && u.UID < recs[len(recs)-1].UID {
			out = append(out, Anomaly{Kind: AnomalyFinalMismatch, Email: op.Email, OpIDs: []int{op.ID},
				Detail: fmt.Sprintf("final read shows uid %d, but uid %d was stored before it began", u.UID, recs[len(recs)-1].UID)})
		}
	}
	uids := make([]int64, 0, len(owners))
	for uid := range owners {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		if len(owners[uid]) < 2 {
			continue
		}
		var names []string
		for _, o := range owners[uid] {
			names = append(names, fmt.Sprintf("%s on node %d", o.email, o.node))
		}
		out = append(out, Anomaly{Kind: AnomalyUIDReused, Email: owners[uid][0].email, OpIDs: ownerOps[uid],
			Detail: fmt.Sprintf("uid %d was answered as %s", uid, strings.Join(names, " and as "))})
	}
	for _, email := range slices.Sorted(maps.Keys(lost)) {
		ids := lost[email]
		sort.Ints(ids)
		out = append(out, Anomaly{Kind: AnomalyLostWrite, Email: email, OpIDs: ids,
			Detail: fmt.Sprintf("%d acknowledged answers name a record (uid, node) that is not stored", len(ids))})
	}
	return out
}

// removedNodes: nodes a remove may have deleted (answered or not).
func removedNodes(hist []history.Op) map[int64]bool {
	return mayHaveApplied(hist, history.OpRemoveNode, func(in history.UserInput) int64 { return in.NodeID })
}

// deletedRecords: uids a delete may have purged (answered or not).
func deletedRecords(hist []history.Op) map[int64]bool {
	return mayHaveApplied(hist, history.OpDeleteRecord, func(in history.UserInput) int64 { return in.UID })
}

// mayHaveApplied: the keys of the ops of one kind that did not
// definitely fail, so may have taken effect.
func mayHaveApplied(hist []history.Op, kind history.OpKind, key func(history.UserInput) int64) map[int64]bool {
	out := map[int64]bool{}
	for _, op := range hist {
		if op.Kind == kind && op.Outcome != history.OutcomeFail {
			out[key(op.Input)] = true
		}
	}
	return out
}

// retiredUsers: users some definite answer showed retired, with those ops.
func retiredUsers(hist []history.Op) map[string][]int {
	out := map[string][]int{}
	for _, op := range hist {
		if op.Outcome == history.OutcomeOK && op.Email != "" && op.Output.Status == "" &&
			op.Output.User.UID != 0 && op.Output.User.Generation == fsm.MaxGeneration {
			out[op.Email] = append(out[op.Email], op.ID)
		}
	}
	return out
}

// checkRecordObservations: a record's replaced_at, once set, is never
// cleared and never moves back, and its generation never goes down, across
// records reads that did not overlap in time and the final state (read
// after everything).
func checkRecordObservations(in CheckInput) []Anomaly {
	type seen struct {
		op              history.Op
		replacedAt, gen int64
		call, ret       time.Duration
		final           bool
	}
	byUID := map[int64][]seen{}
	emailOf := map[int64]string{}
	for _, op := range in.History {
		if op.Kind != history.OpRecords || op.Outcome != history.OutcomeOK {
			continue
		}
		for _, r := range op.Records {
			byUID[r.UID] = append(byUID[r.UID], seen{op: op, replacedAt: r.ReplacedAt, gen: r.Generation, call: op.Call, ret: op.Return})
			emailOf[r.UID] = op.Email
		}
	}
	var out []Anomaly
	finalOf := map[int64]history.RecordView{}
	for _, recs := range in.Final.Records {
		for _, r := range recs {
			finalOf[r.UID] = r
		}
	}
	uids := make([]int64, 0, len(byUID))
	for uid := range byUID {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		obs := byUID[uid]
		if r, ok := finalOf[uid]; ok {
			obs = append(obs, seen{replacedAt: r.ReplacedAt, gen: r.Generation, call: 1 << 62, ret: 1 << 62, final: true})
		}
		reported := false
		for _, a := range obs {
			for _, b := range obs {
				if reported || a.ret >= b.call {
					continue // only a read that ended before the other began orders them
				}
				what := ""
				switch {
				case a.replacedAt != fsm.Null && b.replacedAt == fsm.Null:
					what = fmt.Sprintf("replaced_at %d was later read as null", a.replacedAt)
				case a.replacedAt != fsm.Null && b.replacedAt < a.replacedAt:
					what = fmt.Sprintf("replaced_at %d was later read as %d", a.replacedAt, b.replacedAt)
				case b.gen < a.gen:
					what = fmt.Sprintf("generation %d was later read as %d", a.gen, b.gen)
				}
				if what == "" {
					continue
				}
				kind := AnomalyReplacedAt
				if b.gen < a.gen {
					kind = AnomalyDecrease
				}
				ids := []int{a.op.ID}
				if !b.final {
					ids = append(ids, b.op.ID)
				}
				out = append(out, Anomaly{Kind: kind, Email: emailOf[uid], OpIDs: ids,
					Detail: fmt.Sprintf("record uid %d: %s", uid, what)})
				reported = true
			}
		}
	}
	return out
}

// staleBoundSlack is added to a stale read's max_staleness before judging
// it: a member counts from when the leader's message reached it, which is
// a network hop after the leader committed, and the client's call began a
// hop before the member read.
const staleBoundSlack = 250 * time.Millisecond

// checkBoundedStaleReads: a stale read answered with max_staleness S must
// show every write to the user acknowledged more than S (plus slack)
// before the read was sent: the server promises that its state then held
// everything committed as of S ago. "Show" is judged by the record's
// order: a newer uid, or the same uid with generation and keys_changed_at
// at least the acknowledged ones. Users with account events are left out
// (an event may remove or rewrite records in ways this order does not
// describe).
func checkBoundedStaleReads(hist []history.Op) []Anomaly {
	acked := map[string][]history.Op{}
	events := map[string]bool{}
	for _, op := range hist {
		if op.Kind == history.OpEvent && op.Outcome != history.OutcomeFail {
			events[op.Email] = true
		}
		switch op.Kind {
		case history.OpAllocate, history.OpLogin, history.OpUpdate:
			if op.Outcome == history.OutcomeOK && op.Output.Status == "" && op.Output.User.UID != 0 {
				acked[op.Email] = append(acked[op.Email], op)
			}
		}
	}
	var out []Anomaly
	for _, r := range hist {
		if r.Kind != history.OpGetStale || r.Outcome != history.OutcomeOK || r.MaxStaleness <= 0 || events[r.Email] {
			continue
		}
		got := r.Output.User
		for _, w := range acked[r.Email] {
			if w.Return+r.MaxStaleness+staleBoundSlack >= r.Call {
				continue
			}
			want := w.Output.User
			shows := r.Output.Status == "" && got.UID != 0 && (got.UID > want.UID ||
				(got.UID == want.UID && got.Generation >= want.Generation && kcaValue(got.KeysChangedAt) >= kcaValue(want.KeysChangedAt)))
			if shows {
				continue
			}
			seen := history.DescribeOutput(r.Output)
			out = append(out, Anomaly{Kind: AnomalyStaleBeyondBound, Email: r.Email, OpIDs: []int{w.ID, r.ID},
				Detail: fmt.Sprintf("stale read op %d via %s with max_staleness %s answered %s, missing op %d (uid %d generation %d) acknowledged %s before the read",
					r.ID, r.Member, r.MaxStaleness, seen, w.ID, want.UID, want.Generation, (r.Call - w.Return).Round(time.Millisecond))})
			break
		}
	}
	return out
}
