package jepsen

import (
	"slices"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
)

const otherEmail = "jepsen-01@example.com"

// goodRun is a small consistent run: testEmail allocated (uid 7) then key
// changed (uid 9) on node 1; otherEmail allocated on node 2 (uid 8).
func goodRun() CheckInput {
	h := &historyBuilder{}
	h.ok(alloc(1000, 1000, "0a00"), created(user(7, 1, 1000, 1000, "0a00")), 0, 1).
		ok(UserInput{Kind: OpAllocate, Email: otherEmail, Generation: fsm.SomeInt64(1000), KeysChangedAt: fsm.SomeInt64(1000),
			ClientState: fsm.SomeString("0b00")}, created(user(8, 2, 1000, 1000, "0b00")), 2, 3).
		ok(login(2001, 2000, "0a01"), loggedIn(user(9, 1, 2001, 2000, "0a01", "0a00")), 4, 5).
		ok(get(), found(user(9, 1, 2001, 2000, "0a01", "0a00")), 6, 7)
	return CheckInput{
		History: h.ops,
		Emails:  []string{testEmail, otherEmail},
		Final: FinalState{
			Nodes: []NodeView{
				{ID: 1, Capacity: 1, Available: 5, CurrentLoad: 2},
				{ID: 2, Capacity: 1, Available: 5, CurrentLoad: 1},
			},
			Records: map[string][]RecordView{
				testEmail: {
					{UID: 7, NodeID: 1, Generation: 1000, KeysChangedAt: 1000, ClientState: "0a00", CreatedAt: 10, ReplacedAt: 20},
					{UID: 9, NodeID: 1, Generation: 2001, KeysChangedAt: 2000, ClientState: "0a01", CreatedAt: 20, ReplacedAt: fsm.Null},
				},
				otherEmail: {{UID: 8, NodeID: 2, Generation: 1000, KeysChangedAt: 1000, ClientState: "0b00", CreatedAt: 15, ReplacedAt: fsm.Null}},
			},
		},
		MaxCapacity: map[int64]int64{1: 1, 2: 1},
		Timeout:     10 * time.Second,
	}
}

func anomalyKinds(res CheckResult) []string {
	var kinds []string
	for _, a := range res.Anomalies {
		kinds = append(kinds, a.Kind)
	}
	return kinds
}

func TestCheckAcceptsConsistentRun(t *testing.T) {
	res := Check(goodRun())
	if !res.Valid() || res.Linearizable != "Ok" {
		t.Fatalf("verdict %s (%s), anomalies %+v", res.Verdict, res.Linearizable, res.Anomalies)
	}
}

// mutation breaks one invariant of a consistent run.
type mutation struct {
	name   string
	mutate func(in *CheckInput)
	want   string // the anomaly Check must report
}

// checkMutations applies each mutation to a fresh run() and checks that
// Check reports its anomaly, with the verdict that anomaly calls for:
// unknown for the inconclusive kinds, else invalid.
func checkMutations(t *testing.T, run func() CheckInput, cases []mutation) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := run()
			c.mutate(&in)
			res := Check(in)
			wantVerdict := VerdictInvalid
			if inconclusiveKinds[c.want] {
				wantVerdict = VerdictUnknown
			}
			if !slices.Contains(anomalyKinds(res), c.want) || res.Verdict != wantVerdict {
				t.Fatalf("want %s (%s), got %s %+v", c.want, wantVerdict, res.Verdict, res.Anomalies)
			}
		})
	}
}

