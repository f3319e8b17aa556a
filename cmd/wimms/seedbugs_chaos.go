//go:build chaos

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/store"
)

// seedBug is a deliberate bug a chaos build of the server can start with,
// so that the chaos harness can prove that its checker fails. The harness
// lists how it exposes and catches each (jepsen.SeedBugs);
// TestSeedBugsAgreeWithChaosBuild keeps the names of both lists equal.
type seedBug struct {
	name, description string
	fsm               fsm.SeedBugs
	store             store.SeedBugs
}

var seedBugs = []seedBug{
	{
		name:        "stale-linearizable-read",
		description: "linearizable reads are served from the member's local state, without ReadIndex",
		store:       store.SeedBugs{StaleLinearizableRead: true},
	},
	{
		name:        "ack-before-commit",
		description: "the leader acknowledges a write from a dry run, without waiting for it to commit",
		store:       store.SeedBugs{AckBeforeCommit: true},
	},
	{
		name:        "alloc-skip-capacity",
		description: "allocation ignores capacity > current_load when choosing a node",
		fsm:         fsm.SeedBugs{SkipCapacityCheck: true},
	},
	{
		name:        "drop-tail-on-open",
		description: "a restarted member silently drops the last 32 entries of its log, as a damaged tail segment would",
		store:       store.SeedBugs{DropTailOnOpen: 32},
	},
	{
		name:        "delete-keeps-load",
		description: "deleting a record leaves its node's current_load and available as they were",
		fsm:         fsm.SeedBugs{DeleteKeepsLoad: true},
	},
}

func init() { seedBugFlags = addSeedBugFlags }

func addSeedBugFlags(fl *pflag.FlagSet) seedBugStep {
	var (
		name string
		list bool
	)
	fl.StringVar(&name, "seed-bug", "", "chaos build only: start with this deliberate bug (see --list-seed-bugs)")
	fl.BoolVar(&list, "list-seed-bugs", false, "chaos build only: list the seeded bugs and exit")
	return func(stdout, stderr io.Writer) (bool, error) {
		if list {
			for _, b := range seedBugs {
				fmt.Fprintf(stdout, "%-24s %s\n", b.name, b.description)
			}
			return true, nil
		}
		if name == "" {
			return false, nil
		}
		b, err := findSeedBug(name)
		if err != nil {
			return false, err
		}
		fsm.SetSeedBugs(b.fsm)
		store.SetSeedBugs(b.store)
		hclog.New(&hclog.LoggerOptions{Name: "wimms", Output: stderr}).Warn(
			"SEEDED BUG ENABLED: this member is deliberately incorrect (chaos testing only)",
			"bug", b.name, "effect", b.description)
		return false, nil
	}
}

func findSeedBug(name string) (seedBug, error) {
	var known []string
	for _, b := range seedBugs {
		if b.name == name {
			return b, nil
		}
		known = append(known, b.name)
	}
	return seedBug{}, fmt.Errorf("--seed-bug %q: unknown (known: %s)", name, strings.Join(known, ", "))
}
