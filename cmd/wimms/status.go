package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// newStatusCmd prints the cluster as one member sees it: leader, term,
// indexes and every member with its zone. With --wait it polls until a
// leader is known and every voter is alive (used by `make cluster-up`).
func newStatusCmd() *cobra.Command {
	cf := clientFlags{timeout: 5 * time.Second}
	var wait time.Duration
	var asJSON bool
	cmd := cf.toolCmd(&cobra.Command{
		Use:   "status",
		Short: "show the cluster (leader, term, members, zones) as seen by one member",
	}, func(cmd *cobra.Command) error {
		c, err := cf.connect()
		if err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		for {
			st, err := fetchClusterStatus(cmd.Context(), c.api, cf.addr)
			healthy := err == nil && st.Leader != nil && allVotersAlive(st)
			if healthy || time.Now().After(deadline) {
				if err != nil {
					return exitError{code: 1, msg: err.Error()}
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				printClusterStatus(cmd.OutOrStdout(), st)
				if !healthy {
					return exitError{code: 1, msg: "cluster not healthy: no leader or a voter is not alive"}
				}
				return nil
			}
			time.Sleep(time.Second)
		}
	})
	cf.registerHTTPAddr(cmd.Flags())
	cmd.Flags().DurationVar(&wait, "wait", 0, "poll until a leader is known and all voters are alive, at most this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}

// fetchClusterStatus asks the member c reaches, at addr, for the cluster
// status.
func fetchClusterStatus(ctx context.Context, c *client.Client, addr string) (wire.ClusterStatus, error) {
	st, _, err := c.Cluster(ctx)
	if err != nil {
		return wire.ClusterStatus{}, fmt.Errorf("cluster status of %s: %w", addr, err)
	}
	return *st, nil
}

func allVotersAlive(st wire.ClusterStatus) bool {
	for _, m := range st.Members {
		if m.Voter && m.State != "leader" && m.State != "follower" {
			return false
		}
	}
	return true
}

func printClusterStatus(out io.Writer, st wire.ClusterStatus) {
	leader := "none"
	if st.Leader != nil {
		leader = st.Leader.ID
	}
	fmt.Fprintf(out, "leader: %s  term: %d  commit: %d  applied: %d\n", leader, st.Term, st.CommitIndex, st.AppliedIndex)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tZONE\tSTATE\tVOTER\tHTTP\tRAFT\tLAST CONTACT")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%dms\n", m.ID, m.Zone, m.State, m.Voter, m.HTTPAddr, m.RaftAddr, m.LastContactMs)
	}
	_ = tw.Flush()
}
