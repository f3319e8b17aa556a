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
	"slices"
	"strconv"
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
	"github.com/wimms-dev/wimms/cluster/routing"
	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/httpapi"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/netguard"
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
	metricsToken                        string // from --metrics-token-file only
	logLevel                            string
	logJSON                             bool
	logFormat                           string
	reapAfter, applyTimeout, leaderWait time.Duration
	snapshotThreshold, trailingLogs     uint64
	snapshotInterval                    time.Duration
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
	fl.DurationVar(&f.snapshotInterval, "snapshot-interval", 30*time.Second, "how often the member checks whether --snapshot-threshold entries have accumulated")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", 10240, "log entries kept behind a snapshot, so that a follower that fell slightly behind catches up from the log instead of a whole snapshot")
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

// applyEnv is the rule every subcommand follows: WIMMS_<FLAG> for every
// flag not given on the command line.
var applyEnv = admincli.ApplyEnv

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

// checkListenAddr refuses a listen address that is not HOST:PORT with a
// numeric port, naming the flag the user typed (an empty gossip address
// means "derive it" and passes).
func checkListenAddr(flag, addr string) error {
	if addr == "" && flag == "gossip-addr" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return fmt.Errorf("--%s %q: want HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:PORT listens on every address)", flag, addr)
	}
	return nil
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
	for _, l := range []struct{ flag, addr string }{{"http-addr", f.httpAddr}, {"raft-addr", f.raftAddr}, {"gossip-addr", f.gossipAddr}} {
		if err := checkListenAddr(l.flag, l.addr); err != nil {
			return err
		}
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

// bindBeforeBootstrap listens on the HTTP address and checks that the
// gossip address is free (memberlist binds it itself, later), so a busy
// port fails the start before the store creates anything. The Raft port is
// bound by store.Open before it bootstraps.
func bindBeforeBootstrap(f serverFlags) (net.Listener, error) {
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on --http-addr %s: %w", f.httpAddr, err)
	}
	gossipTCP, err := net.Listen("tcp", f.gossipAddr)
	if err == nil {
		_ = gossipTCP.Close()
		var gossipUDP net.PacketConn
		if gossipUDP, err = net.ListenPacket("udp", f.gossipAddr); err == nil {
			_ = gossipUDP.Close()
		}
	}
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("listening on --gossip-addr %s: %w", f.gossipAddr, err)
	}
	return ln, nil
}

// runServer starts one member and serves until a signal or a fatal HTTP
// error. Each step refuses the start before the next one writes anything:
// flags and data dir first, then every port, then the store, membership
// and HTTP, and only then the join.
func runServer(parent context.Context, f serverFlags) error {
	sec, logger, tokens, err := prepareServer(&f)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// What the listeners refuse (Raft, HTTP, gossip), counted in metrics.
	guard := netguard.NewMetrics()

	// Every port is taken before the store may bootstrap: a member that
	// cannot serve must not leave behind a data dir that says it is a
	// one-member cluster.
	ln, err := bindBeforeBootstrap(f)
	if err != nil {
		return err
	}
	st, err := store.Open(storeConfig(f, sec, guard, logger))
	if err != nil {
		_ = ln.Close()
		return openStoreError(err)
	}
	cl, err := cluster.New(clusterConfig(f, sec, guard, logger, st))
	if err != nil {
		_ = ln.Close()
		_ = st.Close()
		return fmt.Errorf("creating cluster membership: %w", err)
	}
	st.SetPeerLeaving(cl.PeerLeaving)

	api := newAPIServer(f, tokens, st, cl, newRegistry(st, cl, guard), logger)
	srv, gl := newHTTPServer(f, sec, api, st, guard, logger, ln)
	sec.reloadOnSIGHUP(ctx, logger)
	return serve(ctx, f, sec, logger, srv, gl, st, cl)
}

