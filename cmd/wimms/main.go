// Command wimms is the single binary of the project: the server, the
// benchmark driver, the chaos harness and the operator's tools. This
// package holds the root command and the server's wiring (flags,
// security, signals, shutdown order); every other subcommand only wires
// flags to a package: the admin CLI, status, health, tls and check are
// whole commands in cmd/internal/admincli, the load generator is
// cmd/internal/bench, import/export cmd/internal/mysqlimport. Nothing
// outside cmd/ imports those: they are parts of this binary, not
// libraries.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
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
	root.AddCommand(newServerCmd(), admincli.NewHealthCmd(), admincli.NewStatusCmd(), newJepsenCmd(), newBenchCmd(), newTokenServerCmd(), newPurgeCmd(),
		admincli.NewTLSCmd(), admincli.NewCheckCmd())
	root.AddCommand(admincli.NewServiceCmd())
	root.AddCommand(admincli.NewNodeCmd())
	root.AddCommand(admincli.NewUserCmd())
	root.AddCommand(admincli.NewUsersCmd())
	root.AddCommand(admincli.NewRecordsCmd())
	root.AddCommand(admincli.NewEventCmd())
	root.AddCommand(newImportCmd(), newExportCmd(), newBackupCmd(), newRestoreCmd(), newRecoverCmd())
	return root
}
