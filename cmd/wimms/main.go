// Command wimms is the single binary of the project: the server, the
// benchmark driver, the chaos harness and small operator tools. Each
// subcommand only wires flags to a package; no logic lives here.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		var exit exitError
		if asExit(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintln(os.Stderr, "wimms:", exit.msg)
			}
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "wimms:", err)
		os.Exit(2)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "wimms",
		Short:         "wimms: a Raft-replicated node-assignment service",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCmd(), newHealthCmd(), newStatusCmd(), newJepsenCmd(), newBenchCmd(), newTokenServerCmd(), newPurgeCmd(), newTLSCmd(), newCheckCmd())
	root.AddCommand(newServiceCmd())
	root.AddCommand(newNodeCmd())
	root.AddCommand(newUserCmd())
	root.AddCommand(newUsersCmd())
	root.AddCommand(newRecordsCmd())
	root.AddCommand(newEventCmd())
	root.AddCommand(newImportCmd(), newExportCmd(), newBackupCmd(), newRestoreCmd(), newRecoverCmd())
	return root
}
