package admincli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// NewUserCmd is `wimms user`: get, allocate, retire and replace a user,
// and list a user's records.
func NewUserCmd() *cobra.Command {
	return groupCmd("user", "show, allocate, retire and replace one user's assignment; list their records", "",
		adminCommand(&cobra.Command{
			Use:     "get EMAIL",
			Short:   "show a user's current assignment",
			Example: exampleOf("wimms user get alice@example.com", "wimms user get alice@example.com --consistency linearizable --json"),
			Args:    argsOne(checkEmailArg),
		}, adminOpts{service: true, read: true}, (*adminCmd).getUser),
		newUserAllocateCmd(),
		adminCommand(&cobra.Command{
			Use:   "retire EMAIL",
			Short: "retire a user: their records are replaced and they cannot log in again",
			Long: `Mark each of the user's live records replaced with the largest
generation, as an account deletion does in one service.`,
			Example: exampleOf("wimms user retire alice@example.com"),
			Args:    argsOne(checkEmailArg),
		}, adminOpts{service: true, write: true}, (*adminCmd).retireUser),
		newUserReplaceCmd(),
		adminCommand(&cobra.Command{
			Use:     "records EMAIL",
			Short:   "list every stored record of a user, oldest first",
			Example: exampleOf("wimms user records alice@example.com"),
			Args:    argsOne(checkEmailArg),
		}, adminOpts{service: true, read: true}, (*adminCmd).userRecords))
}

func userTable(w io.Writer, u wire.User, created *bool) {
	row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, v) }
	row("uid", strconv.FormatInt(u.UID, 10))
	row("service", u.Service)
	row("email", u.Email)
	if u.Node != nil {
		row("node", fmt.Sprintf("%s (id %d)", *u.Node, u.NodeID))
	} else {
		row("node", fmtNodeOf(nil, u.NodeID))
	}
	row("api endpoint", fmtOptString(u.APIEndpoint))
	row("generation", fmtGeneration(u.Generation))
	row("keys changed at", fmtOptInt(u.KeysChangedAt))
	row("client state", fmtText(u.ClientState))
	row("old client states", fmtText(strings.Join(u.OldClientStates, ", ")))
	row("created at", fmtMillis(u.CreatedAt))
	row("replaced at", fmtOptMillis(u.ReplacedAt))
	row("first seen at", fmtMillis(u.FirstSeenAt))
	if created != nil {
		row("new record", strconv.FormatBool(*created))
	}
}

func recordTable(w io.Writer, withEmail bool, recs []wire.Record) {
	head := "UID\tNODE\tDOWNED\tGENERATION\tKEYS CHANGED AT\tCLIENT STATE\tCREATED\tREPLACED"
	if withEmail {
		head = "UID\tEMAIL\tNODE\tDOWNED\tGENERATION\tKEYS CHANGED AT\tCLIENT STATE\tCREATED\tREPLACED"
	}
	fmt.Fprintln(w, head)
	for _, r := range recs {
		email := ""
		if withEmail {
			email = r.Email + "\t"
		}
		fmt.Fprintf(w, "%d\t%s%s\t%v\t%s\t%s\t%s\t%s\t%s\n", r.UID, email, fmtNodeOf(r.Node, r.NodeID), r.Downed,
			fmtGeneration(r.Generation), fmtOptInt(r.KeysChangedAt), fmtText(r.ClientState), fmtMillis(r.CreatedAt), fmtOptMillis(r.ReplacedAt))
	}
}

func (a *adminCmd) getUser(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	u, _, err := c.API.GetUser(ctx, a.service, args[0], a.readOpts())
	return a.answer(out, fmt.Sprintf("get user %s in %s", args[0], a.service), err, u, func(w io.Writer) { userTable(w, *u, nil) })
}

