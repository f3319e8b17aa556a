package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wimms-dev/wimms/cluster"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/internal/tlsconf"
	"github.com/wimms-dev/wimms/store"
)

// seedBugFlags exists only in a chaos build (seedbugs_chaos.go): it adds
// --seed-bug and --list-seed-bugs to `wimms server` and returns the step
// that acts on them once flags and environment are read. A default build
// has neither the flags nor the bugs behind them.
var seedBugFlags func(*pflag.FlagSet) seedBugStep

// seedBugStep switches the chosen seeded bug on before the member starts,
// or answers --list-seed-bugs (done) instead of starting it.
type seedBugStep func(stdout, stderr io.Writer) (done bool, err error)

type serverFlags struct {
	id, dataDir                         string
	httpAddr, httpAdvertise             string
	raftAddr, raftAdvertise             string
	gossipAddr, gossipAdvertise         string
	join                                []string
	zone                                string
	apiToken, adminToken                string
	logLevel                            string
	logJSON                             bool
	logFormat                           string
	reapAfter, applyTimeout, leaderWait time.Duration
	snapshotThreshold                   uint64
	shutdownTimeout                     time.Duration
	pprof                               bool
	tokens                              tokenFlags // tokenserver.go
	sec                                 securityFlags
	httpLimits                          httpapi.Limits
	storage                             storageFlags // storageflags.go
}

