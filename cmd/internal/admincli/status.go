package admincli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// NewStatusCmd is `wimms status`: it prints the cluster as one member sees it: leader, term,
// indexes and every member with its zone. With --wait it polls until a
// leader is known, every voter is alive, --members members are present
// and each has applied what was committed when the wait began to pass
// (used by `make cluster-up`); an answer that waiting cannot change (no
// token, wrong scheme, wrong CA) ends the wait at once.
func NewStatusCmd() *cobra.Command {
	cf := ClientFlags{Timeout: 5 * time.Second}
	var wait time.Duration
	var members int
	var asJSON bool
	cmd := cf.ToolCmd(&cobra.Command{
		Use:   "status",
		Short: "show the cluster (leader, term, members, zones) as seen by one member",
	}, func(cmd *cobra.Command) error {
		if members < 0 {
			return usageErrorf("--members must not be negative")
		}
		c, err := cf.Connect()
		if err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		var caughtUpTo uint64 // the commit index each member must have applied
		for {
			st, err := FetchClusterStatus(cmd.Context(), c.API)
			problem := ""
			switch {
			case err != nil:
				problem = err.Error()
			default:
				problem = clusterProblem(cmd.Context(), c.API, st, members, caughtUpTo)
				caughtUpTo = max(caughtUpTo, st.CommitIndex)
			}
			if problem == "" || time.Now().After(deadline) || (err != nil && isFinal(err)) {
				if err != nil {
					return callFailed("cluster status of "+cf.Addr, err)
				}
				if asJSON {
					if werr := writeJSON(cmd.OutOrStdout(), st); werr != nil {
						return werr
					}
				} else {
					printClusterStatus(cmd.OutOrStdout(), st)
				}
				if problem != "" {
					return ExitError{Code: 1, Msg: "cluster not healthy: " + problem}
				}
				return nil
			}
			select {
			case <-cmd.Context().Done():
				return cmd.Context().Err()
			case <-time.After(statusPollInterval):
			}
		}
	})
	cf.RegisterHTTPAddr(cmd.Flags())
	cmd.Flags().DurationVar(&wait, "wait", 0, "poll until the cluster is healthy (a leader, every voter alive, --members present and caught up), at most this long")
	cmd.Flags().IntVar(&members, "members", 0, "with --wait: how many members must be present (0: those the member knows)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}

// statusPollInterval is how often `status --wait` asks again.
const statusPollInterval = 500 * time.Millisecond

// clusterProblem says why the cluster st describes is not yet what `status
// --wait` waits for, or "" when it is: a leader, every voter alive, at
// least want members, and every member having applied caughtUpTo (the
// commit index of an earlier poll, so a busy cluster can still pass).
func clusterProblem(ctx context.Context, c *client.Client, st wire.ClusterStatus, want int, caughtUpTo uint64) string {
	switch {
	case st.Leader == nil:
		return "no leader"
	case !allVotersAlive(st):
		return "a voter is not alive"
	case len(st.Members) < want:
		return fmt.Sprintf("%d of %d members present", len(st.Members), want)
	case want == 0:
		return ""
	}
	var progress struct {
		Members []struct {
			ID           string  `json:"id"`
			AppliedIndex *uint64 `json:"applied_index"`
		} `json:"members"`
	}
	meta, body, err := c.Raw(ctx, "GET", "/v1/cluster/progress", nil)
	if err != nil || meta.HTTPStatus != 200 || json.Unmarshal(body, &progress) != nil {
		return "members' progress unknown"
	}
	for _, m := range progress.Members {
		if m.AppliedIndex == nil || *m.AppliedIndex < caughtUpTo || caughtUpTo == 0 {
			return fmt.Sprintf("member %s has not caught up", m.ID)
		}
	}
	return ""
}

// FetchClusterStatus asks the member c reaches for the cluster status; the
// caller names the member in its error (callFailed).
func FetchClusterStatus(ctx context.Context, c *client.Client) (wire.ClusterStatus, error) {
	st, _, err := c.Cluster(ctx)
	if err != nil {
		return wire.ClusterStatus{}, err
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
