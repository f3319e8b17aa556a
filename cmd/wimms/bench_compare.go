package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/cmd/internal/bench"
)

// compareFlags are the flags of `wimms bench --compare` and the spawn
// options it shares with --spawn.
type compareFlags struct {
	bins        []string
	rounds      int
	target      string
	basePort    int
	serverFlags []string
}

func (c compareFlags) enabled() bool { return len(c.bins) > 0 }

func addCompareFlags(fl *pflag.FlagSet, c *compareFlags) {
	fl.StringSliceVar(&c.bins, "compare", nil, "OLD,NEW: run the workload against a spawned cluster of each binary in alternating rounds and print medians and ratios")
	fl.IntVar(&c.rounds, "rounds", 3, "--compare: rounds (each runs the workload once per binary)")
	fl.StringVar(&c.target, "target", "all", "with --spawn or --compare: the members clients talk to: all, leader or followers")
	fl.IntVar(&c.basePort, "spawn-base-port", 0, "with --spawn or --compare: give members consecutive ports from this one (3 per member; --compare uses twice as many) instead of free ones")
	fl.StringArrayVar(&c.serverFlags, "server-flag", nil, "with --spawn or --compare: one more flag for every spawned member, e.g. --server-flag=--pprof (repeatable)")
}

// checkCompareFlags rejects combinations that cannot mean anything.
func checkCompareFlags(fl *pflag.FlagSet, f benchFlags) error {
	c := f.compare
	spawning := f.spawn > 0 || c.enabled()
	if _, err := bench.ParseTarget(c.target); err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	for _, name := range []string{"target", "spawn-base-port", "server-flag"} {
		if fl.Changed(name) && !spawning {
			return fmt.Errorf("--%s only applies with --spawn or --compare", name)
		}
	}
	if fl.Changed("rounds") && !c.enabled() {
		return errors.New("--rounds only applies with --compare")
	}
	if !c.enabled() {
		return nil
	}
	if len(c.bins) != 2 || c.bins[0] == "" || c.bins[1] == "" {
		return fmt.Errorf("--compare %q: want two binaries, OLD,NEW", c.bins)
	}
	for _, b := range c.bins {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("--compare: %w", err)
		}
	}
	if c.rounds < 1 {
		return fmt.Errorf("--rounds %d: want at least 1", c.rounds)
	}
	if fl.Changed("addrs") {
		return errors.New("--addrs and --compare exclude each other: --compare benches the clusters it starts")
	}
	if fl.Changed("bin") {
		return errors.New("--bin and --compare exclude each other: --compare names both binaries")
	}
	return nil
}

func runCompare(ctx context.Context, cmd *cobra.Command, f benchFlags, cfg bench.Config, logger hclog.Logger) error {
	members := f.spawn
	if members == 0 {
		members = 3
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	target, _ := bench.ParseTarget(f.compare.target)
	cfg.Progress = nil
	cc := bench.CompareConfig{
		Old: abs(f.compare.bins[0]), New: abs(f.compare.bins[1]),
		Rounds: f.compare.rounds, Members: members, Target: target,
		Run: cfg,
		Spawn: bench.SpawnConfig{APIToken: f.apiToken, BasePort: f.compare.basePort, ServerFlags: f.compare.serverFlags,
			TokenServer: cfg.Workload == bench.WorkloadToken},
		Logger: logger,
	}
	if !f.quiet {
		cc.Progress = os.Stderr
	}
	res, err := bench.Compare(ctx, cc)
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	if err := writeBenchResult(cmd.OutOrStdout(), f.asJSON, res); err != nil {
		return err
	}
	if res.OldStats.Throughput == 0 || res.NewStats.Throughput == 0 {
		return exitError{code: 1, msg: "a binary had no successful operation: the ratio means nothing"}
	}
	return nil
}