// prepareServer runs every check that can refuse a start before the
// member binds a port: flags, secrets, logger, the token server's keys,
// then room on disk and the restored identity, creating the data dir in
// between. A start refused for lack of space leaves nothing that changes
// the next one, hence the room check before the data dir exists.
func prepareServer(f *serverFlags) (security, hclog.Logger, httpapi.TokenIssuer, error) {
	if err := validateServerFlags(f); err != nil {
		return security{}, nil, nil, err
	}
	sec, err := resolveSecurity(f)
	if err != nil {
		return security{}, nil, nil, err
	}
	logger, err := newLogger(*f)
	if err != nil {
		return security{}, nil, nil, err
	}
	sec.logPosture(logger, f.adminToken != "")
	f.storage.applyMemoryLimit(logger)
	tokens, err := f.tokens.issuer(logger.Named("tokenserver"))
	if err != nil {
		return security{}, nil, nil, fmt.Errorf("token server: %w", err)
	}
	segmentSize, _ := f.storage.segmentSize() // validated
	if err := store.CheckRoomForLog(f.dataDir, f.storage.logStore, segmentSize); err != nil {
		return security{}, nil, nil, err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return security{}, nil, nil, fmt.Errorf("creating data dir: %w", err)
	}
	if err := checkRestoredIdentity(f.dataDir, f.id, f.raftAdvertise); err != nil {
		return security{}, nil, nil, err
	}
	return sec, logger, tokens, nil
}

// storeConfig maps the server flags onto the store's configuration.
func storeConfig(f serverFlags, sec security, guard *netguard.Metrics, logger hclog.Logger) store.Config {
	segmentSize, _ := f.storage.segmentSize() // validated
	return store.Config{
		ID:                f.id,
		DataDir:           f.dataDir,
		LogStore:          f.storage.logStore,
		WALSegmentSize:    segmentSize,
		RaftBind:          f.raftAddr,
		RaftAdvertise:     f.raftAdvertise,
		Bootstrap:         len(f.join) == 0,
		Logger:            logger.Named("store"),
		ApplyTimeout:      f.applyTimeout,
		SnapshotThreshold: f.snapshotThreshold,
		SnapshotInterval:  f.snapshotInterval,
		TrailingLogs:      f.trailingLogs,
		TLS:               sec.raftTLS(guard),
		OnCorruption:      exitOnCorruption,
	}
}

// clusterConfig maps the server flags onto membership's configuration.
func clusterConfig(f serverFlags, sec security, guard *netguard.Metrics, logger hclog.Logger, st *store.Store) cluster.Config {
	return cluster.Config{
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
		ApplyTimeout:    f.applyTimeout,
		PeersFile:       filepath.Join(f.dataDir, "gossip-peers.json"),

		DialTLS:               sec.memberDialer(),
		GossipKey:             sec.gossipKey,
		AuthenticatedJoinOnly: sec.secured(),
		AdmitRaftPeers:        st.AdmitRaftPeers,
		GuardMetrics:          guard,
	}
}

// newRegistry gathers the process's, the store's, membership's and the
// listeners' metrics for /metrics.
func newRegistry(st *store.Store, cl *cluster.Cluster, guard *netguard.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range slices.Concat(st.Collectors(), cl.Collectors(), cl.Router().Collectors(), guard.Collectors()) {
		reg.MustRegister(c)
	}
	return reg
}

// The HTTP API reaches membership and the router only through its own
// interfaces; these are the implementations this binary wires in.
var (
	_ httpapi.Cluster        = (*cluster.Cluster)(nil)
	_ httpapi.MemberProber   = (*cluster.Cluster)(nil)
	_ httpapi.ActivityProber = (*cluster.Cluster)(nil)
	_ httpapi.Router         = (*routing.Router)(nil)
)

