package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/tokenserver/purge"
)

// apiRecords is purge.Records over the API client.
type apiRecords struct{ c *client.Client }

func (a apiRecords) OldRecords(ctx context.Context, service string, grace time.Duration, limit, offset int) ([]purge.Record, error) {
	graceMs := grace.Milliseconds()
	recs, _, err := a.c.OldRecords(ctx, service, client.OldRecordsQuery{GraceMs: &graceMs, Limit: limit, Offset: offset})
	if err != nil {
		return nil, err
	}
	out := make([]purge.Record, 0, len(recs))
	for _, r := range recs {
		p := purge.Record{UID: r.UID, Email: r.Email, Downed: r.Downed, Generation: r.Generation, ClientState: r.ClientState}
		if r.Node != nil {
			p.Node = *r.Node
		}
		if r.KeysChangedAt != nil {
			p.KeysChangedAt = *r.KeysChangedAt
		}
		out = append(out, p)
	}
	return out, nil
}

func (a apiRecords) DeleteRecord(ctx context.Context, service string, uid int64) error {
	_, err := a.c.DeleteRecord(ctx, service, uid)
	if client.IsStatus(err, "not-found") {
		return nil
	}
	return err
}

// purgeFlags are `wimms purge`'s own flags besides the client flags.
type purgeFlags struct {
	conn             admincli.ClientFlags
	service          string
	cfg              purge.Config
	once             bool
	interval, jitter time.Duration
	nodeTimeout      time.Duration
	tf               tokenFlags
	logLevel         string
	metricsAddr      string
}

func newPurgeCmd() *cobra.Command {
	var f purgeFlags
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "delete replaced records older than the grace period after their storage node deleted the user's data",
		Long: `Page through the records replaced longer ago than --grace, ask each record's
storage node to delete the user's data (DELETE {node}/1.5/{uid}, Hawk-signed
with a token minted from the master secret), and delete the record once the
node confirmed (2xx or 404). Records whose node was removed are deleted
without asking; records on downed nodes are kept unless --force. A node that
fails keeps its records for the next pass and never stops the others.

Progress goes to stderr; each pass's summary is one JSON line on stdout.`,
	}
	f.conn.ToolCmd(cmd, f.run)
	fl := cmd.Flags()
	f.conn.RegisterHTTPAddr(fl)
	fl.StringVar(&f.service, "service", "sync-1.5", "service to purge")
	fl.DurationVar(&f.cfg.Grace, "grace", 24*time.Hour, "purge records replaced at least this long ago")
	fl.IntVar(&f.cfg.MaxPerLoop, "max-per-loop", 10, "records per page")
	fl.IntVar(&f.cfg.MaxRecords, "max-records", 0, "stop a pass after this many records (0: all)")
	fl.BoolVar(&f.cfg.DryRun, "dry-run", false, "list what would be purged; change nothing")
	fl.BoolVar(&f.cfg.Force, "force", false, "delete records on downed nodes without asking the node")
	fl.BoolVar(&f.once, "once", false, "one pass, then exit (1 if any record failed)")
	fl.DurationVar(&f.interval, "interval", time.Hour, "pause between passes when looping")
	fl.DurationVar(&f.jitter, "jitter", 10*time.Minute, "random extra pause in [0, jitter)")
	fl.DurationVar(&f.nodeTimeout, "node-timeout", 30*time.Second, "timeout of one storage-node DELETE")
	fl.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics (wimms_purge_*) on this address while running")
	f.tf.registerSecrets(fl)
	return cmd
}

// run is one `wimms purge`: one pass with --once, else passes until a
// signal.
func (f *purgeFlags) run(cmd *cobra.Command) error {
	logger := hclog.New(&hclog.LoggerOptions{Name: "purge", Output: cmd.ErrOrStderr(), Level: hclog.LevelFromString(f.logLevel)})
	m, err := f.tf.minter()
	if err != nil {
		return err
	}
	mc, err := f.conn.Connect()
	if err != nil {
		return err
	}
	cfg := f.cfg
	cfg.Service, cfg.Logger = f.service, logger
	recs := apiRecords{c: mc.API}
	nodes := &purge.HawkNodes{Minter: m, Client: &http.Client{Timeout: f.nodeTimeout}}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	reg := prometheus.NewRegistry()
	metrics, err := purge.NewMetrics(reg)
	if err != nil {
		return err
	}
	if f.metricsAddr != "" {
		closeMetrics, err := servePurgeMetrics(f.metricsAddr, reg)
		if err != nil {
			return err
		}
		defer closeMetrics()
	}
	if f.once {
		sum, err := purge.Once(ctx, cfg, recs, nodes)
		metrics.Observe(sum, err)
		writeSummary(out, sum)
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		if sum.Failed > 0 {
			return exitError{code: 1, msg: fmt.Sprintf("%d records could not be purged; they stay for the next run", sum.Failed)}
		}
		return nil
	}
	purge.Loop(ctx, cfg, recs, nodes, f.interval, f.jitter, func(sum purge.Summary, err error) {
		metrics.Observe(sum, err)
		writeSummary(out, sum)
		if err != nil {
			logger.Error("purge pass failed", "error", err)
		}
	})
	return nil
}

// servePurgeMetrics serves reg's /metrics on addr until the returned close.
func servePurgeMetrics(addr string, reg *prometheus.Registry) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	msrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = msrv.Serve(ln) }()
	return func() { _ = msrv.Close() }, nil
}

func writeSummary(w io.Writer, sum purge.Summary) {
	b, err := json.Marshal(sum)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wimms purge: encoding the summary:", err)
		return
	}
	fmt.Fprintln(w, string(b))
}
