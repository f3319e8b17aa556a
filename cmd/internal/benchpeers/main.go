// Command benchpeers runs wimms, etcd and MariaDB side by side on this
// machine on the same two workloads (alloc, stale lookup) and prints
// throughput, latency, errors and the members' CPU per operation, with the
// ratio wimms/best peer. See DESIGN.md; `make bench-peers` runs it.
//
// It is a module of its own so that etcd's server and the MySQL driver
// never become dependencies of wimms.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

// etcdMemberArg as the first argument makes this executable an etcd
// member: the benchmark starts its etcd members by running itself, so
// etcd is built from the module proxy's source and nothing else is needed.
const etcdMemberArg = "etcd-member"

func main() {
	if len(os.Args) > 1 && os.Args[1] == etcdMemberArg {
		runEtcdMember(os.Args[2:])
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runEtcdMember hands the arguments to etcd's own main.
func runEtcdMember(args []string) {
	etcdmain.Main(append([]string{"etcd"}, args...))
}

// run parses the flags, runs the rounds and prints; it returns the exit
// status: 0 done, 1 a system failed, 2 bad flags.
func run(ctx context.Context, args []string, stdout, stderr *os.File) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchpeers:", err)
		return 2
	}
	rep, err := runAll(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "benchpeers:", err)
		return 1
	}
	if cfg.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchpeers:", err)
		return 1
	}
	if rep.failed() {
		return 1
	}
	return 0
}
