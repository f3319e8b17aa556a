package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const svcA = "sync-1.5"
const svcB = "sync-1.1"

func TestAllocateLowestLoadThenLowestID(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	n1 := h.node(svcA, "https://n1", 10)
	n2 := h.node(svcA, "https://n2", 10)
	n3 := h.node(svcA, "https://n3", 10)
	want := []int64{n1.ID, n2.ID, n3.ID, n1.ID, n2.ID}
	for i, id := range want {
		u := h.ok(allocate(svcA, string(rune('a'+i))+"@x")).User
		if u.NodeID != id {
			t.Fatalf("allocation %d went to node %d, want %d", i, u.NodeID, id)
		}
	}
	u := h.user(svcA, "a@x")
	if u.APIEndpoint != "https://n1/1.5/"+itoa(u.UID) || u.NodeURL != "https://n1" {
		t.Fatalf("endpoint %q node %q", u.APIEndpoint, u.NodeURL)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestAllocateComparesFractionsExactly(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	// 1/3 vs 2/7: 2/7 is lower.
	third := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://third", Capacity: SomeInt64(3), CurrentLoad: SomeInt64(1), Available: SomeInt64(5)}).Node
	twoSevenths := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://27", Capacity: SomeInt64(7), CurrentLoad: SomeInt64(2), Available: SomeInt64(5)}).Node
	if got := h.ok(allocate(svcA, "a@x")).User.NodeID; got != twoSevenths.ID {
		t.Fatalf("2/7 vs 1/3: got node %d, want %d", got, twoSevenths.ID)
	}
	// Now 3/7 > 1/3.
	if got := h.ok(allocate(svcA, "b@x")).User.NodeID; got != third.ID {
		t.Fatalf("3/7 vs 1/3: got node %d, want %d", got, third.ID)
	}

	// Fractions that float64 cannot tell apart: (2^62-1)/2^62 and
	// (2^62-2)/(2^62-1) both round to 1.0, but the second is lower.
	h2 := newHarness(t, Options{})
	h2.service(svcA)
	const p62 = int64(1) << 62
	h2.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://big1", Capacity: SomeInt64(p62), CurrentLoad: SomeInt64(p62 - 1), Available: SomeInt64(1)})
	lower := h2.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://big2", Capacity: SomeInt64(p62 - 1), CurrentLoad: SomeInt64(p62 - 2), Available: SomeInt64(1)}).Node
	if got := h2.ok(allocate(svcA, "a@x")).User.NodeID; got != lower.ID {
		t.Fatalf("near-1 fractions: got node %d, want %d", got, lower.ID)
	}
}

func TestDefaultAvailableIsExactDecimal(t *testing.T) {
	cases := []struct {
		rate     string
		capacity int64
		want     int64
	}{
		{"0.1", 100, 10},
		{"0.07", 100, 7},  // float64: 7.000000000000001 → 8
		{"0.55", 100, 55}, // float64: 55.00000000000001 → 56
		{"0.1", 101, 11},
		{"0.000000001", 1, 1},
		{"1", 9, 9},
		{"0.5", 0, 0},
		{"1.000000000", 1 << 62, 1 << 62},
		{"0.999999999", 9223372036854775807, 9223372027631403771},
	}
	for _, c := range cases {
		h := newHarness(t, Options{})
		h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString(c.rate)})
		if got := h.node(svcA, "https://n", c.capacity).Available; got != c.want {
			t.Errorf("capacity %d × %s: available %d, want %d", c.capacity, c.rate, got, c.want)
		}
	}
}

func TestCapacityRelease(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("0.5")})
	// Released: min(ceil(4 × 0.5), 4 − 0) = 2, then one taken.
	a := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://a", Capacity: SomeInt64(4), Available: SomeInt64(0)}).Node
	h.ok(allocate(svcA, "u1@x"))
	if nd := h.getNode(svcA, a.ID); nd.Available != 1 || nd.CurrentLoad != 1 {
		t.Fatalf("after release+allocate: %+v", nd)
	}
	h.ok(allocate(svcA, "u2@x")) // uses the last released slot
	// Released again: min(2, 4 − 2) = 2.
	h.ok(allocate(svcA, "u3@x"))
	if nd := h.getNode(svcA, a.ID); nd.Available != 1 || nd.CurrentLoad != 3 {
		t.Fatalf("second release: %+v", nd)
	}
	h.ok(allocate(svcA, "u4@x"))
	// Full: nothing to release.
	h.fails(allocate(svcA, "u5@x"), StatusNoNodeAvailable, "")

	// min with capacity − current_load.
	h2 := newHarness(t, Options{})
	h2.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("0.5")})
	b := h2.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://b", Capacity: SomeInt64(10), CurrentLoad: SomeInt64(9), Available: SomeInt64(0)}).Node
	h2.ok(allocate(svcA, "u1@x"))
	if nd := h2.getNode(svcA, b.ID); nd.Available != 0 || nd.CurrentLoad != 10 {
		t.Fatalf("release capped at capacity − load: %+v", nd)
	}
	h2.fails(allocate(svcA, "u2@x"), StatusNoNodeAvailable, "")
}

func TestReleaseRulesForDownedAndBackoff(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("0.1")})
	back := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://back", Capacity: SomeInt64(100), Available: SomeInt64(0), Backoff: SomeBool(true)}).Node
	down := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://down", Capacity: SomeInt64(100), Available: SomeInt64(0), Downed: SomeBool(true)}).Node
	// Release reaches the backoff node only, which is no candidate: fail,
	// and the release is not kept (a failing command changes nothing).
	h.fails(allocate(svcA, "u@x"), StatusNoNodeAvailable, "")
	if nd := h.getNode(svcA, back.ID); nd.Available != 0 {
		t.Fatalf("failed allocation kept a release: %+v", nd)
	}
	ok := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://ok", Capacity: SomeInt64(100), Available: SomeInt64(0)}).Node
	if got := h.ok(allocate(svcA, "u@x")).User.NodeID; got != ok.ID {
		t.Fatalf("allocated to %d, want %d", got, ok.ID)
	}
	if nd := h.getNode(svcA, back.ID); nd.Available != 10 {
		t.Fatalf("backoff node must be released to: %+v", nd)
	}
	if nd := h.getNode(svcA, down.ID); nd.Available != 0 {
		t.Fatalf("downed node must not be released to: %+v", nd)
	}
	if nd := h.getNode(svcA, ok.ID); nd.Available != 9 || nd.CurrentLoad != 1 {
		t.Fatalf("chosen node counters: %+v", nd)
	}
}

