package main

import "github.com/spf13/cobra"

// newBenchCmd is replaced by the benchmark driver's real command.
func newBenchCmd() *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "load generator (not built yet)", Hidden: true}
}
