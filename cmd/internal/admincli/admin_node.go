package admincli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

// NewNodeCmd is `wimms node`: list, get, add, set, down/up, unassign and
// remove the storage nodes of a service.
func NewNodeCmd() *cobra.Command {
	return groupCmd("node", "list, show, add, change, down/up, unassign and remove a service's storage nodes",
		`A node is a storage server users of a service are assigned to. Commands
that take NODE accept its id (as "wimms node list" shows it) or its URL,
as the token server's add_node.py, remove_node.py and unassign_node.py do.`,
		adminCommand(&cobra.Command{
			Use:     "list",
			Short:   "list a service's nodes with their load",
			Example: exampleOf("wimms node list", "wimms node list --service sync-1.5 --json"),
			Args:    cobra.NoArgs,
		}, adminOpts{service: true, read: true}, (*adminCmd).listNodes),
		adminCommand(&cobra.Command{
			Use:     "get NODE",
			Short:   "show one node, by id or URL",
			Example: exampleOf("wimms node get 3", "wimms node get https://sync-3.example.com"),
			Args:    argsExactly(1),
		}, adminOpts{service: true, read: true}, (*adminCmd).getNode),
		newNodeAddCmd(), newNodeSetCmd(), newNodeDownUpCmd(true), newNodeDownUpCmd(false), newNodeUnassignCmd(), newNodeRemoveCmd())
}

func nodeTable(w io.Writer, nodes ...wire.Node) {
	fmt.Fprintln(w, "ID\tNODE\tCAPACITY\tAVAILABLE\tLOAD\tDOWNED\tBACKOFF")
	for _, n := range nodes {
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%v\t%v\n", n.ID, n.Node, n.Capacity, n.Available, n.CurrentLoad, n.Downed, n.Backoff)
	}
}

// nodeRef is a NODE argument: an id, or a URL to look up.
type nodeRef struct {
	id  int64
	url string
}

func parseNodeRef(s string) (nodeRef, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if id <= 0 {
			return nodeRef{}, usageErrorf("node id %d: must be positive", id)
		}
		return nodeRef{id: id}, nil
	}
	if p := wire.CheckNodeURL(s); p != "" {
		return nodeRef{}, usageErrorf("node %q: want a node id or the node's http(s) URL (%s)", s, p)
	}
	return nodeRef{url: s}, nil
}

// findNodeByURL looks the node up with GET .../nodes?node=URL. A member
// older than that lookup refuses the parameter; then the service's nodes
// are listed and filtered here.
func findNodeByURL(ctx context.Context, c *client.Client, service, nodeURL string, opts client.CallOptions) (wire.Node, error) {
	nodes, _, err := c.ListNodesByURL(ctx, service, nodeURL, opts)
	if client.IsUnknownQueryParameter(err, "node") {
		nodes, _, err = c.ListNodes(ctx, service, opts)
	}
	if err != nil {
		return wire.Node{}, callFailed(fmt.Sprintf("look up node %s in %s", nodeURL, service), err)
	}
	for _, n := range nodes {
		if n.Node == nodeURL {
			return n, nil
		}
	}
	return wire.Node{}, ExitError{Code: ExitAPIError,
		Msg: fmt.Sprintf("no node %s in service %s (\"wimms node list --service %s\" lists them)", nodeURL, service, service)}
}

// nodeArg resolves a NODE argument to an id (looking a URL up first) and
// the node when the lookup fetched it.
func (a *adminCmd) nodeArg(ctx context.Context, c MemberClients, arg string, opts client.CallOptions) (int64, *wire.Node, error) {
	ref, err := parseNodeRef(arg)
	if err != nil {
		return 0, nil, err
	}
	if ref.url == "" {
		return ref.id, nil, nil
	}
	n, err := findNodeByURL(ctx, c.API, a.service, ref.url, opts)
	if err != nil {
		return 0, nil, err
	}
	return n.ID, &n, nil
}

// nodeLabel names a node as the user gave it, with its id.
func nodeLabel(arg string, id int64) string {
	if strconv.FormatInt(id, 10) == arg {
		return "node " + arg
	}
	return fmt.Sprintf("%s (id %d)", arg, id)
}

