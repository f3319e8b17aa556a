package model

import (
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen/history"
)

// The login checks of docs/spec.md §4 in their order, one state, one input each.
func TestDecideLoginChecks(t *testing.T) {
	stored := userState{Exists: true, UID: 5, NodeID: 1, Generation: 100, KeysChangedAt: 50, ClientState: "aa",
		Older: "4:bb"}
	cases := []struct {
		name       string
		gen, kca   int64 // 0 = absent
		cs         string
		wantStatus string
		wantNew    bool
		wantGen    int64
		wantKCA    int64
	}{
		{"a: keys changed but generation below them", 70, 80, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"b: empty client state", 100, 50, "", fsm.StatusInvalidClientState, false, 0, 0},
		{"c: stale client state", 200, 60, "bb", fsm.StatusInvalidClientState, false, 0, 0},
		{"d: new client state, same generation", 100, 60, "cc", fsm.StatusInvalidClientState, false, 0, 0},
		{"e: new client state, same keys_changed_at", 200, 50, "cc", fsm.StatusInvalidClientState, false, 0, 0},
		{"f: generation below stored", 99, 50, "aa", fsm.StatusInvalidGeneration, false, 0, 0},
		{"g: keys_changed_at absent", 100, 0, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"g: keys_changed_at below stored", 100, 40, "aa", fsm.StatusInvalidKeysChangedAt, false, 0, 0},
		{"same client state, newer generation: in place", 150, 50, "aa", "", false, 150, 50},
		{"new client state with both bumped: new record", 200, 60, "cc", "", true, 200, 60},
		{"generation absent: keys_changed_at above it becomes the generation", 0, 120, "aa", "", false, 120, 120},
		{"generation absent, keys_changed_at below it: generation kept", 0, 60, "aa", "", false, 100, 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := history.UserInput{Kind: history.OpLogin, ClientState: fsm.SomeString(c.cs)}
			if c.gen != 0 {
				in.Generation = fsm.SomeInt64(c.gen)
			}
			if c.kca != 0 {
				in.KeysChangedAt = fsm.SomeInt64(c.kca)
			}
			d := decide(stored, in)
			if d.status != c.wantStatus {
				t.Fatalf("status %q, want %q", d.status, c.wantStatus)
			}
			if c.wantStatus != "" {
				return
			}
			if d.newRecord != c.wantNew || d.next.Generation != c.wantGen || d.next.KeysChangedAt != c.wantKCA {
				t.Fatalf("new=%v gen=%d kca=%d, want new=%v gen=%d kca=%d", d.newRecord, d.next.Generation,
					d.next.KeysChangedAt, c.wantNew, c.wantGen, c.wantKCA)
			}
			if got := strings.Join(d.next.oldStates(), ","); c.wantNew && got != "aa,bb" {
				t.Fatalf("old client states %q, want aa,bb", got)
			}
		})
	}
}

func TestDecideLoginRetiredUser(t *testing.T) {
	retired := userState{Exists: true, UID: 5, NodeID: 1, Generation: fsm.MaxGeneration, KeysChangedAt: fsm.Null}
	if d := decide(retired, history.UserInput{Kind: history.OpLogin, Generation: fsm.SomeInt64(10),
		KeysChangedAt: fsm.SomeInt64(10), ClientState: fsm.SomeString("aa")}); d.status != fsm.StatusInvalidGeneration {
		t.Fatalf("retired user with a real generation: %q, want invalid-generation", d.status)
	}
	if d := decide(retired, history.UserInput{Kind: history.OpLogin, ClientState: fsm.SomeString("aa")}); d.status != "" || d.next != retired {
		t.Fatalf("retired user without generation must be returned unchanged, got %+v", d)
	}
}

func TestExpectedFxaKid(t *testing.T) {
	cases := []struct {
		gen, kca int64
		cs, want string
	}{
		{1, 1234, "aa", "0000000001234-qg"},
		{1500, fsm.Null, "aa", "0000000001500-qg"},
		{1500, 0, "aa", "0000000001500-qg"},
		{7, 9, "", "0000000000009-"},
		{7, 9, "zz", "0000000000009-eno"}, // not hex: its bytes, as the state machine does
	}
	for _, c := range cases {
		if got := ExpectedFxaKid(c.gen, c.kca, c.cs); got != c.want {
			t.Errorf("ExpectedFxaKid(%d, %d, %q) = %q, want %q", c.gen, c.kca, c.cs, got, c.want)
		}
	}
}