func TestDownedAndBackoffAreNotCandidates(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://down", Capacity: SomeInt64(10), Downed: SomeBool(true)})
	h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://back", Capacity: SomeInt64(10), Backoff: SomeBool(true)})
	only := h.node(svcA, "https://only", 1)
	if got := h.ok(allocate(svcA, "a@x")).User.NodeID; got != only.ID {
		t.Fatalf("allocated to %d, want %d", got, only.ID)
	}
	h.fails(allocate(svcA, "b@x"), StatusNoNodeAvailable, "")
	// Setting downed never moves anyone.
	h.ok(Command{Op: OpUpdateNode, Service: svcA, NodeID: only.ID, Downed: SomeBool(true)})
	if u := h.user(svcA, "a@x"); u.NodeID != only.ID || u.ReplacedAt != Null || !u.NodeDowned {
		t.Fatalf("downing moved the user: %+v", u)
	}
}

func TestAllocateExplicitNode(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	full := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://full", Capacity: SomeInt64(0), Downed: SomeBool(true)}).Node
	u := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Node: SomeString("https://full"), Generation: SomeInt64(3), ClientState: SomeString("aa"), KeysChangedAt: SomeInt64(2)}).User
	if u.NodeID != full.ID || u.Generation != 3 || u.ClientState != "aa" || u.KeysChangedAt != 2 {
		t.Fatalf("explicit allocation: %+v", u)
	}
	if nd := h.getNode(svcA, full.ID); nd.CurrentLoad != 1 || nd.Available != 0 {
		t.Fatalf("explicit node counters: %+v", nd)
	}
	h.fails(Command{Op: OpAllocate, Service: svcA, Email: "b@x", Node: SomeString("https://nope")}, StatusNotFound, "node")
	h.fails(allocate("nope-1", "b@x"), StatusNotFound, "service")
}

func TestAllocateGetOrCreate(t *testing.T) {
	h := oneNodeHarness(t)
	first := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(4)})
	if !first.Created || first.User.KeysChangedAt != Null || first.User.ReplacedAt != Null || first.User.FirstSeenAt != t0 || first.User.CreatedAt != t0 {
		t.Fatalf("created: %+v", first)
	}
	h.tick(10)
	again := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(9)})
	if again.Created || !reflect.DeepEqual(again.User, first.User) {
		t.Fatalf("live user must be returned unchanged: %+v", again.User)
	}
}

func TestReallocationCarriesStoredFields(t *testing.T) {
	for _, how := range []string{"unassign", "remove", "replace"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.service(svcA)
			n1 := h.node(svcA, "https://n1", 10)
			n2 := h.node(svcA, "https://n2", 10)
			orig := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(5), KeysChangedAt: SomeInt64(3), ClientState: SomeString("aa")}).User
			if orig.NodeID != n1.ID {
				t.Fatalf("setup: on %d", orig.NodeID)
			}
			h.tick(100)
			switch how {
			case "unassign":
				if n := h.ok(Command{Op: OpUnassignNode, Service: svcA, NodeID: n1.ID}).Count; n != 1 {
					t.Fatalf("unassigned %d", n)
				}
				if nd := h.getNode(svcA, n1.ID); nd.CurrentLoad != 1 {
					t.Fatalf("unassign must not move counters: %+v", nd)
				}
			case "remove":
				if n := h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n1.ID}).Count; n != 1 {
					t.Fatalf("removed %d", n)
				}
				u := h.user(svcA, "a@x")
				if u.NodeID != n1.ID || u.NodeURL != "" || u.APIEndpoint != "" || u.ReplacedAt != t0+100 {
					t.Fatalf("record on a removed node: %+v", u)
				}
			case "replace":
				if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x"}).Count; n != 1 {
					t.Fatalf("replaced %d", n)
				}
			}
			if u := h.user(svcA, "a@x"); u.ReplacedAt != t0+100 {
				t.Fatalf("replaced_at %d", u.ReplacedAt)
			}
			h.tick(100)
			res := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(50), ClientState: SomeString("bb")})
			u := res.User
			if !res.Created || u.UID == orig.UID || u.Generation != 5 || u.KeysChangedAt != 3 || u.ClientState != "aa" || u.CreatedAt != t0+200 {
				t.Fatalf("re-allocated user: %+v", res)
			}
			if how == "remove" && u.NodeID != n2.ID {
				t.Fatalf("re-allocated to removed node %d", u.NodeID)
			}
			rs := h.records(svcA, "a@x")
			if len(rs) != 2 || rs[0].UID != orig.UID || rs[0].ReplacedAt != t0+100 || rs[1].ReplacedAt != Null {
				t.Fatalf("records: %+v", rs)
			}
			if u.FirstSeenAt != t0 {
				t.Fatalf("first_seen_at %d", u.FirstSeenAt)
			}
		})
	}
}

func TestUnassignOverwritesReplacedAtOfAllRecordsOnNode(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	n1 := h.node(svcA, "https://n1", 10)
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString("aa")})
	h.tick(10)
	h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("bb")})
	h.tick(10)
	h.ok(allocate(svcA, "b@x"))
	h.tick(10)
	if n := h.ok(Command{Op: OpUnassignNode, Service: svcA, NodeID: n1.ID}).Count; n != 3 {
		t.Fatalf("unassigned %d records, want 3", n)
	}
	for _, rs := range [][]Record{h.records(svcA, "a@x"), h.records(svcA, "b@x")} {
		for _, r := range rs {
			if r.ReplacedAt != t0+30 {
				t.Fatalf("record %d replaced_at %d, want %d", r.UID, r.ReplacedAt, t0+30)
			}
		}
	}
	h.fails(Command{Op: OpUnassignNode, Service: svcA, NodeID: 999}, StatusNotFound, "node")
}

func TestRetiredUserIsNeverReallocated(t *testing.T) {
	h := oneNodeHarness(t)
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(5)})
	h.tick(5)
	ret := h.ok(Command{Op: OpRetire, Service: svcA, Email: "a@x"}).User
	if ret.Generation != MaxGeneration || ret.ReplacedAt != t0+5 {
		t.Fatalf("retired: %+v", ret)
	}
	h.tick(5)
	again := h.ok(allocate(svcA, "a@x"))
	if again.Created || !reflect.DeepEqual(again.User, ret) {
		t.Fatalf("retired user re-allocated: %+v", again)
	}
	// Retiring again changes nothing.
	if u := h.ok(Command{Op: OpRetire, Service: svcA, Email: "a@x"}).User; !reflect.DeepEqual(u, ret) {
		t.Fatalf("second retire: %+v", u)
	}
	// Update cannot revive it either.
	if u := h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("cc")}).User; !reflect.DeepEqual(u, ret) {
		t.Fatalf("update of retired user: %+v", u)
	}
	// Login: a generation below MAX is refused; none returns it.
	h.fails(login(svcA, "a@x", 6, 0, ""), StatusInvalidGeneration, "generation")
	res := h.ok(login(svcA, "a@x", 0, 0, "zz"))
	if !reflect.DeepEqual(res.User, ret) || res.FxaKid != "9223372036854775807-" {
		t.Fatalf("login of retired user: %+v", res)
	}
	if n := len(h.records(svcA, "a@x")); n != 1 {
		t.Fatalf("%d records", n)
	}
	h.fails(Command{Op: OpRetire, Service: svcA, Email: "nobody@x"}, StatusNotFound, "email")
}

