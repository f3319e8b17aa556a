package admincli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// NewServiceCmd is `wimms service`: list, get, put and delete services.
func NewServiceCmd() *cobra.Command {
	return groupCmd("service", "list, show, create or update, and delete services",
		`A service is what users are assigned nodes for, named {app}-{version}
(sync-1.5 for Firefox Sync). Its pattern builds a user's api_endpoint from
the node and uid.`,
		adminCommand(&cobra.Command{
			Use:     "list",
			Short:   "list every service",
			Example: exampleOf("wimms service list", "wimms service list --json --consistency linearizable"),
			Args:    cobra.NoArgs,
		}, adminOpts{read: true}, (*adminCmd).listServices),
		adminCommand(&cobra.Command{
			Use:     "get SERVICE",
			Short:   "show one service",
			Example: exampleOf("wimms service get sync-1.5"),
			Args:    argsOne(checkServiceArg),
		}, adminOpts{read: true}, (*adminCmd).getService),
		newServicePutCmd(),
		adminCommand(&cobra.Command{
			Use:     "delete SERVICE",
			Short:   "delete a service that has no nodes and no records (admin)",
			Example: exampleOf("wimms service delete sync-1.1"),
			Args:    argsOne(checkServiceArg),
		}, adminOpts{write: true}, (*adminCmd).deleteService))
}

func serviceTable(w io.Writer, svcs ...wire.Service) {
	fmt.Fprintln(w, "ID\tSERVICE\tPATTERN\tRELEASE RATE\tNEW USERS\tSPREAD")
	for _, s := range svcs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%v\t%d\n", s.ID, s.Service, s.Pattern, s.ReleaseRate, s.AllowNewUsers, s.Spread)
	}
}

func (a *adminCmd) listServices(ctx context.Context, c MemberClients, out io.Writer, _ []string) error {
	svcs, _, err := c.API.ListServices(ctx, a.readOpts())
	return a.answer(out, "list services", err, map[string]any{"services": orEmpty(svcs)}, func(w io.Writer) { serviceTable(w, svcs...) })
}

func (a *adminCmd) getService(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	s, _, err := c.API.GetService(ctx, args[0], a.readOpts())
	return a.answer(out, "get service "+args[0], err, s, func(w io.Writer) { serviceTable(w, *s) })
}

func newServicePutCmd() *cobra.Command {
	var pattern, rate string
	var allow bool
	var spread int64
	cmd := adminCommand(&cobra.Command{
		Use:   "put SERVICE --pattern PATTERN",
		Short: "create a service, or update one (admin)",
		Long: `Create SERVICE, or update it when it exists. --pattern is always required;
the other settings keep their stored value on an update when not given, and
take their defaults (release rate 0.1, new users allowed, spread 1) on
create. The pattern may use {node}, {uid} and {service}.`,
		Example: exampleOf(
			"wimms service put sync-1.5 --pattern '{node}/1.5/{uid}'",
			"wimms service put sync-1.5 --pattern '{node}/1.5/{uid}' --release-rate 0.25 --allow-new-users=false",
		),
		Args: argsOne(checkServiceArg),
	}, adminOpts{write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		if !a.given("pattern") {
			return usageErrorf("--pattern is required, e.g. --pattern '{node}/1.5/{uid}'")
		}
		if p := wire.CheckPattern(pattern); p != "" {
			return usageErrorf("--pattern %q: %s", pattern, p)
		}
		req := wire.PutServiceRequest{Pattern: pattern}
		if a.given("release-rate") {
			if err := checkReleaseRate(rate); err != nil {
				return err
			}
			req.ReleaseRate = wire.Decimal(rate)
		}
		if a.given("allow-new-users") {
			req.AllowNewUsers = wire.Bool(allow)
		}
		if a.given("spread") {
			if spread < 1 {
				return usageErrorf("--spread %d: must be at least 1", spread)
			}
			req.Spread = wire.Int64(spread)
		}
		s, _, err := c.Admin.PutService(ctx, args[0], req, a.writeOpts())
		return a.answer(out, "put service "+args[0], err, s, func(w io.Writer) { serviceTable(w, *s) })
	})
	fl := cmd.Flags()
	fl.StringVar(&pattern, "pattern", "", "api_endpoint pattern, e.g. {node}/1.5/{uid} (required)")
	fl.StringVar(&rate, "release-rate", "", "release rate, a decimal in (0, 1] (default on create: 0.1)")
	fl.BoolVar(&allow, "allow-new-users", true, "whether new users may be assigned (default on create: true)")
	fl.Int64Var(&spread, "spread", 1, "pick among the N best nodes (default on create: 1)")
	return cmd
}

func (a *adminCmd) deleteService(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	_, err := c.Admin.DeleteService(ctx, args[0], a.writeOpts())
	return a.answer(out, "delete service "+args[0], err, map[string]string{"deleted": args[0]}, func(w io.Writer) {
		fmt.Fprintf(w, "deleted service %s\n", args[0])
	})
}