// newAPIServer builds the HTTP API with the router's internal routes and,
// with --pprof, the profiles.
func newAPIServer(f serverFlags, tokens httpapi.TokenIssuer, st *store.Store, cl *cluster.Cluster, reg *prometheus.Registry, logger hclog.Logger) *httpapi.Server {
	// pprof sits behind the admin token; the routes are mounted while api
	// is being built, so the check looks api up per request.
	var api *httpapi.Server
	adminOnly := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { api.RequireAdmin(h).ServeHTTP(w, r) })
	}
	api = httpapi.New(httpapi.Config{
		Tokens:       tokens,
		Store:        st,
		Cluster:      cl,
		Router:       cl.Router(),
		Logger:       logger.Named("http"),
		APIToken:     f.apiToken,
		AdminToken:   f.adminToken,
		MetricsToken: f.metricsToken,
		Registry:     reg,
		Version:      buildVersion(),
		ExtraRoutes: func(r *mux.Router) {
			cl.Router().InternalRoutes(r)
			if f.pprof {
				// Specific handlers first: Index only serves named runtime profiles.
				r.Handle("/debug/pprof/profile", adminOnly(http.HandlerFunc(pprof.Profile)))
				r.Handle("/debug/pprof/trace", adminOnly(http.HandlerFunc(pprof.Trace)))
				r.PathPrefix("/debug/pprof/").Handler(adminOnly(http.HandlerFunc(pprof.Index)))
			}
		},
	})
	return api
}

// newHTTPServer wraps the bound listener in the connection limits (and
// TLS when the member is secured) and builds the server that will serve
// api on it.
func newHTTPServer(f serverFlags, sec security, api *httpapi.Server, st *store.Store, guard *netguard.Metrics, logger hclog.Logger, ln net.Listener) (*http.Server, *httpapi.Listener) {
	handler := api.Handler()
	var serverTLS *tls.Config
	if sec.holder != nil {
		handler = tlsconf.GuardMemberRoutes(handler, wire.MembersPath, wire.HeaderForwarded, f.adminToken != "", st.IsServer)
		serverTLS = sec.holder.ServerConfig(false)
	}
	// The listener runs the TLS handshake itself, under its own cap and
	// deadline, so only clients that completed it count against
	// --max-conns and --max-conns-per-address.
	gl := httpapi.Listen(ln, httpapi.ListenConfig{
		Limits: f.httpLimits, TLS: serverTLS, Name: "http", Metrics: guard, Logger: logger.Named("http"),
	})
	srv := httpapi.NewHTTPServer(handler, f.httpLimits)
	gl.Attach(srv)
	sec.trackHTTPSConns(srv)
	// Failed TLS handshakes (plain HTTP, wrong CA) are logged here.
	srv.ErrorLog = logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	return srv, gl
}

// serve starts HTTP, joins the cluster, and waits for a signal or a fatal
// HTTP error; every way out goes through shutdown.
func serve(ctx context.Context, f serverFlags, sec security, logger hclog.Logger, srv *http.Server, gl *httpapi.Listener, st *store.Store, cl *cluster.Cluster) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(gl) }()
	scheme := "http"
	if sec.holder != nil {
		scheme = "https"
	}
	logger.Info("serving", "http", f.httpAddr, "dashboard", scheme+"://"+f.httpAdvertise+"/ui/", "raft", f.raftAdvertise, "gossip", f.gossipAdvertise,
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

// shutdown stops the member in the order that loses the least: gossip hears
// it is leaving (so a leader elsewhere knows, and a leader here knows when
// everyone is going), HTTP stops accepting, a leader hands leadership over
// (bounded, and cut short when every other voter is leaving), in-flight
// HTTP requests drain, Raft closes, and gossip is left with a short wait
// (none when no peer stays). In a whole-cluster stop nothing here waits for
// a peer that is itself going away.
func shutdown(logger hclog.Logger, timeout time.Duration, srv *http.Server, cl *cluster.Cluster, st *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.AnnounceLeaving()
		// Shutdown closes the listeners at once and then waits for the
		// requests in flight; the handover runs meanwhile.
		httpDone := make(chan error, 1)
		go func() { httpDone <- srv.Shutdown(ctx) }()
		st.HandOverForShutdown()
		if err := <-httpDone; err != nil {
			logger.Warn("closing HTTP server", "error", err)
		}
		if err := st.Close(); err != nil {
			logger.Warn("closing store", "error", err)
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
