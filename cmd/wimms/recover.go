package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/store"
)

// newRecoverCmd rewrites a stopped member's Raft configuration to just
// itself: the way back after losing (or finding damaged) a majority.
func newRecoverCmd() *cobra.Command {
	var dataDir, id, raftAddr, segmentSize string
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "make a stopped member the only voter of its cluster, keeping its data (after losing a majority)",
		Long: `After a majority of members is lost or damaged no leader can be elected
and membership cannot change through the API. Run 'wimms check' on every
member, pick the intact one with the highest last index, stop everything,
and run 'wimms recover' on it: its data dir is verified exactly as a start
would (a damaged log is refused with exit 3), then its Raft configuration
is rewritten to just this member (--id at --raft-addr), keeping its state.
Start 'wimms server' on that dir with the same --id and --raft-addr and no
--join; it elects itself. Move the other members' data dirs aside and start
them empty with --join. See docs/cluster.md, "Recovering from a damaged
majority". Exit 0: recovered; 2: could not run; 3: the data dir is damaged.`,
		Args: cobra.NoArgs,
		RunE: envFirst(func(cmd *cobra.Command) error {
			if id == "" || raftAddr == "" {
				return exitError{code: 2, msg: "recover: --id and --raft-addr are required (the id and Raft address the member will run with)"}
			}
			segBytes, err := parseWALSegmentSize(segmentSize)
			if err != nil {
				return exitError{code: 2, msg: "recover: " + err.Error()}
			}
			logger := hclog.New(&hclog.LoggerOptions{Name: "recover", Level: hclog.Info, Output: cmd.ErrOrStderr()})
			info, err := store.Recover(dataDir, id, raftAddr, segBytes, logger)
			if err != nil {
				if errors.Is(err, store.ErrCorrupt) {
					return exitError{code: exitCorrupt, msg: "recover: " + err.Error()}
				}
				return exitError{code: 2, msg: err.Error()}
			}
			abs, _ := filepath.Abs(dataDir)
			fmt.Fprintf(cmd.OutOrStdout(), "recovered %s: member %s at %s is now the only voter, holding the state up to index %d (term %d); "+
				"start `wimms server` on it with --id %s and --raft-addr %s and no --join, then start the other members with empty data dirs and --join\n",
				abs, id, raftAddr, info.Index, info.Term, id, raftAddr)
			return nil
		}),
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "the stopped member's data directory")
	cmd.Flags().StringVar(&id, "id", "", "this member's id (as it runs with)")
	cmd.Flags().StringVar(&raftAddr, "raft-addr", "", "the Raft address it will advertise")
	addWALSegmentSizeFlag(cmd.Flags(), &segmentSize)
	return cmd
}