func (a *adminCmd) listNodes(ctx context.Context, c MemberClients, out io.Writer, _ []string) error {
	nodes, _, err := c.API.ListNodes(ctx, a.service, a.readOpts())
	return a.answer(out, "list nodes of "+a.service, err, map[string]any{"nodes": orEmpty(nodes)}, func(w io.Writer) { nodeTable(w, nodes...) })
}

func (a *adminCmd) getNode(ctx context.Context, c MemberClients, out io.Writer, args []string) error {
	id, n, err := a.nodeArg(ctx, c, args[0], a.readOpts())
	if err != nil {
		return err
	}
	if n == nil {
		n, _, err = c.API.GetNode(ctx, a.service, id, a.readOpts())
	}
	return a.answer(out, fmt.Sprintf("get node %d of %s", id, a.service), err, n, func(w io.Writer) { nodeTable(w, *n) })
}

// nodeStateFlags are the settable node fields; only those given are sent.
type nodeStateFlags struct {
	capacity, available, load int64
	downed, backoff           bool
}

func (f *nodeStateFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.Int64Var(&f.capacity, "capacity", 0, "how many users the node may hold")
	fl.Int64Var(&f.available, "available", 0, "slots open for new users now (the release rate refills it)")
	fl.Int64Var(&f.load, "current-load", 0, "users assigned to the node")
	fl.BoolVar(&f.downed, "downed", false, "the node is out of service: no new users, no capacity release")
	fl.BoolVar(&f.backoff, "backoff", false, "the node gets no new users; capacity release still applies")
}

// state is the NodeState of the flags given on the command line of a.
func (f *nodeStateFlags) state(a *adminCmd) (wire.NodeState, error) {
	var s wire.NodeState
	var err error
	if s.Available, err = a.givenCount("available", f.available); err != nil {
		return s, err
	}
	if s.CurrentLoad, err = a.givenCount("current-load", f.load); err != nil {
		return s, err
	}
	if a.given("downed") {
		s.Downed = wire.Bool(f.downed)
	}
	if a.given("backoff") {
		s.Backoff = wire.Bool(f.backoff)
	}
	return s, nil
}

func newNodeAddCmd() *cobra.Command {
	var f nodeStateFlags
	cmd := adminCommand(&cobra.Command{
		Use:   "add URL --capacity N",
		Short: "add a node to a service (admin)",
		Example: exampleOf(
			"wimms node add https://sync-3.example.com --capacity 1000",
			"wimms node add https://sync-4.example.com --capacity 1000 --available 100 --backoff",
		),
		Args: argsExactly(1),
	}, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		if err := checkNodeURLArg(args[0]); err != nil {
			return err
		}
		if !a.given("capacity") {
			return usageErrorf("--capacity is required")
		}
		if err := checkNonNegative("capacity", f.capacity); err != nil {
			return err
		}
		st, err := f.state(a)
		if err != nil {
			return err
		}
		n, _, err := c.Admin.AddNode(ctx, a.service, wire.AddNodeRequest{Node: args[0], Capacity: f.capacity, NodeState: st}, a.writeOpts())
		return a.answer(out, fmt.Sprintf("add node %s to %s", args[0], a.service), err, n, func(w io.Writer) { nodeTable(w, *n) })
	})
	f.register(cmd)
	return cmd
}

func newNodeSetCmd() *cobra.Command {
	var f nodeStateFlags
	cmd := adminCommand(&cobra.Command{
		Use:   "set NODE [--capacity N] [--available N] [--current-load N] [--downed=BOOL] [--backoff=BOOL]",
		Short: "change a node's capacity, availability, load or flags (admin)",
		Long:  "Change the fields given, and only those; at least one is required.",
		Example: exampleOf(
			"wimms node set https://sync-3.example.com --capacity 2000 --available 200",
			"wimms node set 3 --backoff=false",
		),
		Args: argsExactly(1),
	}, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		if _, err := parseNodeRef(args[0]); err != nil {
			return err
		}
		st, err := f.state(a)
		if err != nil {
			return err
		}
		req := wire.UpdateNodeRequest{NodeState: st}
		if req.Capacity, err = a.givenCount("capacity", f.capacity); err != nil {
			return err
		}
		if req.Capacity == nil && st == (wire.NodeState{}) {
			return usageErrorf("nothing to change: give at least one of --capacity, --available, --current-load, --downed, --backoff")
		}
		return a.updateNode(ctx, c, out, args[0], req)
	})
	f.register(cmd)
	return cmd
}

