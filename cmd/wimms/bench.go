package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/cmd/internal/bench"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

type benchFlags struct {
	addrs     []string
	apiToken  string
	workload  string
	readLevel string
	mix       string
	clients   int
	duration  time.Duration
	ops       int64
	warmup    time.Duration
	setup     bool
	service   string
	nodes     int
	users     int
	timeout   time.Duration
	asJSON    bool
	quiet     bool
	spawn     int
	bin       string
	logLevel  string
	tokenKey  string
	tls       admincli.TLSFlags
	compare   compareFlags
	yes       bool
}

// newBenchCmd wires flags to bench.Run (and bench.Spawn) and prints the
// summary; the load generator itself lives in cmd/internal/bench.
func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "drive load against a wimms cluster over HTTP and report throughput and latency",
		Long: `Drive load against a running wimms cluster (or one it spawns) over the HTTP
API and report throughput, latency percentiles and errors.

Workloads:
  alloc   allocate brand-new users (POST /v1/services/{s}/users)
  lookup  GET pre-created users at --read-level
  mix     token-server-like sign-ins: --mix login=90,new=5,keychange=5
  token   sign-ins through the token server, GET /1.0/{app}/{version} of
          --service (bench-1.0: /1.0/bench/1.0), with --users FxA access
          tokens minted before the run; --spawn turns the members' token
          server on with its own key, against --addrs give --token-jwks-key

Client i talks to the i-th address of --addrs (round robin). With --spawn N
a loopback cluster of N members is started from --bin, benchmarked and
stopped again; --target leader or followers picks which of its members the
clients use.

With --compare OLD,NEW a cluster of each binary (--spawn members, default
3) runs the workload in --rounds alternating rounds, and the medians and
their ratios (new/old) are printed: on a shared machine the ratio of one
run is the result, not the absolute numbers.

Exit status: 0 when the run completed, 1 when it could not run (setup or
cluster start failed) or no operation succeeded, 2 for bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return usageError(err)
			}
			return runBench(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.addrs, "addrs", []string{"127.0.0.1:8080"}, "comma-separated member HTTP addresses; client i uses addrs[i % n]")
	fl.StringVar(&f.apiToken, "api-token", "", "bearer token, if the cluster requires one (also given to --spawn members)")
	fl.StringVar(&f.workload, "workload", "alloc", "alloc, lookup, mix or token")
	fl.StringVar(&f.readLevel, "read-level", "default", "lookup: stale, default or linearizable")
	fl.StringVar(&f.mix, "mix", bench.DefaultMix.String(), "mix: relative weights of login, new and keychange")
	fl.IntVar(&f.clients, "clients", 64, "concurrent clients, each running one request at a time")
	fl.DurationVar(&f.duration, "duration", 20*time.Second, "measured time (ignored when --ops is given)")
	fl.Int64Var(&f.ops, "ops", 0, "measured operations instead of a duration")
	fl.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured load before measuring")
	fl.BoolVar(&f.setup, "setup", true, "create the service and its nodes first (users for lookup/mix are always prepared)")
	fl.StringVar(&f.service, "service", bench.DefaultService, "service to use")
	fl.IntVar(&f.nodes, "nodes", 10, "nodes --setup adds")
	fl.IntVar(&f.users, "users", 10000, "users prepared for lookup and mix, FxA accounts minted for token")
	fl.DurationVar(&f.timeout, "request-timeout", 10*time.Second, "bound on one request")
	fl.BoolVar(&f.asJSON, "json", false, "print the summary as JSON on stdout")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress display and no logs on stderr")
	fl.IntVar(&f.spawn, "spawn", 0, "start this many loopback members from --bin, bench them, stop them")
	fl.StringVar(&f.bin, "bin", "", "wimms binary for --spawn (default: this executable)")
	fl.StringVar(&f.tokenKey, "token-jwks-key", "", "token against --addrs: private key PEM (wimms tokenserver keygen) of a JWKS the cluster's --fxa-jwks-file holds")
	fl.StringVar(&f.logLevel, "log-level", "warn", "bench log level on stderr: trace, debug, info, warn or error")
	fl.BoolVar(&f.yes, "yes", false, "against --addrs: allow writing the bench service, its nodes and users into that cluster without asking")
	admincli.AddTLSFlags(fl, &f.tls)
	addCompareFlags(fl, &f.compare)
	return cmd
}

func usageError(err error) error { return exitError{code: 2, msg: err.Error()} }

func benchConfig(cmd *cobra.Command, f benchFlags) (bench.Config, error) {
	fl := cmd.Flags()
	var cfg bench.Config
	wl, err := bench.ParseWorkload(f.workload)
	if err != nil {
		return cfg, fmt.Errorf("--workload: %w", err)
	}
	mix, err := bench.ParseMix(f.mix)
	if err != nil {
		return cfg, fmt.Errorf("--mix: %w", err)
	}
	if err := checkBenchFlags(fl, f, wl); err != nil {
		return cfg, err
	}
	tokenKey, err := benchTokenKey(f, wl)
	if err != nil {
		return cfg, err
	}
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return cfg, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", f.logLevel)
	}
	cfg = bench.Config{
		Addrs:          f.addrs,
		APIToken:       f.apiToken,
		Workload:       wl,
		ReadLevel:      f.readLevel,
		Mix:            mix,
		Clients:        f.clients,
		Duration:       f.duration,
		Ops:            f.ops,
		Warmup:         f.warmup,
		Setup:          f.setup,
		Service:        f.service,
		Nodes:          f.nodes,
		Users:          f.users,
		RequestTimeout: f.timeout,
		TokenKey:       tokenKey,
	}
	if f.ops > 0 {
		cfg.Duration = 0
	}
	if f.spawn > 0 && f.tls.CA != "" {
		return cfg, errors.New("--tls-ca applies to --addrs: --spawn starts plain members")
	}
	if cfg.TLS, err = f.tls.Config(); err != nil {
		return cfg, err
	}
	// Validate now, before a cluster is spawned for a run that cannot start.
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// checkBenchFlags refuses flags that are out of range or that do not
// apply to the chosen workload or mode, so a flag is never silently
// ignored.
func checkBenchFlags(fl *pflag.FlagSet, f benchFlags, wl bench.Workload) error {
	if fl.Changed("mix") && wl != bench.WorkloadMix {
		return errors.New("--mix only applies to --workload mix")
	}
	if fl.Changed("read-level") && wl != bench.WorkloadLookup {
		return errors.New("--read-level only applies to --workload lookup")
	}
	if fl.Changed("ops") && fl.Changed("duration") {
		return errors.New("give --duration or --ops, not both")
	}
	if fl.Changed("ops") && f.ops <= 0 {
		return fmt.Errorf("--ops %d: want a positive number", f.ops)
	}
	if f.duration <= 0 && f.ops == 0 {
		return fmt.Errorf("--duration %s: want a positive duration", f.duration)
	}
	if f.clients < 1 {
		return fmt.Errorf("--clients %d: want at least 1", f.clients)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--request-timeout %s: want a positive duration", f.timeout)
	}
	if f.spawn < 0 {
		return fmt.Errorf("--spawn %d: must not be negative", f.spawn)
	}
	if f.spawn > 0 && fl.Changed("addrs") {
		return errors.New("--addrs and --spawn exclude each other: --spawn benches the members it starts")
	}
	if err := checkCompareFlags(fl, f); err != nil {
		return err
	}
	if f.spawn == 0 && fl.Changed("bin") {
		return errors.New("--bin only applies with --spawn")
	}
	return nil
}

func runBench(cmd *cobra.Command, f benchFlags) error {
	cfg, err := benchConfig(cmd, f)
	if err != nil {
		return usageError(err)
	}
	logOut := os.Stderr
	level := hclog.LevelFromString(f.logLevel)
	if f.quiet {
		level = hclog.Off
	} else {
		cfg.Progress = os.Stderr
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: level, Output: logOut})
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.compare.enabled() {
		return runCompare(ctx, cmd, f, cfg, logger)
	}

	if f.spawn > 0 {
		bin := f.bin
		if bin == "" {
			if bin, err = os.Executable(); err != nil {
				return exitError{code: 1, msg: fmt.Sprintf("finding this executable for --spawn: %v (give --bin)", err)}
			}
		}
		logger.Info("spawning cluster", "members", f.spawn, "bin", bin)
		cluster, err := bench.Spawn(ctx, bench.SpawnConfig{Members: f.spawn, Bin: bin, APIToken: f.apiToken, Logger: logger.Named("spawn"),
			BasePort: f.compare.basePort, ServerFlags: f.compare.serverFlags, TokenServer: cfg.Workload == bench.WorkloadToken})
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "wimms bench: warning: stopping spawned cluster:", err)
			}
		}()
		if k := cluster.TokenKey(); k != nil {
			cfg.TokenKey = k
		}
		cfg.MembersCPU = cluster.MembersCPU
		target, _ := bench.ParseTarget(f.compare.target)
		if cfg.Addrs, err = cluster.Targets(ctx, target); err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
	}

	if f.spawn == 0 {
		if err := confirmWritesInto(cmd, f, cfg); err != nil {
			return err
		}
	}
	summary, err := bench.Run(ctx, cfg)
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	if err := writeBenchResult(cmd.OutOrStdout(), f.asJSON, summary); err != nil {
		return err
	}
	return noSuccessError(summary)
}

// writeBenchResult prints a run's summary or a comparison as indented JSON
// (--json) or as its text table.
func writeBenchResult(out io.Writer, asJSON bool, v interface{ WriteText(io.Writer) error }) error {
	var err error
	if asJSON {
		err = writeJSON(out, v)
	} else {
		err = v.WriteText(out)
	}
	if err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("writing result: %v", err)}
	}
	return nil
}

// benchTokenKey reads --token-jwks-key. A spawned cluster (--spawn,
// --compare) trusts a key the bench makes itself; a running one needs the
// key given.
func benchTokenKey(f benchFlags, wl bench.Workload) (*fxa.SigningKey, error) {
	spawned := f.spawn > 0 || f.compare.enabled()
	switch {
	case f.tokenKey != "" && wl != bench.WorkloadToken:
		return nil, errors.New("--token-jwks-key only applies to --workload token")
	case f.tokenKey != "" && spawned:
		return nil, errors.New("--token-jwks-key applies to --addrs: spawned members trust a key the bench makes")
	case wl != bench.WorkloadToken || spawned:
		return nil, nil
	case f.tokenKey == "":
		return nil, errors.New("--workload token against --addrs needs --token-jwks-key FILE: the private key whose JWKS the members' --fxa-jwks-file holds")
	}
	data, err := os.ReadFile(f.tokenKey)
	if err != nil {
		return nil, fmt.Errorf("--token-jwks-key: %w", err)
	}
	key, err := fxa.ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("--token-jwks-key %s: %w", f.tokenKey, err)
	}
	return &key, nil
}

// noSuccessError makes a run in which not one operation succeeded fail, so
// that scripts do not record a wall of errors as a benchmark result.
func noSuccessError(s *bench.Summary) error {
	if s.Ops > 0 && s.OK == 0 {
		return exitError{code: 1, msg: fmt.Sprintf("no operation succeeded (%d errors)", s.Errors)}
	}
	return nil
}

// confirmWritesInto asks before a run writes into a cluster the bench did
// not start: the bench service and its users stay there. --yes answers
// for scripts; without a terminal to ask on, the run is refused.
func confirmWritesInto(cmd *cobra.Command, f benchFlags, cfg bench.Config) error {
	if f.yes {
		return nil
	}
	what := fmt.Sprintf("wimms bench writes into the cluster at %s: service %q, %d nodes and users that stay there after the run",
		strings.Join(cfg.Addrs, ","), cfg.Service, cfg.Nodes)
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return usageErrorf("%s; give --yes to allow it, or --spawn N to bench a throwaway cluster", what)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s.\nProceed? [y/N] ", what)
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return exitError{code: exitUsage, msg: "not confirmed: nothing was written"}
	}
	return nil
}
