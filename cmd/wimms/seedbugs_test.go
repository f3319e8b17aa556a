package main

import (
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/jepsen"
	"github.com/wimms-dev/wimms/store"
)

// TestEverySeededBugIsWired: each bug the chaos harness lists (and runs in
// CI) switches on exactly one option in the server, and the names agree.
func TestEverySeededBugIsWired(t *testing.T) {
	bugs := jepsen.SeedBugs()
	if len(bugs) < 3 {
		t.Fatalf("jepsen lists %d seeded bugs, want at least 3", len(bugs))
	}
	for _, bug := range bugs {
		b := bug.Name
		fo, sb, ok := seedBugOptions(b)
		if !ok {
			t.Errorf("jepsen lists %q but the server does not know it", b)
			continue
		}
		on := 0
		for _, v := range []bool{fo.SkipCapacityCheck, sb.StaleLinearizableRead, sb.AckBeforeCommit, seedBugHooks[b] != nil} {
			if v {
				on++
			}
		}
		if on != 1 {
			t.Errorf("%q enables %d options, want exactly 1", b, on)
		}
		if seedBugDescription(b) == "" {
			t.Errorf("%q has no description", b)
		}
	}
	if fo, sb, ok := seedBugOptions(""); !ok || fo != (fsm.Options{}) || sb != (store.SeedBugs{}) {
		t.Errorf("no seeded bug must mean no option: %+v %+v %v", fo, sb, ok)
	}
	if _, _, ok := seedBugOptions("nope"); ok {
		t.Error("an unknown seeded bug must be refused")
	}
}