func (a *adminCmd) updateNode(ctx context.Context, c MemberClients, out io.Writer, arg string, req wire.UpdateNodeRequest) error {
	id, _, err := a.nodeArg(ctx, c, arg, client.CallOptions{})
	if err != nil {
		return err
	}
	n, _, err := c.Admin.UpdateNode(ctx, a.service, id, req, a.writeOpts())
	return a.answer(out, fmt.Sprintf("update node %s of %s", arg, a.service), err, n, func(w io.Writer) { nodeTable(w, *n) })
}

func newNodeDownUpCmd(down bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "up NODE",
		Short:   "mark a node up again (clear downed): it takes new users (admin)",
		Example: exampleOf("wimms node up https://sync-3.example.com", "wimms node up 3"),
		Args:    argsExactly(1),
	}
	if down {
		cmd.Use = "down NODE"
		cmd.Short = "mark a node down: it gets no new users and no capacity release; its users stay (admin)"
		cmd.Long = `Mark NODE out of service: it gets no allocations and no capacity release.
Nobody moves on their own; "wimms node unassign" moves the node's users.`
		cmd.Example = exampleOf("wimms node down https://sync-3.example.com", "wimms node down 3")
	}
	return adminCommand(cmd, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		if _, err := parseNodeRef(args[0]); err != nil {
			return err
		}
		return a.updateNode(ctx, c, out, args[0], wire.UpdateNodeRequest{NodeState: wire.NodeState{Downed: wire.Bool(down)}})
	})
}

// unassignResult is the answer of unassign and remove.
type unassignResult struct {
	Unassigned int64 `json:"unassigned"`
}

func newNodeUnassignCmd() *cobra.Command {
	return nodeUnassigningCmd(&cobra.Command{
		Use:   "unassign NODE",
		Short: "move every user off a node: their records are marked replaced (admin)",
		Long: `Mark every live record on NODE replaced (unassign_node.py): each of its
users gets a new node at the next login. The node stays.`,
		Example: exampleOf("wimms node unassign https://sync-3.example.com"),
	}, "unassign", (*client.Client).UnassignNode, func(node string, n int64) string {
		return fmt.Sprintf("unassigned %s from %s", plural(n, "record"), node)
	})
}

func newNodeRemoveCmd() *cobra.Command {
	return nodeUnassigningCmd(&cobra.Command{
		Use:   "remove NODE",
		Short: "delete a node and unassign its records (admin)",
		Long: `Delete NODE from the service, then mark its records replaced
(remove_node.py). Its users get a new node at their next login.`,
		Example: exampleOf("wimms node remove https://sync-3.example.com", "wimms node remove 3 --json"),
	}, "remove", (*client.Client).RemoveNode, func(node string, n int64) string {
		return fmt.Sprintf("removed %s; unassigned %s", node, plural(n, "record"))
	})
}

// nodeUnassigner is UnassignNode or RemoveNode: each unassigns a node's
// records and answers how many.
type nodeUnassigner func(c *client.Client, ctx context.Context, service string, id int64, opts ...client.CallOptions) (int64, client.Meta, error)

// nodeUnassigningCmd completes cmd into a command that calls act on NODE
// (verb names it in errors) and reports its count with report.
func nodeUnassigningCmd(cmd *cobra.Command, verb string, act nodeUnassigner, report func(node string, unassigned int64) string) *cobra.Command {
	cmd.Args = argsExactly(1)
	return adminCommand(cmd, adminOpts{service: true, write: true}, func(a *adminCmd, ctx context.Context, c MemberClients, out io.Writer, args []string) error {
		id, _, err := a.nodeArg(ctx, c, args[0], client.CallOptions{})
		if err != nil {
			return err
		}
		n, _, err := act(c.Admin, ctx, a.service, id, a.writeOpts())
		return a.answer(out, fmt.Sprintf("%s node %s of %s", verb, args[0], a.service), err, unassignResult{n}, func(w io.Writer) {
			fmt.Fprintln(w, report(nodeLabel(args[0], id), n))
		})
	})
}