func TestUpdateUser(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	n1 := h.node(svcA, "https://n1", 10)
	n2 := h.node(svcA, "https://n2", 10)
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(5), ClientState: SomeString("aa")})

	// Max merge; lower values are ignored, not errors.
	u := h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", Generation: SomeInt64(3), KeysChangedAt: SomeInt64(4)}).User
	if u.Generation != 5 || u.KeysChangedAt != 4 || len(h.records(svcA, "a@x")) != 1 {
		t.Fatalf("merge: %+v", u)
	}
	u = h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", Generation: SomeInt64(7), KeysChangedAt: SomeInt64(2), ClientState: SomeString("aa")}).User
	if u.Generation != 7 || u.KeysChangedAt != 4 || len(h.records(svcA, "a@x")) != 1 {
		t.Fatalf("merge with same client state: %+v", u)
	}

	// New client state: new record on the same node, load +1 only.
	before := h.getNode(svcA, n1.ID)
	h.tick(10)
	u = h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("bb")}).User
	after := h.getNode(svcA, n1.ID)
	if u.NodeID != n1.ID || u.ClientState != "bb" || u.Generation != 7 || u.KeysChangedAt != 4 || u.CreatedAt != t0+10 ||
		!reflect.DeepEqual(u.OldClientStates, []string{"aa"}) {
		t.Fatalf("new client state: %+v", u)
	}
	if after.CurrentLoad != before.CurrentLoad+1 || after.Available != before.Available {
		t.Fatalf("counters %+v -> %+v", before, after)
	}
	if rs := h.records(svcA, "a@x"); len(rs) != 2 || rs[0].ReplacedAt != t0+10 {
		t.Fatalf("previous record: %+v", rs)
	}

	// An old client state is refused.
	e := h.fails(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("aa"), Generation: SomeInt64(100)}, StatusInvalidClientState, "client_state")
	if e.Reason != "stale value" {
		t.Fatalf("reason %q", e.Reason)
	}

	// A node given: new record there, load +1, available unchanged.
	b2 := h.getNode(svcA, n2.ID)
	u = h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", Node: SomeString("https://n2")}).User
	if u.NodeID != n2.ID || u.ClientState != "bb" || !reflect.DeepEqual(u.OldClientStates, []string{"aa"}) {
		t.Fatalf("moved: %+v", u)
	}
	if a2 := h.getNode(svcA, n2.ID); a2.CurrentLoad != b2.CurrentLoad+1 || a2.Available != b2.Available {
		t.Fatalf("n2 counters %+v -> %+v", b2, a2)
	}
	h.fails(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", Node: SomeString("https://n9")}, StatusNotFound, "node")
	h.fails(Command{Op: OpUpdateUser, Service: svcA, Email: "b@x", Generation: SomeInt64(1)}, StatusNotFound, "email")

	// Current node removed: the new record goes through §3.
	h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n2.ID})
	b1 := h.getNode(svcA, n1.ID)
	u = h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("cc")}).User
	if u.NodeID != n1.ID || u.ClientState != "cc" || !reflect.DeepEqual(u.OldClientStates, []string{"bb", "aa"}) {
		t.Fatalf("after removal: %+v", u)
	}
	if a1 := h.getNode(svcA, n1.ID); a1.CurrentLoad != b1.CurrentLoad+1 || a1.Available != b1.Available-1 {
		t.Fatalf("§3 counters %+v -> %+v", b1, a1)
	}
}

// loginUser sets up a user with generation 10, keys_changed_at 10, client
// state "aa", and an older record with client state "99".
// oneNodeHarness is a machine with service svcA and one node,
// https://n1, of capacity 10.
func oneNodeHarness(t tb) *harness {
	t.Helper()
	h := newHarness(t, Options{})
	h.service(svcA)
	h.node(svcA, "https://n1", 10)
	return h
}

// twoServiceHarness is a machine with services svcA and svcB, each with
// one node of capacity 10: https://n in svcA, https://m in svcB.
func twoServiceHarness(t tb) *harness {
	t.Helper()
	h := newHarness(t, Options{})
	h.service(svcA)
	h.service(svcB)
	h.node(svcA, "https://n", 10)
	h.node(svcB, "https://m", 10)
	return h
}

func loginUser(t *testing.T) *harness {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.node(svcA, "https://n1", 100)
	h.ok(login(svcA, "a@x", 5, 5, "99"))
	h.tick(10)
	u := h.ok(login(svcA, "a@x", 10, 10, "aa")).User
	if u.Generation != 10 || u.KeysChangedAt != 10 || u.ClientState != "aa" || !reflect.DeepEqual(u.OldClientStates, []string{"99"}) {
		t.Fatalf("setup: %+v", u)
	}
	h.tick(10)
	return h
}

func TestLoginChecksInOrder(t *testing.T) {
	// Stored: generation 10, keys_changed_at 10, client state "aa", old
	// state "99". Each request's first failing check is the named one; the
	// fixed request differs only in the offending value and succeeds.
	cases := []struct {
		name          string
		bad, fixed    Command
		status, field string
		reason        string
	}{
		{"a keys above generation", login(svcA, "a@x", 15, 20, "aa"), login(svcA, "a@x", 20, 20, "aa"), StatusInvalidKeysChangedAt, "keys_changed_at", ""},
		{"b empty client state", login(svcA, "a@x", 10, 10, ""), login(svcA, "a@x", 10, 10, "aa"), StatusInvalidClientState, "client_state", "empty string"},
		{"c stale client state", login(svcA, "a@x", 11, 11, "99"), login(svcA, "a@x", 11, 11, "bb"), StatusInvalidClientState, "client_state", "stale value"},
		{"d new state same generation", login(svcA, "a@x", 10, 0, "bb"), login(svcA, "a@x", 11, 11, "bb"), StatusInvalidClientState, "client_state", "new value with no generation change"},
		{"e new state same keys", login(svcA, "a@x", 11, 10, "bb"), login(svcA, "a@x", 11, 11, "bb"), StatusInvalidClientState, "client_state", "new value with no keys_changed_at change"},
		{"f generation below", login(svcA, "a@x", 9, 10, "aa"), login(svcA, "a@x", 10, 10, "aa"), StatusInvalidGeneration, "generation", ""},
		{"g keys absent", login(svcA, "a@x", 10, 0, "aa"), login(svcA, "a@x", 10, 10, "aa"), StatusInvalidKeysChangedAt, "keys_changed_at", ""},
		{"g keys below", login(svcA, "a@x", 10, 9, "aa"), login(svcA, "a@x", 10, 10, "aa"), StatusInvalidKeysChangedAt, "keys_changed_at", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := loginUser(t)
			e := h.fails(c.bad, c.status, c.field)
			if e.Reason != c.reason {
				t.Fatalf("reason %q, want %q", e.Reason, c.reason)
			}
			h.ok(c.fixed)
		})
	}
}