// Each mutation of the good run breaks one invariant and must be reported
// as exactly that anomaly.
func TestCheckFinalStateInvariants(t *testing.T) {
	checkMutations(t, goodRun, []mutation{
		{"two live records", func(in *CheckInput) { in.Final.Records[testEmail][0].ReplacedAt = fsm.Null }, AnomalyMultipleLive},
		{"replaced before it was created", func(in *CheckInput) { in.Final.Records[testEmail][0].ReplacedAt = 5 }, AnomalyReplacedAt},
		{"retired user live again", func(in *CheckInput) {
			retired := user(8, 2, fsm.MaxGeneration, 1000, "0b00")
			retired.Replaced = true
			in.History = append(in.History, Op{ID: len(in.History), Kind: OpRetire, Email: otherEmail,
				Input: UserInput{Kind: OpRetire, Email: otherEmail}, Output: found(retired), Outcome: OutcomeOK,
				Call: 8 * time.Millisecond, Return: 9 * time.Millisecond})
		}, AnomalyRetiredLive},
		{"uid stored twice", func(in *CheckInput) {
			in.Final.Records[otherEmail][0].UID = 7
		}, AnomalyUIDReused},
		{"uids out of order", func(in *CheckInput) {
			in.Final.Records[testEmail][1].CreatedAt = 5
		}, AnomalyUIDOrder},
		{"load differs from records", func(in *CheckInput) { in.Final.Nodes[1].CurrentLoad = 2 }, AnomalyLoadMismatch},
		{"available negative", func(in *CheckInput) { in.Final.Nodes[0].Available = -1 }, AnomalyNegativeAvailable},
		{"more users than capacity", func(in *CheckInput) {
			in.Final.Records[otherEmail][0].NodeID = 1
			in.Final.Nodes[0].CurrentLoad, in.Final.Nodes[1].CurrentLoad = 3, 0
			in.History[1].Output.User.NodeID = 1
		}, AnomalyOverCapacity},
		{"generation decreases across records", func(in *CheckInput) {
			in.Final.Records[testEmail][0].Generation = 3000
		}, AnomalyDecrease},
		{"acknowledged record missing", func(in *CheckInput) {
			in.Final.Records[testEmail] = in.Final.Records[testEmail][1:]
			in.Final.Nodes[0].CurrentLoad = 1
		}, AnomalyLostWrite},
		{"record on a node that does not exist", func(in *CheckInput) {
			in.Final.Nodes = in.Final.Nodes[:1]
		}, AnomalyUnknownNode},
		{"records could not be read", func(in *CheckInput) { delete(in.Final.Records, otherEmail) }, AnomalyFinalReadFailed},
	})
}

func TestCheckReportsUIDAnsweredForTwoUsers(t *testing.T) {
	in := goodRun()
	in.History[1].Output.User.UID = 7 // otherEmail told it got uid 7 as well
	res := Check(in)
	if !slices.Contains(anomalyKinds(res), AnomalyUIDReused) {
		t.Fatalf("want uid-reused, got %v", res.Anomalies)
	}
}

func TestCheckNonLinearizableNamesTheUser(t *testing.T) {
	in := goodRun()
	// A linearizable read after the key change sees the first record again.
	in.History = append(in.History, Op{ID: len(in.History), Kind: OpGet, Email: testEmail, Input: UserInput{Kind: OpGet, Email: testEmail},
		Outcome: OutcomeOK, Output: found(user(7, 1, 1000, 1000, "0a00")), Call: 8 * time.Millisecond, Return: 9 * time.Millisecond})
	res := Check(in)
	if res.Linearizable != "Illegal" || res.Verdict != VerdictInvalid {
		t.Fatalf("linearizable %s verdict %s", res.Linearizable, res.Verdict)
	}
	a := res.Anomalies[0]
	if a.Kind != AnomalyNotLinearizable || a.Email != testEmail || !slices.Contains(a.OpIDs, len(in.History)-1) {
		t.Fatalf("anomaly %+v should name %s and op %d", a, testEmail, len(in.History)-1)
	}
}

func staleRead(h *historyBuilder, out UserOutput, call, ret int) {
	h.add(OutcomeOK, UserInput{Kind: OpGetStale}, out, call, ret)
}

func TestCheckStaleReads(t *testing.T) {
	t.Run("an old state is fine", func(t *testing.T) {
		in := goodRun()
		h := &historyBuilder{ops: in.History}
		staleRead(h, found(user(7, 1, 1000, 1000, "0a00")), 20, 21)
		staleRead(h, failed(fsm.StatusNotFound), 22, 23)
		in.History = h.ops
		if res := Check(in); !res.Valid() || res.StaleReads != "Ok" {
			t.Fatalf("verdict %s, stale reads %s, %+v", res.Verdict, res.StaleReads, res.Anomalies)
		}
	})
	t.Run("a state that never existed is not", func(t *testing.T) {
		in := goodRun()
		h := &historyBuilder{ops: in.History}
		staleRead(h, found(user(7, 1, 1500, 1000, "0a00")), 20, 21) // generation 1500 was never written
		in.History = h.ops
		res := Check(in)
		if res.StaleReads != "Illegal" || !slices.Contains(anomalyKinds(res), AnomalyStaleReadNotState) {
			t.Fatalf("stale reads %s, anomalies %+v", res.StaleReads, res.Anomalies)
		}
		if got := res.Anomalies[0].OpIDs; !slices.Equal(got, []int{len(h.ops) - 1}) {
			t.Fatalf("culprits %v, want the bad read", got)
		}
	})
	t.Run("a state from the future is not", func(t *testing.T) {
		in := goodRun()
		h := &historyBuilder{ops: in.History}
		// Returned before the key change was even sent.
		staleRead(h, found(user(9, 1, 2001, 2000, "0a01", "0a00")), 1, 2)
		in.History = h.ops
		if res := Check(in); res.StaleReads != "Illegal" {
			t.Fatalf("stale reads %s", res.StaleReads)
		}
	})
}

