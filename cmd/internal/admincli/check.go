package admincli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/store"
)

// NewCheckCmd is `wimms check`: it verifies a stopped member's data directory offline.
func NewCheckCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "verify a stopped member's Raft log and snapshots (exit 1 on damage, 2 if it cannot check)",
		Long: `Verify a stopped member's data directory without changing it: every Raft
log entry against its checksum (entries written before checksums existed are
counted as unchecked), and every snapshot against raft's CRC and by decoding
the state it holds; and that the log still reaches the log watermark (the
highest index this member ever made durable) with no complete batch after an
unreadable frame in raft-wal's tail segment. It prints the log's last index
and term and the watermark: after losing a majority, run it on every member
and recover from the one with the highest last index whose log is intact
(docs/cluster.md, "Recovering from a damaged majority"). Exit 0: nothing damaged; 1: damage found (replace the
member empty, see docs/cluster.md); 2: the check could not run (e.g. the
member is still running).`,
		Args: cobra.NoArgs,
		RunE: EnvFirst(func(cmd *cobra.Command) error {
			rep, err := store.Check(dataDir)
			if err != nil {
				return ExitError{Code: 2, Msg: "check: " + err.Error()}
			}
			out := cmd.OutOrStdout()
			if rep.HasLog {
				fmt.Fprintf(out, "raft log: indexes %d..%d, %d entries verified by checksum, %d without checksum (older data)\n",
					rep.Log.First, rep.Log.Last, rep.Log.Checked, rep.Log.Unchecked)
			} else {
				fmt.Fprintln(out, "raft log: none (raft.db missing)")
			}
			if rep.HasLog {
				t := rep.Tail
				wm := "none (data written before log watermarks)"
				if t.HasWatermark {
					wm = fmt.Sprintf("%d (commit index %d)", t.Watermark.Durable, t.Watermark.Commit)
				}
				fmt.Fprintf(out, "log tail: last index %d, last term %d, newest intact snapshot %d, watermark %s\n",
					t.LastIndex, t.LastTerm, t.SnapshotIndex, wm)
				if t.TornBytes > 0 {
					fmt.Fprintf(out, "torn final batch: %d bytes after the last complete batch, never acknowledged (the log reaches the watermark); the next start discards it\n", t.TornBytes)
				}
			}
			for _, s := range rep.Snapshots {
				verdict := "ok"
				if s.Err != nil {
					verdict = "DAMAGED"
				}
				fmt.Fprintf(out, "snapshot %s: index %d, term %d: %s\n", s.ID, s.Index, s.Term, verdict)
			}
			problems := rep.Problems()
			for _, p := range problems {
				fmt.Fprintln(out, "DAMAGE:", p)
			}
			if len(problems) > 0 {
				return ExitError{Code: 1, Msg: fmt.Sprintf("%d problem(s) found in %s", len(problems), dataDir)}
			}
			fmt.Fprintln(out, "no damage found")
			return nil
		}),
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "the stopped member's data directory")
	return cmd
}
