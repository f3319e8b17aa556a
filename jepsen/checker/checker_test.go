package checker

import (
	"slices"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
)

// goodRun is histtest.GoodRun as the checker's input.
func goodRun() CheckInput {
	r := histtest.GoodRun()
	return CheckInput{
		History:     r.Ops,
		Emails:      []string{histtest.Email, histtest.OtherEmail},
		Final:       FinalState{Nodes: r.Nodes, Records: r.Records},
		MaxCapacity: r.MaxCapacity,
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
		{"two live records", func(in *CheckInput) { in.Final.Records[histtest.Email][0].ReplacedAt = fsm.Null }, AnomalyMultipleLive},
		{"replaced before it was created", func(in *CheckInput) { in.Final.Records[histtest.Email][0].ReplacedAt = 5 }, AnomalyReplacedAt},
		{"retired user live again", func(in *CheckInput) {
			retired := histtest.User(8, 2, fsm.MaxGeneration, 1000, "0b00")
			retired.Replaced = true
			in.History = append(in.History, history.Op{ID: len(in.History), Kind: history.OpRetire, Email: histtest.OtherEmail,
				Input: history.UserInput{Kind: history.OpRetire, Email: histtest.OtherEmail}, Output: histtest.Found(retired), Outcome: history.OutcomeOK,
				Call: 8 * time.Millisecond, Return: 9 * time.Millisecond})
		}, AnomalyRetiredLive},
		{"uid stored twice", func(in *CheckInput) {
			in.Final.Records[histtest.OtherEmail][0].UID = 7
		}, AnomalyUIDReused},
		{"uids out of order", func(in *CheckInput) {
			in.Final.Records[histtest.Email][1].CreatedAt = 5
		}, AnomalyUIDOrder},
		{"load differs from records", func(in *CheckInput) { in.Final.Nodes[1].CurrentLoad = 2 }, AnomalyLoadMismatch},
		{"available negative", func(in *CheckInput) { in.Final.Nodes[0].Available = -1 }, AnomalyNegativeAvailable},
		{"more users than capacity", func(in *CheckInput) {
			in.Final.Records[histtest.OtherEmail][0].NodeID = 1
			in.Final.Nodes[0].CurrentLoad, in.Final.Nodes[1].CurrentLoad = 3, 0
			in.History[1].Output.User.NodeID = 1
		}, AnomalyOverCapacity},
		{"generation decreases across records", func(in *CheckInput) {
			in.Final.Records[histtest.Email][0].Generation = 3000
		}, AnomalyDecrease},
		{"acknowledged record missing", func(in *CheckInput) {
			in.Final.Records[histtest.Email] = in.Final.Records[histtest.Email][1:]
			in.Final.Nodes[0].CurrentLoad = 1
		}, AnomalyLostWrite},
		{"record on a node that does not exist", func(in *CheckInput) {
			in.Final.Nodes = in.Final.Nodes[:1]
		}, AnomalyUnknownNode},
		{"records could not be read", func(in *CheckInput) { delete(in.Final.Records, histtest.OtherEmail) }, AnomalyFinalReadFailed},
	})
}

func TestCheckReportsUIDAnsweredForTwoUsers(t *testing.T) {
	in := goodRun()
	in.History[1].Output.User.UID = 7 // histtest.OtherEmail told it got uid 7 as well
	res := Check(in)
	if !slices.Contains(anomalyKinds(res), AnomalyUIDReused) {
		t.Fatalf("want uid-reused, got %v", res.Anomalies)
	}
}

func TestCheckNonLinearizableNamesTheUser(t *testing.T) {
	in := goodRun()
	// A linearizable read after the key change sees the first record again.
	in.History = append(in.History, history.Op{ID: len(in.History), Kind: history.OpGet, Email: histtest.Email, Input: history.UserInput{Kind: history.OpGet, Email: histtest.Email},
		Outcome: history.OutcomeOK, Output: histtest.Found(histtest.User(7, 1, 1000, 1000, "0a00")), Call: 8 * time.Millisecond, Return: 9 * time.Millisecond})
	res := Check(in)
	if res.Linearizable != "Illegal" || res.Verdict != VerdictInvalid {
		t.Fatalf("linearizable %s verdict %s", res.Linearizable, res.Verdict)
	}
	a := res.Anomalies[0]
	if a.Kind != AnomalyNotLinearizable || a.Email != histtest.Email || !slices.Contains(a.OpIDs, len(in.History)-1) {
		t.Fatalf("anomaly %+v should name %s and op %d", a, histtest.Email, len(in.History)-1)
	}
}