func TestLoginAbsentValuesNeverFailAComparison(t *testing.T) {
	h := loginUser(t)
	// Generation absent: d cannot fail; keys above: new record.
	u := h.ok(login(svcA, "a@x", 0, 11, "bb")).User
	if u.ClientState != "bb" || u.KeysChangedAt != 11 || u.Generation != 11 {
		t.Fatalf("%+v", u)
	}
	// Stored keys_changed_at null: no keys check applies.
	h2 := newHarness(t, Options{})
	h2.service(svcA)
	h2.node(svcA, "https://n1", 10)
	h2.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(3), ClientState: SomeString("aa")})
	u = h2.ok(login(svcA, "a@x", 0, 0, "bb")).User
	if u.ClientState != "bb" || u.Generation != 3 || u.KeysChangedAt != Null {
		t.Fatalf("%+v", u)
	}
}

func TestLoginApply(t *testing.T) {
	t.Run("given generation wins", func(t *testing.T) {
		h := loginUser(t)
		u := h.ok(login(svcA, "a@x", 30, 12, "aa")).User
		if u.Generation != 30 || u.KeysChangedAt != 12 || len(h.records(svcA, "a@x")) != 2 {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("keys above both become generation", func(t *testing.T) {
		h := loginUser(t)
		u := h.ok(login(svcA, "a@x", 0, 12, "aa")).User
		if u.Generation != 12 || u.KeysChangedAt != 12 {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("keys below stored generation leave it", func(t *testing.T) {
		h := loginUser(t)
		h.ok(login(svcA, "a@x", 20, 10, "aa"))
		u := h.ok(login(svcA, "a@x", 0, 15, "aa")).User
		if u.Generation != 20 || u.KeysChangedAt != 15 {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("null stored keys counts as below", func(t *testing.T) {
		h := oneNodeHarness(t)
		h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x"})
		u := h.ok(login(svcA, "a@x", 0, 5, "")).User
		if u.Generation != 5 || u.KeysChangedAt != 5 {
			t.Fatalf("%+v", u)
		}
	})
	t.Run("new user gets given fields, keys 0 absent", func(t *testing.T) {
		h := oneNodeHarness(t)
		res := h.ok(login(svcA, "a@x", 7, 0, "0f"))
		if res.User.Generation != 7 || res.User.KeysChangedAt != Null || res.User.ClientState != "0f" || res.FxaKid != "0000000000007-Dw" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("client state change makes a record on the same node", func(t *testing.T) {
		h := loginUser(t)
		rs := h.records(svcA, "a@x")
		nd := h.getNode(svcA, rs[1].NodeID)
		u := h.ok(login(svcA, "a@x", 11, 11, "bb")).User
		if u.NodeID != nd.ID || !reflect.DeepEqual(u.OldClientStates, []string{"aa", "99"}) {
			t.Fatalf("%+v", u)
		}
		if after := h.getNode(svcA, nd.ID); after.CurrentLoad != nd.CurrentLoad+1 || after.Available != nd.Available {
			t.Fatalf("counters %+v -> %+v", nd, after)
		}
	})
	t.Run("unassigned user is re-allocated with applied values", func(t *testing.T) {
		h := loginUser(t)
		n1 := h.records(svcA, "a@x")[1].NodeID
		n2 := h.node(svcA, "https://n2", 100)
		h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n1})
		res := h.ok(login(svcA, "a@x", 12, 12, "aa"))
		u := res.User
		if u.NodeID != n2.ID || u.Generation != 12 || u.KeysChangedAt != 12 || u.ClientState != "aa" || u.ReplacedAt != Null {
			t.Fatalf("%+v", u)
		}
		if len(h.records(svcA, "a@x")) != 3 {
			t.Fatalf("records %+v", h.records(svcA, "a@x"))
		}
	})
	t.Run("no change writes nothing", func(t *testing.T) {
		h := loginUser(t)
		before := h.f.Fork()
		h.ok(login(svcA, "a@x", 10, 10, "aa"))
		if !domainEqual(before, h.f) {
			t.Fatal("a no-op login changed the state")
		}
	})
}

func TestFxaKid(t *testing.T) {
	cases := []struct {
		kca, gen int64
		cs, want string
	}{
		{1234, 5, "aaaa", "0000000001234-qqo"},
		{Null, 5, "", "0000000000005-"},
		{0, 7, "0f", "0000000000007-Dw"},
		{1_700_000_000_000, 1, "0123456789abcdef0123456789abcdef", "1700000000000-ASNFZ4mrze8BI0VniavN7w"},
		{Null, MaxGeneration, "", "9223372036854775807-"},
		{9, 0, "abc.def", "0000000000009-YWJjLmRlZg"}, // not hex: raw bytes
		{9, 0, "abc", "0000000000009-YWJj"},           // odd length: raw bytes
	}
	for _, c := range cases {
		if got := FxaKid(c.kca, c.gen, c.cs); got != c.want {
			t.Errorf("FxaKid(%d, %d, %q) = %q, want %q", c.kca, c.gen, c.cs, got, c.want)
		}
	}
	for cs, want := range map[string]bool{"": true, "0f": true, "abc.def_-Z9": true, strings.Repeat("a", 32): true,
		strings.Repeat("a", 33): false, "a b": false, "a/b": false, "é": false, "a\x00": false} {
		if got := ValidClientState(cs); got != want {
			t.Errorf("ValidClientState(%q) = %v, want %v", cs, got, want)
		}
	}
	h := loginUser(t)
	if kid := h.ok(login(svcA, "a@x", 10, 10, "aa")).FxaKid; kid != "0000000000010-qg" {
		t.Fatalf("login kid %q", kid)
	}
}

func TestNewUsersDisabled(t *testing.T) {
	h := oneNodeHarness(t)
	h.ok(login(svcA, "old@x", 1, 1, "aa"))
	h.ok(Command{Op: OpPutService, Service: svcA, AllowNewUsers: SomeBool(false)})
	h.fails(login(svcA, "new@x", 1, 1, "aa"), StatusNewUsersDisabled, "")
	h.ok(login(svcA, "old@x", 2, 2, "bb"))
	// allocate is the operator's tool and ignores the flag.
	h.ok(allocate(svcA, "new@x"))
}

func TestReplaceAt(t *testing.T) {
	h := oneNodeHarness(t)
	h.ok(allocate(svcA, "a@x"))
	h.tick(100)
	if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x", At: SomeInt64(t0 - 1)}).Count; n != 0 {
		t.Fatalf("replaced a record created after at: %d", n)
	}
	if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x", At: SomeInt64(t0 + 50)}).Count; n != 1 {
		t.Fatalf("replaced %d", n)
	}
	if u := h.user(svcA, "a@x"); u.ReplacedAt != t0+50 {
		t.Fatalf("replaced_at %d", u.ReplacedAt)
	}
	if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x"}).Count; n != 0 {
		t.Fatalf("replaced again: %d", n)
	}
	if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "nobody@x"}).Count; n != 0 {
		t.Fatalf("unknown user: %d", n)
	}
	h.ok(allocate(svcA, "b@x"))
	if n := h.ok(Command{Op: OpReplace, Service: svcA, Email: "b@x"}).Count; n != 1 {
		t.Fatalf("replace at now: %d", n)
	}
	if u := h.user(svcA, "b@x"); u.ReplacedAt != h.now {
		t.Fatalf("replaced_at %d, want now %d", u.ReplacedAt, h.now)
	}
	h.fails(Command{Op: OpReplace, Service: svcA, Email: "b@x", At: SomeInt64(-1)}, StatusBadRequest, "at")
}

func TestRecordsOldestFirst(t *testing.T) {
	h := oneNodeHarness(t)
	uids := []int64{h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString("aa")}).User.UID}
	for _, cs := range []string{"bb", "cc"} {
		h.tick(10)
		uids = append(uids, h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString(cs)}).User.UID)
	}
	rs := h.records(svcA, "a@x")
	for i, r := range rs {
		if r.UID != uids[i] || r.Email != "a@x" || r.Service != svcA || r.NodeURL != "https://n1" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if u := h.user(svcA, "a@x"); !reflect.DeepEqual(u.OldClientStates, []string{"bb", "aa"}) || u.FirstSeenAt != rs[0].CreatedAt {
		t.Fatalf("derived: %+v", u)
	}
	if _, err := h.f.Records(svcA, "nobody@x"); !isStatus(err, StatusNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func isStatus(err error, status string) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

func TestOldRecords(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.service(svcB)
	n1 := h.node(svcA, "https://n1", 100)
	n2 := h.node(svcA, "https://n2", 100)
	h.node(svcB, "https://b1", 100)
	// Records replaced at t0+10 (two: a, b), t0+20 (c), t0+30 (d); one
	// live; one in the other service.
	for _, e := range []string{"a@x", "b@x", "c@x", "d@x", "live@x"} {
		h.ok(allocate(svcA, e))
	}
	h.ok(allocate(svcB, "a@x"))
	h.tick(10)
	h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x"})
	h.ok(Command{Op: OpReplace, Service: svcA, Email: "b@x"})
	h.ok(Command{Op: OpReplace, Service: svcB, Email: "a@x"})
	h.tick(10)
	h.ok(Command{Op: OpReplace, Service: svcA, Email: "c@x"})
	h.tick(10)
	h.ok(Command{Op: OpReplace, Service: svcA, Email: "d@x"})
	h.ok(Command{Op: OpUpdateNode, Service: svcA, NodeID: n2.ID, Downed: SomeBool(true)})

	uid := func(e string) int64 { return h.records(svcA, e)[0].UID }
	list := func(q OldRecordsQuery) []int64 {
		t.Helper()
		q.Service = svcA
		rs, err := h.f.OldRecords(q)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range rs {
			out = append(out, r.UID)
		}
		return out
	}
	// Newest replaced_at first, then highest uid.
	all := []int64{uid("d@x"), uid("c@x"), uid("b@x"), uid("a@x")}
	if got := list(OldRecordsQuery{Now: t0 + 100, GraceMs: 1}); !reflect.DeepEqual(got, all) {
		t.Fatalf("order: %v, want %v", got, all)
	}
	// Grace is strict: replaced_at < now − grace.
	if got := list(OldRecordsQuery{Now: t0 + 30, GraceMs: 10}); !reflect.DeepEqual(got, all[2:]) {
		t.Fatalf("grace: %v, want %v", got, all[2:])
	}
	if got := list(OldRecordsQuery{Now: t0 + 100, GraceMs: 1, Limit: 2, Offset: 1}); !reflect.DeepEqual(got, all[1:3]) {
		t.Fatalf("paging: %v", got)
	}
	if got := list(OldRecordsQuery{Now: t0 + 100, GraceMs: 1, Offset: 10}); got != nil {
		t.Fatalf("past the end: %v", got)
	}
	// Default grace is 7 days.
	if got := list(OldRecordsQuery{Now: t0 + 7*24*3600*1000 + 11}); !reflect.DeepEqual(got, all[2:]) {
		t.Fatalf("default grace: %v", got)
	}
	rs, _ := h.f.OldRecords(OldRecordsQuery{Service: svcA, Now: t0 + 100, GraceMs: 1})
	for _, r := range rs {
		wantDowned := r.NodeID == n2.ID
		if r.NodeDowned != wantDowned || r.NodeURL == "" || r.ReplacedAt == Null {
			t.Fatalf("record view: %+v", r)
		}
	}
	h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n1.ID})
	rs, _ = h.f.OldRecords(OldRecordsQuery{Service: svcA, Now: t0 + 1000, GraceMs: 1})
	for _, r := range rs {
		if r.NodeID == n1.ID && (r.NodeURL != "" || r.NodeDowned) {
			t.Fatalf("record on removed node: %+v", r)
		}
	}
	if _, err := h.f.OldRecords(OldRecordsQuery{Service: "nope-1", Now: t0}); !isStatus(err, StatusNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := h.f.OldRecords(OldRecordsQuery{Service: svcA, Now: t0, Limit: -1}); !isStatus(err, StatusBadRequest) {
		t.Fatalf("negative limit: %v", err)
	}
}

func TestDeleteRecordCounters(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.service(svcB)
	n := h.ok(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://n", Capacity: SomeInt64(3), Available: SomeInt64(3)}).Node
	var uids []int64
	for _, e := range []string{"a@x", "b@x", "c@x"} {
		uids = append(uids, h.ok(allocate(svcA, e)).User.UID)
	}
	if nd := h.getNode(svcA, n.ID); nd.CurrentLoad != 3 || nd.Available != 0 {
		t.Fatalf("setup %+v", nd)
	}
	h.ok(Command{Op: OpDeleteRecord, Service: svcA, UID: uids[0]})
	// available = min(0 + 1, 3 − 2) = 1.
	if nd := h.getNode(svcA, n.ID); nd.CurrentLoad != 2 || nd.Available != 1 {
		t.Fatalf("after delete %+v", nd)
	}
	// available + 1 capped by capacity − load.
	h.ok(Command{Op: OpUpdateNode, Service: svcA, NodeID: n.ID, Available: SomeInt64(5)})
	h.ok(Command{Op: OpDeleteRecord, Service: svcA, UID: uids[1]})
	if nd := h.getNode(svcA, n.ID); nd.CurrentLoad != 1 || nd.Available != 2 {
		t.Fatalf("capped %+v", nd)
	}
	if _, err := h.f.GetUser(svcA, "a@x"); !isStatus(err, StatusNotFound) {
		t.Fatalf("purged user still there: %v", err)
	}
	h.fails(Command{Op: OpDeleteRecord, Service: svcA, UID: uids[0]}, StatusNotFound, "uid")
	h.fails(Command{Op: OpDeleteRecord, Service: svcB, UID: uids[2]}, StatusNotFound, "uid")
	// Node gone: the record goes without touching any node.
	h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n.ID})
	h.ok(Command{Op: OpDeleteRecord, Service: svcA, UID: uids[2]})
	if st, _ := h.f.Stats(svcA); st != (Stats{}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeleteCurrentRecordExposesOlderOne(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.node(svcA, "https://n", 10)
	first := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString("aa")}).User
	h.tick(1)
	second := h.ok(Command{Op: OpUpdateUser, Service: svcA, Email: "a@x", ClientState: SomeString("bb")}).User
	h.ok(Command{Op: OpDeleteRecord, Service: svcA, UID: second.UID})
	u := h.user(svcA, "a@x")
	if u.UID != first.UID || u.ReplacedAt == Null || u.OldClientStates != nil {
		t.Fatalf("%+v", u)
	}
	// The user is now replaced: the next allocate makes a new record.
	if !h.ok(allocate(svcA, "a@x")).Created {
		t.Fatal("not re-allocated")
	}
}

func TestCountUsersAndStats(t *testing.T) {
	h := twoServiceHarness(t)
	h.ok(allocate(svcA, "a@x")) // t0
	h.tick(10)
	h.ok(allocate(svcA, "b@x")) // t0+10
	h.ok(allocate(svcB, "b@x"))
	h.tick(10)
	h.ok(allocate(svcA, "c@x")) // t0+20
	h.ok(Command{Op: OpReplace, Service: svcA, Email: "a@x"})
	count := func(svc string, asOf int64) int64 {
		t.Helper()
		n, err := h.f.CountUsers(svc, asOf)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	cases := []struct {
		svc  string
		asOf int64
		want int64
	}{
		{svcA, t0 + 20, 2}, {svcA, t0 + 19, 1}, {svcA, t0 + 10, 1}, {svcA, t0 + 9, 0}, {svcA, 1 << 62, 2},
		{"", t0 + 20, 3}, {"", t0 + 10, 2}, {"", t0, 0}, {svcB, t0 + 5, 0}, {svcB, t0 + 10, 1},
	}
	for _, c := range cases {
		if got := count(c.svc, c.asOf); got != c.want {
			t.Errorf("CountUsers(%q, %d) = %d, want %d", c.svc, c.asOf, got, c.want)
		}
	}
	if _, err := h.f.CountUsers("nope-1", t0); !isStatus(err, StatusNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if st, _ := h.f.Stats(svcA); st != (Stats{Users: 2, Records: 3, Nodes: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestAccountEvents(t *testing.T) {
	h := twoServiceHarness(t)
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(5), ClientState: SomeString("aa")})
	h.ok(Command{Op: OpAllocate, Service: svcB, Email: "a@x", Generation: SomeInt64(20)})
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: "other@x", Generation: SomeInt64(1)})

	// Count is the users the event changed: only sync-1.5's is below 9.
	if n := h.ok(Command{Op: OpAccountEvent, Event: EventPasswordChange, Email: "a@x", Generation: SomeInt64(10)}).Count; n != 1 {
		t.Fatalf("applied %d", n)
	}
	if a, b := h.user(svcA, "a@x"), h.user(svcB, "a@x"); a.Generation != 9 || b.Generation != 20 || len(h.records(svcA, "a@x")) != 1 {
		t.Fatalf("password change: %d %d", a.Generation, b.Generation)
	}
	if n := h.ok(Command{Op: OpAccountEvent, Event: EventReset, Email: "a@x", Generation: SomeInt64(30)}).Count; n != 2 {
		t.Fatalf("reset applied %d", n)
	}
	if a, b := h.user(svcA, "a@x"), h.user(svcB, "a@x"); a.Generation != 29 || b.Generation != 29 {
		t.Fatalf("reset: %d %d", a.Generation, b.Generation)
	}
	// The device that saw the reset logs in with generation 30 and keeps
	// its client state.
	if u := h.ok(login(svcA, "a@x", 30, 0, "aa")).User; u.Generation != 30 {
		t.Fatalf("login after reset: %+v", u)
	}
	h.tick(5)
	if n := h.ok(Command{Op: OpAccountEvent, Event: EventDelete, Email: "a@x"}).Count; n != 2 {
		t.Fatalf("deleted %d", n)
	}
	for _, svc := range []string{svcA, svcB} {
		if u := h.user(svc, "a@x"); u.Generation != MaxGeneration || u.ReplacedAt != h.now {
			t.Fatalf("%s not retired: %+v", svc, u)
		}
	}
	if u := h.user(svcA, "other@x"); u.Generation != 1 || u.ReplacedAt != Null {
		t.Fatalf("bystander touched: %+v", u)
	}
	if n := h.ok(Command{Op: OpAccountEvent, Event: EventDelete, Email: "a@x"}).Count; n != 0 {
		t.Fatalf("second delete changed %d users", n)
	}
	if n := h.ok(Command{Op: OpAccountEvent, Event: EventDelete, Email: "nobody@x"}).Count; n != 0 {
		t.Fatalf("unknown user: %d", n)
	}
	h.fails(Command{Op: OpAccountEvent, Event: "explode", Email: "a@x"}, StatusBadRequest, "event")
	h.fails(Command{Op: OpAccountEvent, Event: EventReset, Email: "a@x"}, StatusBadRequest, "generation")
}

func TestServiceLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern)})
	if !res.Created || *res.Service != (Service{ID: 1, Name: svcA, Pattern: testPattern, ReleaseRate: "0.1", AllowNewUsers: true, Spread: 1}) {
		t.Fatalf("create: %+v", res.Service)
	}
	res = h.ok(Command{Op: OpPutService, Service: svcA, ReleaseRate: SomeString("0.25"), Spread: SomeInt64(3), AllowNewUsers: SomeBool(false)})
	if res.Created || *res.Service != (Service{ID: 1, Name: svcA, Pattern: testPattern, ReleaseRate: "0.25", AllowNewUsers: false, Spread: 3}) {
		t.Fatalf("update: %+v", res.Service)
	}
	h.fails(Command{Op: OpPutService, Service: svcB}, StatusBadRequest, "pattern")
	n := h.node(svcA, "https://n", 10)
	if n.Available != 3 { // ceil(10 × 0.25)
		t.Fatalf("available %d", n.Available)
	}
	h.fails(Command{Op: OpDeleteService, Service: svcA}, StatusConflict, "service")
	u := h.ok(allocate(svcA, "a@x")).User
	h.ok(Command{Op: OpRemoveNode, Service: svcA, NodeID: n.ID})
	h.fails(Command{Op: OpDeleteService, Service: svcA}, StatusConflict, "service") // records remain
	h.ok(Command{Op: OpDeleteRecord, Service: svcA, UID: u.UID})
	h.ok(Command{Op: OpDeleteService, Service: svcA})
	h.fails(Command{Op: OpDeleteService, Service: svcA}, StatusNotFound, "service")
	if _, err := h.f.GetService(svcA); !isStatus(err, StatusNotFound) {
		t.Fatalf("deleted service: %v", err)
	}
	// Ids are never reused.
	if id := h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString("p")}).Service.ID; id != 2 {
		t.Fatalf("new service id %d", id)
	}
	if id := h.node(svcA, "https://n", 1).ID; id != 2 {
		t.Fatalf("new node id %d", id)
	}
}

