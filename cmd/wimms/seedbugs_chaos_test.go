//go:build chaos

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSeedBugEachSwitchesOneThing: every seeded bug of the chaos build has
// a name, a description and exactly one switch.
func TestSeedBugEachSwitchesOneThing(t *testing.T) {
	if len(seedBugs) < 3 {
		t.Fatalf("%d seeded bugs, want at least 3", len(seedBugs))
	}
	seen := map[string]bool{}
	for _, b := range seedBugs {
		if b.name == "" || strings.ContainsAny(b.name, " \t") || seen[b.name] || b.description == "" {
			t.Errorf("seeded bug %+v: want a unique one-word name and a description", b)
		}
		seen[b.name] = true
		on := 0
		for _, v := range []bool{b.fsm.SkipCapacityCheck, b.fsm.DeleteKeepsLoad, b.store.StaleLinearizableRead, b.store.AckBeforeCommit,
			b.store.DropTailOnOpen > 0} {
			if v {
				on++
			}
		}
		if on != 1 {
			t.Errorf("%q switches %d things on, want exactly 1", b.name, on)
		}
	}
}

// TestSeedBugFlags: --list-seed-bugs lists every bug and starts nothing;
// an unknown --seed-bug is refused.
func TestSeedBugFlags(t *testing.T) {
	cmd := newServerCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--list-seed-bugs"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, b := range seedBugs {
		if !strings.Contains(out.String(), b.name+" ") {
			t.Errorf("--list-seed-bugs does not list %s:\n%s", b.name, out.String())
		}
	}

	cmd = newServerCmd()
	cmd.SetArgs([]string{"--seed-bug", "nope", "--data-dir", t.TempDir()})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `--seed-bug "nope": unknown`) {
		t.Fatalf("unknown seed bug: err = %v", err)
	}
}
