package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/jepsen"
	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// newJepsenCmd wires flags to jepsen.Run and maps the verdict to the exit
// code: 0 valid, 1 invalid, 2 could not run (or could not judge).
func newJepsenCmd() *cobra.Command {
	var f jepsenFlags
	cmd := &cobra.Command{
		Use:   "jepsen",
		Short: "chaos test: a real cluster, real faults (iptables, kill -9, SIGSTOP), a linearizability checker",
		Long: `Start --members real wimms server processes on 127.0.0.10, .11, ...; run
--clients concurrent clients against all of them while the nemesis injects
faults; heal, read the final state and judge the history with porcupine and
the invariants of docs/spec.md §1. Writes summary.json, history.html, history.jsonl
and every member's log to --out.

With --docker the cluster under test is the compose deployment instead:
the harness builds an image from --bin (a static binary) with the
Dockerfile next to --compose-file, or uses --image, brings up its own
project (random name, free ports, free subnet), kills with docker kill,
pauses with docker pause and partitions with iptables in each container's
network namespace, then runs docker-compose down -v, also on failure and
Ctrl-C.

Partitions need root and iptables (with --docker also nsenter). Exit
status: 0 valid, 1 invalid, 2 could not run or could not judge. See
docs/chaos.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runJepsen(cmd, &f) },
	}
	f.register(cmd.Flags())
	return cmd
}

// jepsenFlags are wimms jepsen's flags; opts and dockerOpts are filled
// in place and completed by runJepsen.
type jepsenFlags struct {
	opts         jepsen.Options
	nemesis      string
	listSeedBugs bool
	cleanup      bool
	docker       bool
	dockerOpts   jepsen.DockerOptions
}

func (f *jepsenFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.opts.Bin, "bin", "", "wimms binary to start members from, or with --docker to build the image from; must then be static (default: this executable; with --seed-bug a chaos build, built with go build -tags chaos when this is not one)")
	fl.IntVar(&f.opts.Members, "members", 3, "cluster members (with --docker: the compose file's services)")
	fl.DurationVar(&f.opts.Duration, "duration", 60*time.Second, "how long clients and the nemesis run")
	fl.StringVar(&f.nemesis, "nemesis", "partition,kill,pause",
		"faults: partition, kill, pause, membership, none, or exact kinds (partition-halves, partition-leader, partition-ring, partition-bridge, kill-leader, pause-leader)")
	fl.StringVar(&f.opts.OutDir, "out", "", "output directory (default jepsen-out/<time>)")
	fl.IntVar(&f.opts.Clients, "clients", 10, "concurrent clients")
	fl.Uint64Var(&f.opts.Seed, "seed", 0, "seed of the harness's random choices (default: time)")
	fl.StringVar(&f.opts.SeedBug, "seed-bug", "", "start the members with this seeded bug (see --list-seed-bugs; needs a chaos build, see --bin)")
	fl.BoolVar(&f.listSeedBugs, "list-seed-bugs", false, "list the seeded bugs the harness can catch and exit")
	fl.BoolVar(&f.cleanup, "cleanup", false, "remove iptables rules left by a killed run and exit (with --docker: its compose projects and images)")
	fl.BoolVar(&f.docker, "docker", false, "test the docker-compose deployment instead of local processes (see docs/chaos.md)")
	fl.StringVar(&f.dockerOpts.ComposeFile, "compose-file", "docker-compose.yml", "with --docker: the compose file; the Dockerfile next to it builds the image")
	fl.StringVar(&f.dockerOpts.Image, "image", "", "with --docker: an existing image to run (default: build wimms-jepsen:<project> from --bin, removed afterwards)")
	fl.StringVar(&f.dockerOpts.Project, "project", "", "with --docker: compose project name (default: wimmsjepsen<random>)")
	fl.Float64Var(&f.opts.Rate, "rate", 150, "target operations per second over all clients")
	fl.IntVar(&f.opts.Emails, "emails", 16, "distinct users the clients share")
	fl.BoolVar(&f.opts.TLS, "tls", false, "run the members with mutual TLS and a gossip key (issued into --out/pki); the harness talks HTTPS")
	fl.IntVar(&f.opts.FirstIP, "first-ip", 10, "member i listens on 127.0.0.(first-ip+i): move it to run beside another run")
	fl.IntVar(&f.opts.HTTPPort, "base-port", 24080, "members' HTTP port; Raft is base-port+1, gossip base-port+2")
	fl.DurationVar(&f.opts.RequestTimeout, "request-timeout", 5*time.Second, "per request; a write that times out has an unknown outcome")
}

// runJepsen answers --list-seed-bugs and --cleanup, or runs one chaos test
// and maps its verdict to the exit code.
func runJepsen(cmd *cobra.Command, f *jepsenFlags) error {
	out := cmd.OutOrStdout()
	if f.listSeedBugs {
		for _, b := range jepsen.SeedBugs() {
			fmt.Fprintf(out, "%-24s exposed by --nemesis %s, caught as %s\n", b.Name, b.Nemesis, strings.Join(b.CaughtBy, ", "))
		}
		return nil
	}
	if f.cleanup {
		return jepsenCleanup(out, f)
	}
	if err := f.complete(cmd); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := jepsen.Run(ctx, f.opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			if f.docker {
				return exitError{code: 2, msg: "jepsen: interrupted; compose project removed"}
			}
			return exitError{code: 2, msg: "jepsen: interrupted; members stopped and rules removed"}
		}
		return exitError{code: 2, msg: fmt.Sprintf("jepsen: could not run: %v", err)}
	}
	printJepsenSummary(out, sum, f.opts.OutDir)
	switch sum.Verdict {
	case checker.VerdictValid:
		return nil
	case checker.VerdictInvalid:
		return exitError{code: 1}
	}
	return exitError{code: 2, msg: "jepsen: the run could not be judged"}
}

// jepsenCleanup removes what a killed run left behind: its compose
// projects with --docker, else the harness's iptables rules.
func jepsenCleanup(out io.Writer, f *jepsenFlags) error {
	if f.docker {
		removed, err := jepsen.CleanupDocker(f.dockerOpts.ComposeFile)
		for _, p := range removed {
			fmt.Fprintf(out, "jepsen: removed leftover project %s (containers, network, volumes, image)\n", p)
		}
		if err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("jepsen docker cleanup: %v", err)}
		}
		fmt.Fprintln(out, "jepsen: no leftover docker projects of dead runs")
		return nil
	}
	if err := jepsen.CleanupIptables(); err != nil {
		return exitError{code: 2, msg: fmt.Sprintf("jepsen cleanup: %v", err)}
	}
	fmt.Fprintln(out, "jepsen: no harness iptables rules left")
	return nil
}

// complete fills the options the flags leave open: the nemesis kinds, the
// docker deployment, the binary (this one by default), the output
// directory and where progress goes. A docker-only flag without --docker
// is refused rather than ignored.
func (f *jepsenFlags) complete(cmd *cobra.Command) error {
	kinds, err := nemesis.Parse(f.nemesis)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	f.opts.Nemesis = kinds
	if f.docker {
		f.opts.Docker = &f.dockerOpts
	} else if cmd.Flags().Changed("image") || cmd.Flags().Changed("compose-file") || cmd.Flags().Changed("project") {
		return exitError{code: 2, msg: "--image, --compose-file and --project need --docker"}
	}
	if f.opts.Bin == "" && (!f.docker || f.dockerOpts.Image == "") {
		if f.opts.Bin, err = os.Executable(); err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("find this executable: %v", err)}
		}
	}
	if f.opts.OutDir == "" {
		f.opts.OutDir = fmt.Sprintf("jepsen-out/%s", time.Now().Format("20060102-150405"))
	}
	f.opts.Progress = cmd.ErrOrStderr()
	return nil
}

// printJepsenSummary prints the verdict line, what fail and info mean (a
// first-time reader takes them for errors), and each anomaly.
func printJepsenSummary(out io.Writer, sum jepsen.Summary, outDir string) {
	fmt.Fprintf(out, "jepsen: %s — %d ops (%d ok, %d fail, %d info), %d faults, %d anomalies, lost_acknowledged_writes: %d; see %s\n",
		sum.Verdict, sum.Ops, sum.OpsOK, sum.OpsFail, sum.OpsInfo, sum.NemesisEvents, len(sum.Anomalies), sum.LostAcknowledgedWrites, outDir)
	fmt.Fprintln(out, "  fail: refused with nothing changed (expected while faults run: no leader, a member down); "+
		"info: outcome unknown (a timeout after sending), judged both ways. Neither is an error; only anomalies are.")
	for _, a := range sum.Anomalies {
		where := a.Email
		if a.NodeID != 0 {
			where = fmt.Sprintf("node %d", a.NodeID)
		}
		fmt.Fprintf(out, "  %s %s: %s\n", a.Kind, where, a.Detail)
	}
}
