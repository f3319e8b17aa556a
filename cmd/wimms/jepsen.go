package main

import "github.com/spf13/cobra"

// newJepsenCmd is replaced by the chaos harness's real command.
func newJepsenCmd() *cobra.Command {
	return &cobra.Command{Use: "jepsen", Short: "chaos test (not built yet)", Hidden: true}
}