func TestNodes(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.service(svcB)
	n := h.node(svcA, "https://n", 10)
	if n != (Node{ID: 1, Service: svcA, URL: "https://n", Capacity: 10, Available: 10}) {
		t.Fatalf("added %+v", n)
	}
	h.fails(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://n", Capacity: SomeInt64(1)}, StatusConflict, "node")
	h.node(svcB, "https://n", 10) // same URL in another service is fine
	h.fails(Command{Op: OpAddNode, Service: svcA, NodeURL: "https://m"}, StatusBadRequest, "capacity")
	h.fails(Command{Op: OpAddNode, Service: "nope-1", NodeURL: "https://m", Capacity: SomeInt64(1)}, StatusNotFound, "service")

	upd := h.ok(Command{Op: OpUpdateNode, Service: svcA, NodeID: n.ID, Capacity: SomeInt64(20), Available: SomeInt64(2), CurrentLoad: SomeInt64(1), Downed: SomeBool(true), Backoff: SomeBool(true)}).Node
	if *upd != (Node{ID: 1, Service: svcA, URL: "https://n", Capacity: 20, Available: 2, CurrentLoad: 1, Downed: true, Backoff: true}) {
		t.Fatalf("updated %+v", upd)
	}
	for _, bad := range []struct {
		cmd   Command
		field string
	}{
		{Command{NodeURL: "https://x"}, "node"},
		{Command{Email: "a@x"}, "email"},
		{Command{Pattern: SomeString("p")}, "pattern"},
		{Command{Generation: SomeInt64(1)}, "generation"},
		{Command{Capacity: SomeInt64(-1)}, "capacity"},
		{Command{Available: SomeInt64(-1)}, "available"},
		{Command{CurrentLoad: SomeInt64(-1)}, "current_load"},
	} {
		bad.cmd.Op, bad.cmd.Service, bad.cmd.NodeID = OpUpdateNode, svcA, n.ID
		h.fails(bad.cmd, StatusBadRequest, bad.field)
	}
	h.fails(Command{Op: OpUpdateNode, Service: svcB, NodeID: n.ID, Capacity: SomeInt64(1)}, StatusNotFound, "node")
	if _, err := h.f.GetNode(svcB, n.ID); !isStatus(err, StatusNotFound) {
		t.Fatalf("node of another service: %v", err)
	}
	nodes, err := h.f.ListNodes(svcA)
	if err != nil || len(nodes) != 1 || nodes[0] != *upd {
		t.Fatalf("list %+v %v", nodes, err)
	}
	if svcs := h.f.ListServices(); len(svcs) != 2 || svcs[0].Name != svcA || svcs[1].Name != svcB {
		t.Fatalf("services %+v", svcs)
	}
}

func TestValidation(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.node(svcA, "https://n", 10)
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		cmd   Command
		field string
	}{
		{Command{Op: OpPutService, Service: "nodash", Pattern: SomeString("p")}, "service"},
		{Command{Op: OpPutService, Service: "a-" + long(29), Pattern: SomeString("p")}, "service"},
		{Command{Op: OpPutService, Service: "bad name-1", Pattern: SomeString("p")}, "service"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString(long(129))}, "pattern"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("")}, "pattern"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("0")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("1.1")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("0.1234567891")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("1e-1")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString(".5")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("0.")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), ReleaseRate: SomeString("99999999999999999999")}, "release_rate"},
		{Command{Op: OpPutService, Service: svcB, Pattern: SomeString("p"), Spread: SomeInt64(0)}, "spread"},
		{Command{Op: OpAddNode, Service: svcA, NodeURL: long(65), Capacity: SomeInt64(1)}, "node"},
		{Command{Op: OpAddNode, Service: svcA, NodeURL: "", Capacity: SomeInt64(1)}, "node"},
		{Command{Op: OpAddNode, Service: svcA, NodeURL: "https://m", Capacity: SomeInt64(-1)}, "capacity"},
		{Command{Op: OpAllocate, Service: svcA, Email: ""}, "email"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a/b@x"}, "email"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a\n@x"}, "email"},
		{Command{Op: OpAllocate, Service: svcA, Email: long(256)}, "email"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString(long(33))}, "client_state"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a@x", ClientState: SomeString("a+b")}, "client_state"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a@x", Generation: SomeInt64(-1)}, "generation"},
		{Command{Op: OpLogin, Service: svcA, Email: "a@x", KeysChangedAt: SomeInt64(-1)}, "keys_changed_at"},
		{Command{Op: OpAllocate, Service: svcA, Email: "a@x", IdempotencyKey: long(129)}, "Idempotency-Key"},
		{Command{Op: Op(200)}, "op"},
	}
	for _, c := range cases {
		h.fails(c.cmd, StatusBadRequest, c.field)
	}
	// Limits themselves are fine.
	h.ok(Command{Op: OpPutService, Service: "a-" + long(28), Pattern: SomeString(long(128)), ReleaseRate: SomeString("0.123456789")})
	h.ok(Command{Op: OpAllocate, Service: svcA, Email: long(255), ClientState: SomeString(long(32))})
}