func newServerCmd() *cobra.Command {
	var (
		f       serverFlags
		seedBug seedBugStep
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "run a cluster member (bootstraps a one-member cluster on an empty data dir without --join)",
		Long: `Run one wimms member.

With no --join and an empty data directory the member bootstraps a new
one-member cluster and is ready to serve. With --join it joins the cluster
reachable at any of those addresses (members' HTTP or gossip addresses). A
restarted member (non-empty data directory) rejoins with the state it had and
never bootstraps a second cluster.

Every flag can also be set from the environment as WIMMS_<FLAG>, e.g.
WIMMS_DATA_DIR=/var/lib/wimms. A flag given on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			if seedBug != nil {
				if done, err := seedBug(cmd.OutOrStdout(), cmd.ErrOrStderr()); done || err != nil {
					return err
				}
			}
			return runServer(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "wimms-1", "member id, unique in the cluster and stable across restarts")
	fl.StringVar(&f.dataDir, "data-dir", "./data", "data directory (Raft log, stable store, snapshots)")
	fl.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP API listen address")
	fl.StringVar(&f.httpAdvertise, "http-advertise", "", "HTTP address other members use to reach this one (default --http-addr)")
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:8081", "Raft transport listen address")
	fl.StringVar(&f.raftAdvertise, "raft-advertise", "", "Raft address other members use (default --raft-addr; host names are resolved)")
	fl.StringVar(&f.gossipAddr, "gossip-addr", "", "memberlist gossip listen address, TCP and UDP (default: Raft port + 1 on the Raft host)")
	fl.StringVar(&f.gossipAdvertise, "gossip-advertise", "", "gossip address other members use (default --gossip-addr)")
	fl.StringSliceVar(&f.join, "join", nil, "comma-separated addresses of existing members: HTTP (host:port or http(s)://host:port) or gossip (host:port)")
	fl.StringVar(&f.zone, "zone", "", "availability zone label of this member")
	fl.StringVar(&f.apiToken, "api-token", "", "bearer token every /v1 request must carry")
	fl.StringVar(&f.adminToken, "admin-token", "", "bearer token for mutating service, node, event and cluster endpoints")
	fl.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log JSON lines instead of text (same as --log-format json)")
	fl.StringVar(&f.logFormat, "log-format", "text", "text, json, or mozlog (Mozilla's JSON log lines: Timestamp, Type, Logger, Hostname, EnvVersion, Severity, Pid, Fields)")
	fl.DurationVar(&f.reapAfter, "reap-after", 72*time.Hour, "the leader removes a member gossip has seen dead this long (never below quorum)")
	fl.DurationVar(&f.applyTimeout, "apply-timeout", 10*time.Second, "how long a write waits for commit before its outcome is reported unknown")
	fl.DurationVar(&f.leaderWait, "leader-wait", 5*time.Second, "how long a forwarded request waits for a leader before 503 no-leader")
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 8192, "log entries between snapshots")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "bound on graceful shutdown")
	fl.BoolVar(&f.pprof, "pprof", false, "serve Go profiles under /debug/pprof/ on the HTTP address (behind --admin-token when tokens are set)")
	f.tokens.register(fl)
	addSecurityFlags(fl, &f.sec)
	addLimitFlags(fl, &f.httpLimits)
	f.storage.register(fl)
	if seedBugFlags != nil {
		seedBug = seedBugFlags(fl)
	}
	return cmd
}

// applyEnv reads WIMMS_<FLAG> for every flag not given on the command line.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		name := "WIMMS_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newLogger(f serverFlags) (hclog.Logger, error) {
	level := hclog.LevelFromString(f.logLevel)
	if level == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", f.logLevel)
	}
	var out io.Writer = os.Stderr
	jsonFormat := f.logJSON
	switch f.logFormat {
	case "text", "":
	case "json":
		jsonFormat = true
	case "mozlog":
		jsonFormat, out = true, newMozlogWriter(os.Stderr)
	default:
		return nil, fmt.Errorf("--log-format %q: want text, json or mozlog", f.logFormat)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            "wimms",
		Level:           level,
		JSONFormat:      jsonFormat,
		Output:          out,
		IncludeLocation: false,
	}).With("member", f.id), nil
}

// defaultGossipAddr puts gossip next to Raft (port + 1) so a member needs
// one flag less and loopback clusters on 127.0.0.x stay unambiguous.
func defaultGossipAddr(raftAddr string) (string, error) {
	host, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return "", fmt.Errorf("--raft-addr %q: %w", raftAddr, err)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p <= 0 || p >= 65535 {
		return "", fmt.Errorf("--raft-addr %q: bad port", raftAddr)
	}
	return net.JoinHostPort(host, fmt.Sprint(p+1)), nil
}

// advertised resolves an advertised address to IP:port. Raft's TCP
// transport needs an IP; in containers operators pass a host name.
func advertised(flagName, advertise, listen string) (string, error) {
	addr := advertise
	if addr == "" {
		addr = listen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--%s %q: %w", flagName, addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "", fmt.Errorf("--%s %q: an unspecified address cannot be advertised; set --%s", flagName, addr, flagName)
	}
	if net.ParseIP(host) == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return "", fmt.Errorf("--%s %q: resolving %s: %w", flagName, addr, host, err)
		}
		host = ips[0].String()
	}
	return net.JoinHostPort(host, port), nil
}

func validateServerFlags(f *serverFlags) error {
	if f.id == "" || len(f.id) > 64 || strings.ContainsAny(f.id, " /\t\n") {
		return fmt.Errorf("--id %q: want 1–64 characters without spaces or '/'", f.id)
	}
	if f.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if err := f.storage.validate(); err != nil {
		return err
	}
	if f.gossipAddr == "" {
		g, err := defaultGossipAddr(f.raftAddr)
		if err != nil {
			return err
		}
		f.gossipAddr = g
	}
	var err error
	if f.httpAdvertise, err = advertised("http-advertise", f.httpAdvertise, f.httpAddr); err != nil {
		return err
	}
	if f.raftAdvertise, err = advertised("raft-advertise", f.raftAdvertise, f.raftAddr); err != nil {
		return err
	}
	if f.gossipAdvertise, err = advertised("gossip-advertise", f.gossipAdvertise, f.gossipAddr); err != nil {
		return err
	}
	return nil
}

func runServer(parent context.Context, f serverFlags) error {
	if err := validateServerFlags(&f); err != nil {
		return err
	}
	sec, err := resolveSecurity(&f)
	if err != nil {
		return err
	}
	logger, err := newLogger(f)
	if err != nil {
		return err
	}
	sec.logPosture(logger, f.adminToken != "")
	f.storage.applyMemoryLimit(logger)
	tokens, err := f.tokens.issuer(logger.Named("tokenserver"))
	if err != nil {
		return fmt.Errorf("token server: %w", err)
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if err := checkRestoredIdentity(f.dataDir, f.id, f.raftAdvertise); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(store.Config{
		ID:                f.id,
		DataDir:           f.dataDir,
		LogStore:          f.storage.logStore,
		RaftBind:          f.raftAddr,
		RaftAdvertise:     f.raftAdvertise,
		Bootstrap:         len(f.join) == 0,
		Logger:            logger.Named("store"),
		ApplyTimeout:      f.applyTimeout,
		SnapshotThreshold: f.snapshotThreshold,
		TLS:               sec.raftTLS(),
		OnCorruption:      exitOnCorruption,
	})
	if err != nil {
		return openStoreError(err)
	}

	cl, err := cluster.New(cluster.Config{
		ID:              f.id,
		Zone:            f.zone,
		HTTPAddr:        f.httpAdvertise,
		RaftAddr:        f.raftAdvertise,
		GossipBind:      f.gossipAddr,
		GossipAdvertise: f.gossipAdvertise,
		Join:            f.join,
		Store:           st,
		Logger:          logger.Named("cluster"),
		APIToken:        f.apiToken,
		AdminToken:      f.adminToken,
		ReapAfter:       f.reapAfter,
		LeaderWait:      f.leaderWait,
		PeersFile:       filepath.Join(f.dataDir, "gossip-peers.json"),

		DialTLS:               sec.memberDialer(),
		GossipKey:             sec.gossipKey,
		AuthenticatedJoinOnly: sec.secured(),
	})
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("creating cluster membership: %w", err)
	}
	st.SetPeerLeaving(cl.PeerLeaving)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range append(st.Collectors(), cl.Collectors()...) {
		reg.MustRegister(c)
	}
	// pprof sits behind the admin token; the routes are mounted while api
	// is being built, so the check looks api up per request.
	var api *httpapi.Server
	adminOnly := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.RequireAdmin(h).ServeHTTP(w, r) })
	}
	api = httpapi.New(httpapi.Config{
		Tokens:     tokens,
		Store:      st,
		Cluster:    cl,
		Router:     cl,
		Logger:     logger.Named("http"),
		APIToken:   f.apiToken,
		AdminToken: f.adminToken,
		Registry:   reg,
		Version:    buildVersion(),
		ExtraRoutes: func(r *mux.Router) {
			cl.InternalRoutes(r)
			if f.pprof {
				// Specific handlers first: Index only serves named runtime profiles.
				r.Handle("/debug/pprof/profile", adminOnly(http.HandlerFunc(pprof.Profile)))
				r.Handle("/debug/pprof/trace", adminOnly(http.HandlerFunc(pprof.Trace)))
				r.PathPrefix("/debug/pprof/").Handler(adminOnly(http.HandlerFunc(pprof.Index)))
			}
		},
	})

	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("listening on --http-addr %s: %w", f.httpAddr, err)
	}
	// The connection cap and deadlines apply to raw TCP; TLS wraps outside
	// them (Go's own parse-error answers then stay plain text, encrypted).
	ln = httpapi.Listen(ln, f.httpLimits)
	handler := api.Handler()
	if sec.holder != nil {
		handler = tlsconf.RequireMemberToJoin(handler, "/v1/cluster/members", f.adminToken != "")
		ln = tls.NewListener(ln, sec.holder.ServerConfig(false))
	}
	srv := httpapi.NewHTTPServer(handler, f.httpLimits)
	// Failed TLS handshakes (plain HTTP, wrong CA) are logged here.
	srv.ErrorLog = logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	sec.reloadOnSIGHUP(ctx, logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("serving", "http", f.httpAddr, "raft", f.raftAdvertise, "gossip", f.gossipAdvertise,
		"zone", f.zone, "data_dir", f.dataDir, "join", strings.Join(f.join, ","), "restart", st.HadState())

	// Joining happens while HTTP already serves, so health checks answer and
	// the leader can reach us while it adds us.
	if err := cl.Start(ctx); err != nil && ctx.Err() == nil {
		logger.Error("cluster start failed", "error", err)
		shutdown(logger, f.shutdownTimeout, srv, cl, st)
		return fmt.Errorf("starting cluster membership: %w", err)
	}

	select {
	case <-ctx.Done():
		logger.Info("signal received, shutting down")
	case err := <-serveErr:
		logger.Error("HTTP server stopped", "error", err)
		shutdown(logger, f.shutdownTimeout, srv, cl, st)
		return fmt.Errorf("http server: %w", err)
	}
	shutdown(logger, f.shutdownTimeout, srv, cl, st)
	return nil
}

// shutdown hands leadership over (store.Close does that first on a leader),
// then stops HTTP and gossip. Leadership goes first so that in-flight
// forwarded writes find a new leader quickly.
func shutdown(logger hclog.Logger, timeout time.Duration, srv *http.Server, cl *cluster.Cluster, st *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.AnnounceLeaving()
		if err := st.Close(); err != nil {
			logger.Warn("closing store", "error", err)
		}
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("closing HTTP server", "error", err)
		}
		if err := cl.Close(); err != nil {
			logger.Warn("leaving gossip", "error", err)
		}
	}()
	select {
	case <-done:
		logger.Info("shut down cleanly")
	case <-ctx.Done():
		logger.Warn("shutdown timed out", "timeout", timeout)
	}
}