func TestVerdictOf(t *testing.T) {
	if verdictOf(nil) != VerdictValid ||
		verdictOf([]Anomaly{{Kind: AnomalyCheckTimeout}}) != VerdictUnknown ||
		verdictOf([]Anomaly{{Kind: AnomalyCheckTimeout}, {Kind: AnomalyLostWrite}}) != VerdictInvalid {
		t.Fatal("verdictOf is wrong")
	}
}

// The final read lacking acknowledged writes is counted, one per write,
// and fails the run; a consistent run counts none.
func TestCheckCountsLostAcknowledgedWrites(t *testing.T) {
	if res := Check(goodRun()); res.LostAcknowledgedWrites != 0 {
		t.Fatalf("consistent run: %d lost acknowledged writes (%+v)", res.LostAcknowledgedWrites, res.Anomalies)
	}
	// uid 9 (the login's new record) is gone from the final read: the
	// login is lost, and so is the read that reported it (not a write).
	in := goodRun()
	in.Final.Records[testEmail] = in.Final.Records[testEmail][:1]
	in.Final.Records[testEmail][0].ReplacedAt = fsm.Null
	res := Check(in)
	if res.LostAcknowledgedWrites != 1 || res.Valid() || !slices.Contains(anomalyKinds(res), AnomalyLostAckWrite) {
		t.Fatalf("record gone: %d lost, verdict %s, %v; want 1, invalid, %s", res.LostAcknowledgedWrites, res.Verdict,
			anomalyKinds(res), AnomalyLostAckWrite)
	}
	// An update whose generation went back: the record is there, older.
	in = goodRun()
	in.Final.Records[otherEmail][0].Generation = 999
	if n, _ := countLostAcknowledged(in); n != 1 {
		t.Fatalf("generation went back: %d lost, want 1", n)
	}
	// Users whose final read failed are not judged here.
	in = goodRun()
	delete(in.Final.Records, testEmail)
	if n, _ := countLostAcknowledged(in); n != 0 {
		t.Fatalf("unread user: %d lost, want 0", n)
	}
}

// A bounded stale read must show what was acknowledged longer than its
// bound ago; within the bound (and slack) an older answer is fine, and an
// unbounded stale read is judged only by the existing state check.
func TestCheckJudgesBoundedStaleReads(t *testing.T) {
	staleRead := func(in *CheckInput, bound time.Duration, call int, out UserOutput) {
		in.History = append(in.History, Op{ID: len(in.History), Client: 9, Member: "n3", Kind: OpGetStale, Email: testEmail,
			Input: UserInput{Kind: OpGetStale, Email: testEmail}, Output: out, Outcome: OutcomeOK, MaxStaleness: bound,
			Call: time.Duration(call) * time.Millisecond, Return: time.Duration(call+1) * time.Millisecond})
	}
	older := found(user(7, 1, 1000, 1000, "0a00"))
	cases := []struct {
		name  string
		bound time.Duration
		call  int // ms; the login that made uid 9 returned at 5 ms
		out   UserOutput
		bad   bool
	}{
		{"bounded, current", time.Second, 5000, found(user(9, 1, 2001, 2000, "0a01", "0a00")), false},
		{"bounded, older within the bound", time.Second, 900, older, false},
		{"bounded, older beyond the bound", time.Second, 5000, older, true},
		{"bounded, not found beyond the bound", time.Second, 5000, failed(fsm.StatusNotFound), true},
		{"unbounded, older", 0, 5000, older, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := goodRun()
			staleRead(&in, c.bound, c.call, c.out)
			got := checkBoundedStaleReads(in.History)
			if (len(got) > 0) != c.bad {
				t.Fatalf("anomalies %+v, want violation %v", got, c.bad)
			}
			if c.bad && (got[0].Kind != AnomalyStaleBeyondBound || !slices.Contains(anomalyKinds(Check(in)), AnomalyStaleBeyondBound)) {
				t.Fatalf("anomaly %+v not reported by Check as %s", got[0], AnomalyStaleBeyondBound)
			}
		})
	}
}
