package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

func newServiceCmd() *cobra.Command {
	return groupCmd("service", "list, show, create or update, and delete services",
		`A service is what users are assigned nodes for, named {app}-{version}
(sync-1.5 for Firefox Sync). Its pattern builds a user's api_endpoint from
the node and uid.`,
		newServiceListCmd(), newServiceGetCmd(), newServicePutCmd(), newServiceDeleteCmd())
}

func serviceTable(w io.Writer, svcs ...wire.Service) {
	fmt.Fprintln(w, "ID\tSERVICE\tPATTERN\tRELEASE RATE\tNEW USERS\tSPREAD")
	for _, s := range svcs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%v\t%d\n", s.ID, s.Service, s.Pattern, s.ReleaseRate, s.AllowNewUsers, s.Spread)
	}
}

func newServiceListCmd() *cobra.Command {
	var a adminCmd
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list every service",
		Example: exampleOf("wimms service list", "wimms service list --json --consistency linearizable"),
		Args:    cobra.NoArgs,
	}
	cmd.RunE = a.run(func(ctx context.Context, c memberClients, out io.Writer, _ []string) error {
		svcs, _, err := c.api.ListServices(ctx, a.readOpts())
		if err != nil {
			return callFailed("list services", err)
		}
		svcs = orEmpty(svcs)
		return a.emit(out, map[string]any{"services": svcs}, func(w io.Writer) { serviceTable(w, svcs...) })
	})
	a.register(cmd, adminOpts{read: true})
	return cmd
}

func newServiceGetCmd() *cobra.Command {
	var a adminCmd
	cmd := &cobra.Command{
		Use:     "get SERVICE",
		Short:   "show one service",
		Example: exampleOf("wimms service get sync-1.5"),
		Args:    argsOne(checkServiceArg),
	}
	cmd.RunE = a.run(func(ctx context.Context, c memberClients, out io.Writer, args []string) error {
		s, _, err := c.api.GetService(ctx, args[0], a.readOpts())
		if err != nil {
			return callFailed("get service "+args[0], err)
		}
		return a.emit(out, s, func(w io.Writer) { serviceTable(w, *s) })
	})
	a.register(cmd, adminOpts{read: true})
	return cmd
}

func newServicePutCmd() *cobra.Command {
	var a adminCmd
	var pattern, rate string
	var allow bool
	var spread int64
	cmd := &cobra.Command{
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
	}
	cmd.RunE = a.run(func(ctx context.Context, c memberClients, out io.Writer, args []string) error {
		fl := cmd.Flags()
		if !fl.Changed("pattern") {
			return usageErrorf("--pattern is required, e.g. --pattern '{node}/1.5/{uid}'")
		}
		if p := wire.CheckPattern(pattern); p != "" {
			return usageErrorf("--pattern %q: %s", pattern, p)
		}
		req := wire.PutServiceRequest{Pattern: pattern}
		if fl.Changed("release-rate") {
			if err := checkReleaseRate(rate); err != nil {
				return err
			}
			req.ReleaseRate = wire.Decimal(rate)
		}
		if fl.Changed("allow-new-users") {
			req.AllowNewUsers = wire.Bool(allow)
		}
		if fl.Changed("spread") {
			if spread < 1 {
				return usageErrorf("--spread %d: must be at least 1", spread)
			}
			req.Spread = wire.Int64(spread)
		}
		s, _, err := c.admin.PutService(ctx, args[0], req, a.writeOpts())
		if err != nil {
			return callFailed("put service "+args[0], err)
		}
		return a.emit(out, s, func(w io.Writer) { serviceTable(w, *s) })
	})
	a.register(cmd, adminOpts{write: true})
	fl := cmd.Flags()
	fl.StringVar(&pattern, "pattern", "", "api_endpoint pattern, e.g. {node}/1.5/{uid} (required)")
	fl.StringVar(&rate, "release-rate", "", "release rate, a decimal in (0, 1] (default on create: 0.1)")
	fl.BoolVar(&allow, "allow-new-users", true, "whether new users may be assigned (default on create: true)")
	fl.Int64Var(&spread, "spread", 1, "pick among the N best nodes (default on create: 1)")
	return cmd
}

func newServiceDeleteCmd() *cobra.Command {
	var a adminCmd
	cmd := &cobra.Command{
		Use:     "delete SERVICE",
		Short:   "delete a service that has no nodes and no records (admin)",
		Example: exampleOf("wimms service delete sync-1.1"),
		Args:    argsOne(checkServiceArg),
	}
	cmd.RunE = a.run(func(ctx context.Context, c memberClients, out io.Writer, args []string) error {
		if _, err := c.admin.DeleteService(ctx, args[0], a.writeOpts()); err != nil {
			return callFailed("delete service "+args[0], err)
		}
		return a.emit(out, map[string]string{"deleted": args[0]}, func(w io.Writer) {
			fmt.Fprintf(w, "deleted service %s\n", args[0])
		})
	})
	a.register(cmd, adminOpts{write: true})
	return cmd
}
