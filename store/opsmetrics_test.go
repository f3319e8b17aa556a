package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wimms-dev/wimms/fsm"
)

func TestOutcomeMetricsCountDecisionsNotReplays(t *testing.T) {
	m := newOutcomeMetrics()
	const ts = 1_700_000_000_000
	newUser := fsm.User{Record: fsm.Record{CreatedAt: ts, Generation: 1}, FirstSeenAt: ts}
	oldUser := fsm.User{Record: fsm.Record{CreatedAt: ts, Generation: 1}, FirstSeenAt: ts - 1000}
	retired := fsm.User{Record: fsm.Record{CreatedAt: 5, Generation: fsm.MaxGeneration}, FirstSeenAt: 5}
	login := fsm.Command{Op: fsm.OpLogin, Service: "s", TS: ts}
	alloc := fsm.Command{Op: fsm.OpAllocate, Service: "s", TS: ts}
	m.observe(
		[]fsm.Command{login, login, login, login, login, login, alloc, alloc, alloc, alloc, {Op: fsm.OpRetire, Service: "s"}},
		[]fsm.Result{
			{User: &newUser},
			{User: &newUser}, // same user, same millisecond, existed already: not new
			{User: &retired},
			{Err: &fsm.Error{Status: fsm.StatusInvalidClientState}},
			{User: &oldUser, Repeated: true}, // an idempotent replay decided nothing
			{Err: &fsm.Error{Status: fsm.StatusNewUsersDisabled}},
			{Created: true, User: &newUser},
			{User: &oldUser},
			{Err: &fsm.Error{Status: fsm.StatusNoNodeAvailable}},
			{Created: true, User: &newUser, Repeated: true},
			{User: &retired},
		},
		[]bool{true, false, false, false, false, true})
	for outcome, want := range map[string]float64{"new-user": 1, "ok": 1, "retired": 1, "invalid-client-state": 1, "new-users-disabled": 1} {
		if got := testutil.ToFloat64(m.logins.WithLabelValues("s", outcome)); got != want {
			t.Errorf("logins %s = %v, want %v", outcome, got, want)
		}
	}
	for result, want := range map[string]float64{"created": 1, "existing": 1, "no-node-available": 1} {
		if got := testutil.ToFloat64(m.allocations.WithLabelValues("s", result)); got != want {
			t.Errorf("allocations %s = %v, want %v", result, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.logins) + testutil.CollectAndCount(m.allocations); n != 8 {
		t.Errorf("%d series, want 8 (no series for replays or other ops)", n)
	}
}

// stateAfter is a state machine that has applied cmds, each of which must
// succeed.
func stateAfter(t *testing.T, cmds ...fsm.Command) *fsm.FSM {
	t.Helper()
	f := fsm.New(fsm.Options{})
	for _, cmd := range cmds {
		if res := f.Apply(cmd); res.Err != nil {
			t.Fatalf("%+v: %v", cmd, res.Err)
		}
	}
	return f
}

// The first login of a user the state does not hold yet, and only that one
// in a batch, is the login that creates it.
func TestUnknownLoginUsers(t *testing.T) {
	f := stateAfter(t,
		fsm.Command{Op: fsm.OpPutService, Service: "s-1.0", Pattern: fsm.SomeString("{node}/{uid}")},
		fsm.Command{Op: fsm.OpAddNode, Service: "s-1.0", NodeURL: "https://a", Capacity: fsm.SomeInt64(10)},
		fsm.Command{Op: fsm.OpAllocate, Service: "s-1.0", Email: "old@x", TS: 1},
	)
	login := func(email string) fsm.Command { return fsm.Command{Op: fsm.OpLogin, Service: "s-1.0", Email: email} }
	got := newOutcomeMetrics().unknownLoginUsers(f.View(), []fsm.Command{
		login("old@x"), login("new@x"), {Op: fsm.OpAllocate, Service: "s-1.0", Email: "other@x"}, login("new@x")})
	if want := []bool{false, true, false, false}; !slices.Equal(got, want) {
		t.Fatalf("unknownLoginUsers = %v, want %v", got, want)
	}
	if got := newOutcomeMetrics().unknownLoginUsers(f.View(), []fsm.Command{login("old@x")}); got != nil {
		t.Fatalf("a batch without new users: %v, want nil", got)
	}
}

func TestStateCollectorReadsTheView(t *testing.T) {
	f := stateAfter(t,
		fsm.Command{Op: fsm.OpPutService, Service: "s-1.0", Pattern: fsm.SomeString("{node}/{uid}")},
		fsm.Command{Op: fsm.OpAddNode, Service: "s-1.0", NodeURL: "https://a", Capacity: fsm.SomeInt64(10)},
		fsm.Command{Op: fsm.OpAddNode, Service: "s-1.0", NodeURL: "https://b", Capacity: fsm.SomeInt64(4), Backoff: fsm.SomeBool(true)},
		fsm.Command{Op: fsm.OpAllocate, Service: "s-1.0", Email: "x@y.z", TS: 1},
	)
	c := newStateCollector(func() fsm.Reader { return f.View() })
	want := `
# HELP wimms_node_current_load Records assigned to the node (current_load of SPEC §1).
# TYPE wimms_node_current_load gauge
wimms_node_current_load{node="https://a",service="s-1.0"} 1
wimms_node_current_load{node="https://b",service="s-1.0"} 0
# HELP wimms_node_backoff 1 while the node is marked backoff: it gets no new users.
# TYPE wimms_node_backoff gauge
wimms_node_backoff{node="https://a",service="s-1.0"} 0
wimms_node_backoff{node="https://b",service="s-1.0"} 1
# HELP wimms_service_users Live users (current records) of the service.
# TYPE wimms_service_users gauge
wimms_service_users{service="s-1.0"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"wimms_node_current_load", "wimms_node_backoff", "wimms_service_users"); err != nil {
		t.Fatal(err)
	}
}