func newUserAllocateCmd() *cobra.Command {
	var generation, kca int64
	var clientState, node string
	cmd := adminCommand(&cobra.Command{
		Use:   "allocate EMAIL",
		Short: "get a user's assignment, assigning a node when they have none",
		Long: `Return the user's current record, or create one on the best node (or on
--node). "new record" says whether one was created.`,
		Example: exampleOf(
			"wimms user allocate alice@example.com",
			"wimms user allocate bob@example.com --node https://sync-3.example.com --generation 1700000000000",
		),
		Args: argsOne(checkEmailArg),
	}, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		email := args[0]
		req := wire.AllocateRequest{Email: email}
		var err error
		if req.Generation, err = a.givenCount("generation", generation); err != nil {
			return err
		}
		if req.KeysChangedAt, err = a.givenCount("keys-changed-at", kca); err != nil {
			return err
		}
		if a.given("client-state") {
			if err := checkClientStateArg(clientState); err != nil {
				return err
			}
			req.ClientState = wire.String(clientState)
		}
		if a.given("node") {
			if err := checkNodeURLArg(node); err != nil {
				return err
			}
			req.Node = wire.String(node)
		}
		u, m, err := c.API.Allocate(ctx, a.service, req, a.writeOpts())
		return a.answer(out, fmt.Sprintf("allocate %s in %s", email, a.service), err, u, func(w io.Writer) {
			created := m.Created()
			userTable(w, *u, &created)
		})
	})
	fl := cmd.Flags()
	fl.Int64Var(&generation, "generation", 0, "the account's generation (FxA)")
	fl.Int64Var(&kca, "keys-changed-at", 0, "when the account's keys last changed (FxA, ms)")
	fl.StringVar(&clientState, "client-state", "", "the client state (hex of the key hash)")
	fl.StringVar(&node, "node", "", "assign this node (URL) instead of the best one")
	return cmd
}

func (a *adminCmd) retireUser(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	u, _, err := c.API.Retire(ctx, a.service, args[0], a.writeOpts())
	return a.answer(out, fmt.Sprintf("retire %s in %s", args[0], a.service), err, u, func(w io.Writer) { userTable(w, *u, nil) })
}

func newUserReplaceCmd() *cobra.Command {
	var at string
	cmd := adminCommand(&cobra.Command{
		Use:   "replace EMAIL",
		Short: "mark a user's records created up to a time replaced (they move at the next login)",
		Example: exampleOf(
			"wimms user replace alice@example.com",
			"wimms user replace alice@example.com --at 2025-01-31T12:00:00Z",
		),
		Args: argsOne(checkEmailArg),
	}, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		email := args[0]
		atMs, err := a.givenTime("at", at)
		if err != nil {
			return err
		}
		n, _, err := c.API.Replace(ctx, a.service, email, atMs, a.writeOpts())
		return a.answer(out, fmt.Sprintf("replace %s in %s", email, a.service), err, map[string]int64{"replaced": n}, func(w io.Writer) {
			fmt.Fprintf(w, "replaced %s of %s\n", plural(n, "record"), email)
		})
	})
	cmd.Flags().StringVar(&at, "at", "", "replace records created at or before this time: Unix ms or RFC 3339 (default: now)")
	return cmd
}

func (a *adminCmd) userRecords(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	recs, _, err := c.API.Records(ctx, a.service, args[0], a.readOpts())
	return a.answer(out, fmt.Sprintf("records of %s in %s", args[0], a.service), err, map[string]any{"records": orEmpty(recs)}, func(w io.Writer) {
		recordTable(w, false, recs)
	})
}

// NewUsersCmd is `wimms users`: counts over a service's users.
func NewUsersCmd() *cobra.Command {
	return groupCmd("users", "questions about all users (count)", "", newUsersCountCmd())
}

func newUsersCountCmd() *cobra.Command {
	var all bool
	var asOf string
	cmd := adminCommand(&cobra.Command{
		Use:   "count",
		Short: "count live users of a service (or --all services) at a time",
		Example: exampleOf(
			"wimms users count",
			"wimms users count --all --as-of 2025-01-01T00:00:00Z --json",
		),
		Args: cobra.NoArgs,
	}, adminOpts{service: true, read: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, _ []string) error {
		if all && a.given("service") {
			return usageErrorf("--all and --service exclude each other")
		}
		service, scope := a.service, a.service
		if all {
			service, scope = "", "all services"
		}
		asOfMs, err := a.givenTime("as-of", asOf)
		if err != nil {
			return err
		}
		n, _, err := c.API.CountUsers(ctx, service, asOfMs, a.readOpts())
		return a.answer(out, "count users", err, n, func(w io.Writer) {
			fmt.Fprintf(w, "%s in %s as of %s\n", plural(n.Count, "user"), scope, fmtMillis(n.AsOf))
		})
	})
	cmd.Flags().BoolVar(&all, "all", false, "count in every service")
	cmd.Flags().StringVar(&asOf, "as-of", "", "count records created at or before this time: Unix ms or RFC 3339 (default: now)")
	return cmd
}