func staleRead(h *histtest.Builder, out history.UserOutput, call, ret int) {
	h.Add(history.OutcomeOK, history.UserInput{Kind: history.OpGetStale}, out, call, ret)
}

func TestCheckStaleReads(t *testing.T) {
	t.Run("an old state is fine", func(t *testing.T) {
		in := goodRun()
		h := &histtest.Builder{Ops: in.History}
		staleRead(h, histtest.Found(histtest.User(7, 1, 1000, 1000, "0a00")), 20, 21)
		staleRead(h, histtest.Failed(fsm.StatusNotFound), 22, 23)
		in.History = h.Ops
		if res := Check(in); !res.Valid() || res.StaleReads != "Ok" {
			t.Fatalf("verdict %s, stale reads %s, %+v", res.Verdict, res.StaleReads, res.Anomalies)
		}
	})
	t.Run("a state that never existed is not", func(t *testing.T) {
		in := goodRun()
		h := &histtest.Builder{Ops: in.History}
		staleRead(h, histtest.Found(histtest.User(7, 1, 1500, 1000, "0a00")), 20, 21) // generation 1500 was never written
		in.History = h.Ops
		res := Check(in)
		if res.StaleReads != "Illegal" || !slices.Contains(anomalyKinds(res), AnomalyStaleReadNotState) {
			t.Fatalf("stale reads %s, anomalies %+v", res.StaleReads, res.Anomalies)
		}
		if got := res.Anomalies[0].OpIDs; !slices.Equal(got, []int{len(h.Ops) - 1}) {
			t.Fatalf("culprits %v, want the bad read", got)
		}
	})
	t.Run("a state from the future is not", func(t *testing.T) {
		in := goodRun()
		h := &histtest.Builder{Ops: in.History}
		// Returned before the key change was even sent.
		staleRead(h, histtest.Found(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), 1, 2)
		in.History = h.Ops
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
	in.Final.Records[histtest.Email] = in.Final.Records[histtest.Email][:1]
	in.Final.Records[histtest.Email][0].ReplacedAt = fsm.Null
	res := Check(in)
	if res.LostAcknowledgedWrites != 1 || res.Valid() || !slices.Contains(anomalyKinds(res), AnomalyLostAckWrite) {
		t.Fatalf("record gone: %d lost, verdict %s, %v; want 1, invalid, %s", res.LostAcknowledgedWrites, res.Verdict,
			anomalyKinds(res), AnomalyLostAckWrite)
	}
	// An update whose generation went back: the record is there, older.
	in = goodRun()
	in.Final.Records[histtest.OtherEmail][0].Generation = 999
	if n, _ := countLostAcknowledged(in); n != 1 {
		t.Fatalf("generation went back: %d lost, want 1", n)
	}
	// Users whose final read failed are not judged here.
	in = goodRun()
	delete(in.Final.Records, histtest.Email)
	if n, _ := countLostAcknowledged(in); n != 0 {
		t.Fatalf("unread user: %d lost, want 0", n)
	}
}

// A bounded stale read must show what was acknowledged longer than its
// bound ago; within the bound (and slack) an older answer is fine, and an
// unbounded stale read is judged only by the existing state check.
func TestCheckJudgesBoundedStaleReads(t *testing.T) {
	staleRead := func(in *CheckInput, bound time.Duration, call int, out history.UserOutput) {
		in.History = append(in.History, history.Op{ID: len(in.History), Client: 9, Member: "n3", Kind: history.OpGetStale, Email: histtest.Email,
			Input: history.UserInput{Kind: history.OpGetStale, Email: histtest.Email}, Output: out, Outcome: history.OutcomeOK, MaxStaleness: bound,
			Call: time.Duration(call) * time.Millisecond, Return: time.Duration(call+1) * time.Millisecond})
	}
	older := histtest.Found(histtest.User(7, 1, 1000, 1000, "0a00"))
	cases := []struct {
		name  string
		bound time.Duration
		call  int // ms; the login that made uid 9 returned at 5 ms
		out   history.UserOutput
		bad   bool
	}{
		{"bounded, current", time.Second, 5000, histtest.Found(histtest.User(9, 1, 2001, 2000, "0a01", "0a00")), false},
		{"bounded, older within the bound", time.Second, 900, older, false},
		{"bounded, older beyond the bound", time.Second, 5000, older, true},
		{"bounded, not found beyond the bound", time.Second, 5000, histtest.Failed(fsm.StatusNotFound), true},
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