func TestIdempotency(t *testing.T) {
	h := newHarness(t, Options{IdempotencyTTLMs: 1000, IdempotencyMaxEntries: 3})
	h.service(svcA)
	h.node(svcA, "https://n", 10)
	cmd := Command{Op: OpAllocate, Service: svcA, Email: "a@x", IdempotencyKey: "k1", RequestHash: 7}
	first := h.ok(cmd)
	h.tick(10)
	repeat := h.apply(cmd)
	if !repeat.Repeated || !repeat.Created {
		t.Fatalf("repeat: %+v", repeat)
	}
	repeat.Repeated = false
	if !reflect.DeepEqual(repeat, first) {
		t.Fatalf("repeat %+v != first %+v", repeat, first)
	}
	if st, _ := h.f.Stats(svcA); st.Records != 1 {
		t.Fatalf("repeat acted again: %+v", st)
	}
	other := cmd
	other.RequestHash = 8
	e := h.fails(other, StatusConflict, "Idempotency-Key")
	if e.Msg != "idempotency key reused with a different request" {
		t.Fatalf("msg %q", e.Msg)
	}

	// A failure is remembered too.
	fail := Command{Op: OpAllocate, Service: "nope-1", Email: "a@x", IdempotencyKey: "k2", RequestHash: 1}
	h.fails(fail, StatusNotFound, "service")
	h.ok(Command{Op: OpPutService, Service: "nope-1", Pattern: SomeString("p")})
	h.ok(Command{Op: OpAddNode, Service: "nope-1", NodeURL: "https://n", Capacity: SomeInt64(1)})
	if res := h.apply(fail); !res.Repeated || res.Err == nil || res.Err.Status != StatusNotFound {
		t.Fatalf("remembered failure: %+v", res)
	}

	// Expiry by age: more than TTL after it was stored, the key is gone.
	h.tick(1000) // k1 stored at t0: now t0+1010
	if res := h.apply(cmd); res.Repeated || res.Created {
		t.Fatalf("expired key must apply afresh (and find the live user): %+v", res)
	}

	// Expiry by count: at most 3 entries, oldest first.
	for i, k := range []string{"c1", "c2", "c3", "c4"} {
		h.tick(1)
		h.ok(Command{Op: OpAllocate, Service: svcA, Email: k + "@x", IdempotencyKey: k, RequestHash: uint64(i)})
	}
	if got := h.f.st.idem.Len(); got != 3 {
		t.Fatalf("%d entries kept", got)
	}
	if res := h.apply(Command{Op: OpAllocate, Service: svcA, Email: "c1@x", IdempotencyKey: "c1", RequestHash: 99}); res.Err != nil || res.Repeated {
		t.Fatalf("evicted key c1 still known: %+v", res)
	}
	if res := h.apply(Command{Op: OpAllocate, Service: svcA, Email: "c4@x", IdempotencyKey: "c4", RequestHash: 3}); !res.Repeated {
		t.Fatalf("recent key c4 forgotten: %+v", res)
	}
}