// NewRecordsCmd is `wimms records`: list old records and delete records.
func NewRecordsCmd() *cobra.Command {
	return groupCmd("records", "list replaced records past their grace period, and delete records (what purge does)", "",
		newRecordsOldCmd(),
		adminCommand(&cobra.Command{
			Use:   "delete UID...",
			Short: "delete records by uid (after their node deleted the user's data)",
			Long: `Delete each record given. All uids are checked before any is sent; the
first failure stops the command (the records before it are deleted).
"wimms purge" does this after asking each record's node to delete its data.`,
			Example: exampleOf("wimms records delete 42", "wimms records delete 42 43 44 --json"),
			Args:    argsAtLeast(1),
		}, adminOpts{service: true}, (*adminCmd).deleteRecords))
}

func newRecordsOldCmd() *cobra.Command {
	var grace time.Duration
	var limit, offset int
	cmd := adminCommand(&cobra.Command{
		Use:   "old",
		Short: "list records replaced longer ago than --grace, newest first",
		Example: exampleOf(
			"wimms records old --grace 168h",
			"wimms records old --grace 0 --limit 500 --json",
		),
		Args: cobra.NoArgs,
	}, adminOpts{service: true, read: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, _ []string) error {
		if grace < 0 {
			return usageErrorf("--grace must not be negative")
		}
		if limit < 1 || limit > 1000 {
			return usageErrorf("--limit %d: must be from 1 to 1000", limit)
		}
		if offset < 0 {
			return usageErrorf("--offset must not be negative")
		}
		graceMs := grace.Milliseconds()
		recs, _, err := c.API.OldRecords(ctx, a.service, client.OldRecordsQuery{GraceMs: &graceMs, Limit: limit, Offset: offset}, a.readOpts())
		return a.answer(out, "old records of "+a.service, err, map[string]any{"records": orEmpty(recs)}, func(w io.Writer) {
			recordTable(w, true, recs)
		})
	})
	fl := cmd.Flags()
	fl.DurationVar(&grace, "grace", 7*24*time.Hour, "only records replaced at least this long ago")
	fl.IntVar(&limit, "limit", 100, "at most this many records (1 to 1000)")
	fl.IntVar(&offset, "offset", 0, "skip this many records (paging)")
	return cmd
}

func (a *adminCmd) deleteRecords(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	uids := make([]int64, len(args))
	for i, s := range args {
		uid, err := strconv.ParseInt(s, 10, 64)
		if err != nil || uid <= 0 {
			return usageErrorf("uid %q: must be a positive integer", s)
		}
		uids[i] = uid
	}
	deleted := []int64{}
	for _, uid := range uids {
		if _, err := c.API.DeleteRecord(ctx, a.service, uid); err != nil {
			failed := callFailed(fmt.Sprintf("delete record %d of %s", uid, a.service), err)
			if len(deleted) > 0 {
				failed.Msg += fmt.Sprintf(" (deleted before it: %v)", deleted)
			}
			return failed
		}
		deleted = append(deleted, uid)
	}
	return a.emit(out, map[string][]int64{"deleted": deleted}, func(w io.Writer) {
		for _, uid := range deleted {
			fmt.Fprintf(w, "deleted record %d\n", uid)
		}
	})
}

// NewEventCmd is `wimms event`: apply an account event (delete, reset,
// passwordChange) in every service.
func NewEventCmd() *cobra.Command {
	var generation int64
	cmd := adminCommand(&cobra.Command{
		Use:   "event EVENT EMAIL",
		Short: "apply an account event (delete, reset, passwordChange) in every service (admin)",
		Long: `Apply an FxA account event to the user in every service: delete retires
them; reset and passwordChange record the new --generation.`,
		Example: exampleOf(
			"wimms event delete alice@example.com",
			"wimms event passwordChange alice@example.com --generation 1700000000000",
		),
		Args: argsExactly(2),
	}, adminOpts{write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		event := args[0]
		switch event {
		case "delete", "reset", "passwordChange":
		default:
			return usageErrorf("event %q: want delete, reset or passwordChange", event)
		}
		if err := checkEmailArg(args[1]); err != nil {
			return err
		}
		req := wire.EventRequest{Event: event, Email: args[1]}
		var err error
		if req.Generation, err = a.givenCount("generation", generation); err != nil {
			return err
		}
		n, _, err := c.Admin.Event(ctx, req, a.writeOpts())
		return a.answer(out, fmt.Sprintf("%s event for %s", event, args[1]), err, map[string]int64{"applied": n}, func(w io.Writer) {
			fmt.Fprintf(w, "%s event for %s: applied to %s\n", event, args[1], plural(n, "user"))
		})
	})
	cmd.Flags().Int64Var(&generation, "generation", 0, "the account's new generation (reset, passwordChange)")
	return cmd
}