func TestTimeNeverGoesBackwards(t *testing.T) {
	h := newHarness(t, Options{})
	h.service(svcA)
	h.node(svcA, "https://n", 10)
	h.ok(Command{Op: OpNoop, TS: t0 + 1000})
	u := h.ok(Command{Op: OpAllocate, Service: svcA, Email: "a@x", TS: t0 + 500}).User
	if u.CreatedAt != t0+1000 || h.f.LastTS() != t0+1000 {
		t.Fatalf("created_at %d, last ts %d", u.CreatedAt, h.f.LastTS())
	}
	h.ok(Command{Op: OpNoop, TS: t0 + 2000})
	if h.f.LastTS() != t0+2000 {
		t.Fatalf("last ts %d", h.f.LastTS())
	}
}

func TestSpreadPicksAmongBest(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(Command{Op: OpPutService, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1"), Spread: SomeInt64(2)})
	var ids []int64
	for _, u := range []string{"n1", "n2", "n3"} {
		ids = append(ids, h.node(svcA, "https://"+u, 1000).ID)
	}
	seen := map[int64]int{}
	for i := 0; i < 200; i++ {
		f := h.f.Fork()
		res := f.Apply(Command{Op: OpAllocate, Service: svcA, Email: "a@x", TS: t0, Seed: uint64(i)})
		seen[res.User.NodeID]++
	}
	// All three nodes are at 0/1000: the two best are the two lowest ids.
	if seen[ids[2]] != 0 || seen[ids[0]] < 60 || seen[ids[1]] < 60 {
		t.Fatalf("spread 2 over equal nodes: %v", seen)
	}
	// The same seed always picks the same node.
	a := h.f.Fork().Apply(Command{Op: OpAllocate, Service: svcA, Email: "a@x", TS: t0, Seed: 42})
	b := h.f.Fork().Apply(Command{Op: OpAllocate, Service: svcA, Email: "a@x", TS: t0, Seed: 42})
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different answers: %+v %+v", a, b)
	}
}

// TestConcurrentReadsSnapshotsAndApply is for the race detector: readers,
// a snapshot writer and Apply run at once, and each snapshot must restore
// to a state that satisfies the structural invariants.
func TestConcurrentReadsSnapshotsAndApply(t *testing.T) {
	f := New(Options{})
	f.Apply(Command{Op: OpPutService, TS: t0, Service: svcA, Pattern: SomeString(testPattern), ReleaseRate: SomeString("1")})
	f.Apply(Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n1", Capacity: SomeInt64(1 << 30)})
	f.Apply(Command{Op: OpAddNode, TS: t0, Service: svcA, NodeURL: "https://n2", Capacity: SomeInt64(1 << 30)})
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				email := "u" + strconv.Itoa(i%50) + "@x"
				if u, err := f.GetUser(svcA, email); err == nil && u.Email != email {
					errs <- fmt.Errorf("GetUser(%s) returned %s", email, u.Email)
					return
				}
				_, _ = f.Records(svcA, email)
				_, _ = f.OldRecords(OldRecordsQuery{Service: svcA, Now: t0 + int64(i), GraceMs: 1})
				_, _ = f.CountUsers("", t0+int64(i))
				_, _ = f.ListNodes(svcA)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if err := restoredSnapshotHolds(f); err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		email := "u" + strconv.Itoa(i%50) + "@x"
		switch i % 4 {
		case 0, 1:
			f.Apply(Command{Op: OpAllocate, TS: t0 + int64(i), Service: svcA, Email: email})
		case 2:
			f.Apply(Command{Op: OpUpdateUser, TS: t0 + int64(i), Service: svcA, Email: email, ClientState: SomeString(strconv.Itoa(i))})
		case 3:
			f.Apply(Command{Op: OpReplace, TS: t0 + int64(i), Service: svcA, Email: email})
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// restoredSnapshotHolds takes a snapshot of f (safe while others apply),
// restores it into a new machine and checks the invariants there.
func restoredSnapshotHolds(f *FSM) error {
	var buf bytes.Buffer
	if _, err := f.Snapshot().WriteTo(&buf); err != nil {
		return err
	}
	g := New(Options{})
	if err := g.Restore(&buf); err != nil {
		return err
	}
	if v := invariantViolations(g, permissiveTracker(g)); len(v) > 0 {
		return fmt.Errorf("snapshot taken during applies: %v", v)
	}
	return nil
}
