package jepsen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/client"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
	"github.com/wimms-dev/wimms/jepsen/workload"
)

// Options configure one run. Zero values take the defaults of withDefaults.
type Options struct {
	Bin      string              // the wimms binary to start members from
	Members  int                 // cluster size
	Duration time.Duration       // how long clients and the nemesis run
	Nemesis  []nemesis.FaultKind // faults to inject; empty: none
	OutDir   string              // where summary.json, history.html and logs go
	Clients  int                 // concurrent clients
	Seed     uint64              // drives every random choice of the harness
	// SeedBug is passed to every member as --seed-bug. It needs a chaos
	// build: Run builds one (go build -tags chaos) when Bin is empty or
	// not a chaos build.
	SeedBug string
	// CoreWorkload leaves the lifecycle writes out of the workload (see
	// SeedBug.CoreWorkload); a seeded bug that needs it sets it.
	CoreWorkload bool
	// TLS runs the members with mutual TLS and a gossip key (local runs
	// only); the harness then talks HTTPS.
	TLS bool

	Emails         int           // distinct users the clients share
	Rate           float64       // target operations per second over all clients
	RequestTimeout time.Duration // per request; a write that times out is "info"
	FaultHold      [2]time.Duration
	FaultGap       [2]time.Duration
	// StartTimeout bounds cluster start; RecoveryTimeout the wait for a
	// healthy cluster after healing; CheckTimeout the linearizability search.
	StartTimeout    time.Duration
	RecoveryTimeout time.Duration
	CheckTimeout    time.Duration

	// Member i listens on 127.0.0.(FirstIP+i) at these ports.
	FirstIP                        int
	HTTPPort, RaftPort, GossipPort int
	// Nodes of the workload's service, each with NodeCapacity (default:
	// the shared users plus two per node).
	Nodes        int
	NodeCapacity int64
	// LeaderWait is passed to members as --leader-wait: how long a request
	// waits for a leader before 503 no-leader. Shorter than RequestTimeout,
	// so that a client cut off from the leader gets a definite refusal
	// instead of a timeout, and the workload keeps moving during faults.
	LeaderWait time.Duration

	// Docker, when set, runs against a docker-compose project instead of
	// local processes (docker.go); FirstIP and the ports are then unused.
	Docker *DockerOptions

	// Progress gets a status line while the run goes (nil: none).
	Progress io.Writer
	// Logger: nil logs to OutDir/jepsen.log.
	Logger hclog.Logger
}

func (o Options) withDefaults() (Options, error) {
	o.fillDefaults()
	return o, o.validate()
}

// fillDefaults sets every option left zero.
func (o *Options) fillDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Members, 3)
	def(&o.Clients, 10)
	def(&o.Emails, 16)
	def(&o.FirstIP, 10)
	def(&o.HTTPPort, 24080)
	def(&o.RaftPort, o.HTTPPort+1)
	def(&o.GossipPort, o.HTTPPort+2)
	def(&o.Nodes, 3)
	defDur(&o.Duration, 60*time.Second)
	defDur(&o.RequestTimeout, 5*time.Second)
	defDur(&o.StartTimeout, 60*time.Second)
	defDur(&o.RecoveryTimeout, 60*time.Second)
	defDur(&o.CheckTimeout, 3*time.Minute)
	defDur(&o.LeaderWait, 2*time.Second)
	if o.FaultHold == [2]time.Duration{} {
		o.FaultHold = [2]time.Duration{2 * time.Second, 6 * time.Second}
	}
	if o.FaultGap == [2]time.Duration{} {
		o.FaultGap = [2]time.Duration{1 * time.Second, 3 * time.Second}
	}
	if o.Rate == 0 {
		o.Rate = 150
	}
	if o.NodeCapacity == 0 {
		// Room for every shared user and a few new ones; key changes and
		// new users fill the rest during the run.
		o.NodeCapacity = int64((o.Emails+o.Nodes-1)/o.Nodes) + 2
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

// validate refuses options a run cannot start with, before anything is
// started.
func (o Options) validate() error {
	// A docker run given an existing image starts no binary of its own.
	needBin := o.Docker == nil || o.Docker.Image == ""
	switch {
	case needBin && o.Bin == "" && o.SeedBug == "":
		return errors.New("no server binary (--bin)")
	case !needBin && o.SeedBug != "":
		return errSeedBugWithImage
	case o.OutDir == "":
		return errors.New("no output directory (--out)")
	case o.Members < 1 || o.FirstIP+o.Members > 255:
		return fmt.Errorf("members must be 1..%d, got %d", 255-o.FirstIP, o.Members)
	case o.Clients < 1 || o.Emails < 1 || o.Nodes < 1 || o.Rate <= 0:
		return errors.New("clients, emails, nodes and rate must be positive")
	case o.FaultHold[0] > o.FaultHold[1] || o.FaultGap[0] > o.FaultGap[1]:
		return errors.New("fault hold and gap ranges must be [min, max]")
	case o.SeedBug != "" && !knownSeedBug(o.SeedBug):
		return fmt.Errorf("unknown seed bug %q (see --list-seed-bugs)", o.SeedBug)
	}
	for _, k := range o.Nemesis {
		if k.IsPartition() && o.Members < 2 {
			return fmt.Errorf("nemesis %s needs at least 2 members", k)
		}
		if k == nemesis.FaultDiskFull && o.Docker != nil {
			return errors.New("nemesis disk-full is not available with --docker (it mounts the members' data directories)")
		}
		if k == nemesis.FaultTailDamage && o.Docker != nil {
			return errors.New("nemesis tail-damage is not available with --docker (it edits the members' data directories)")
		}
	}
	if !needBin || o.Bin == "" {
		return nil
	}
	if info, err := os.Stat(o.Bin); err != nil {
		return fmt.Errorf("server binary: %w", err)
	} else if info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("server binary %s is not executable", o.Bin)
	}
	return nil
}

// Summary is summary.json.
type Summary struct {
	Valid         bool                                       `json:"valid"`
	Verdict       string                                     `json:"verdict"`
	Ops           int                                        `json:"ops"`
	OpsOK         int                                        `json:"ops_ok"`
	OpsFail       int                                        `json:"ops_fail"`
	OpsInfo       int                                        `json:"ops_info"`
	OpsByKind     map[history.OpKind]map[history.Outcome]int `json:"ops_by_kind"`
	NemesisEvents int                                        `json:"nemesis_events"`
	NemesisKinds  map[nemesis.FaultKind]int                  `json:"nemesis_kinds"`
	Anomalies     []checker.Anomaly                          `json:"anomalies"`
	Linearizable  string                                     `json:"linearizable"`
	StaleReads    string                                     `json:"stale_reads"`
	// LostAcknowledgedWrites: acknowledged allocations, logins and updates
	// the final linearizable read does not show (the run fails when > 0).
	LostAcknowledgedWrites int             `json:"lost_acknowledged_writes"`
	Events                 []nemesis.Event `json:"events"`
	Final                  *FinalSummary   `json:"final_state,omitempty"`
	Notes                  []string        `json:"notes,omitempty"`
	Error                  string          `json:"error,omitempty"`

	// Docker describes the compose project of a --docker run.
	Docker *DockerInfo `json:"docker,omitempty"`

	Members   int                 `json:"members"`
	Clients   int                 `json:"clients"`
	Nemesis   []nemesis.FaultKind `json:"nemesis"`
	Seed      uint64              `json:"seed"`
	SeedBug   string              `json:"seed_bug,omitempty"`
	Duration  string              `json:"duration"`
	StartedAt time.Time           `json:"started_at"`
	Elapsed   string              `json:"elapsed"`
	OutDir    string              `json:"out_dir"`
	Files     []string            `json:"files"`
}

// FinalSummary is a digest of the final state.
type FinalSummary struct {
	Users   int                `json:"users"`
	Records int                `json:"records"`
	Nodes   []history.NodeView `json:"nodes"`
}

// target is the cluster under test: whatever runs the members, and the
// faults it can inject into them. The runner, the workload and the nemesis
// reach members only through it and through their HTTP addresses.
// localCluster (process.go) runs `wimms server` processes on loopback;
// dockerCluster (docker.go) runs a docker-compose project.
type target interface {
	// Members lists the members in index order; it never changes in a run.
	Members() []memberInfo
	// Start brings every member up; waitReady(i) waits until member i
	// serves (the first member of a new cluster must before others join).
	Start(ctx context.Context, waitReady func(i int) error) error
	Running(i int) bool // alive, possibly paused
	Paused(i int) bool
	// Kill stops a member with SIGKILL; Restart brings it back with its data.
	Kill(i int) error
	Restart(i int) error
	Pause(i int) error
	Resume(i int) error // nothing to do unless paused
	// Partition cuts every pair, both ways; HealNetwork removes every cut.
	Partition(cut []nemesis.Pair) error
	HealNetwork() error
	// FillDisk fills member i's filesystem until writes fail with ENOSPC
	// (saying how); FreeDisk makes room again.
	FillDisk(i int) (string, error)
	FreeDisk(i int) error
	// DamageTail saves stopped member i's data and damages the tail segment
	// of its log (damageTruncate or damageFlipHeader); RestoreData puts the
	// saved data back. RestartAllowingExit is Restart, except that an exit
	// with status code is expected (not a crash); ExitCode is the last
	// process's exit status.
	DamageTail(i int, mode string) (string, error)
	RestoreData(i int) error
	RestartAllowingExit(i, code int) error
	ExitCode(i int) int
	// Replace restarts a member that was removed from the cluster with its
	// data wiped, joining the others: an operator replacing a member.
	Replace(i int) error
	// StopAll stops every member gracefully, before judging, so that a crash
	// up to then is counted.
	StopAll()
	// Crashes lists the member's exits that no fault explains.
	Crashes(i int) []string
	// Mechanism says how a fault kind is made here, for event details.
	Mechanism(kind nemesis.FaultKind) string
	// Audit adds notes about the setup once the cluster is up.
	Audit(note func(format string, args ...any))
	// Close stops everything the target started and removes every rule;
	// it runs on every exit path and must be safe to call more than once.
	Close() error
}

// memberInfo is what the runner knows of a member, whatever runs it.
type memberInfo struct {
	Index    int
	ID       string // the member's Raft id, as GET /v1/cluster shows it
	HTTPAddr string // where the harness reaches its API
	LogPath  string // its output, for messages
}

type runner struct {
	opts    Options
	log     hclog.Logger
	start   time.Time
	target  target
	members []memberInfo
	admin   *workload.Clients
	// clientTLS: the harness's HTTPS configuration in a --tls run, else nil.
	clientTLS *tls.Config
	wl        *workload.Workload
	hist      *history.History
	rng       *rand.Rand // the nemesis's; clients have their own

	mu     sync.Mutex
	events []nemesis.Event
	notes  []string
	fault  atomic.Pointer[string]

	panicMu  sync.Mutex
	panicErr error

	lastDocker DockerInfo // kept after a docker target is closed
}

// Run starts a cluster, runs clients and the nemesis against it, heals,
// reads the final state and judges. An error means the run could not be
// done or judged (exit 2); otherwise Summary.Verdict says valid / invalid /
// unknown. Every process started and every iptables rule added is removed
// before Run returns, whatever happens.
func Run(ctx context.Context, opts Options) (Summary, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	release, err := checkHost(opts)
	if err != nil {
		return Summary{}, err
	}
	defer release()
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("create output directory: %w", err)
	}
	if b, ok := seedBugNamed(opts.SeedBug); ok && b.CoreWorkload {
		opts.CoreWorkload = true
	}
	if opts.SeedBug != "" {
		var removeBin func()
		if opts.Bin, removeBin, err = seedBugBinary(ctx, opts); err != nil {
			return Summary{}, err
		}
		defer removeBin()
	}
	var clientTLS *tls.Config
	if opts.TLS {
		if clientTLS, err = setupTLS(opts); err != nil {
			return Summary{}, err
		}
	}
	logger, closeLog, err := runLogger(opts)
	if err != nil {
		return Summary{}, err
	}
	defer closeLog()
	r := &runner{
		opts:      opts,
		log:       logger,
		start:     time.Now(),
		admin:     workload.NewClients(3*time.Second, clientTLS),
		clientTLS: clientTLS,
		wl:        workload.New(opts.Emails, opts.CoreWorkload),
		hist:      &history.History{},
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x6e656d65736973)),
	}
	defer r.teardown()
	sum, err := r.run(ctx)
	return r.finish(sum, err)
}

// checkHost checks that this host can make the faults asked for and, for
// a loopback run, takes the lock that keeps two runs apart: they would
// share addresses, ports and the host's chains (a docker run shares
// nothing with anyone: its own project). release frees the lock.
func checkHost(opts Options) (release func(), err error) {
	if opts.Docker != nil {
		if err := CheckDocker(opts.Nemesis); err != nil {
			return nil, err
		}
		return func() {}, nil
	}
	if nemesis.NeedsIptables(opts.Nemesis) {
		if err := nemesis.CheckIptables(); err != nil {
			return nil, err
		}
	}
	if slices.Contains(opts.Nemesis, nemesis.FaultDiskFull) {
		if err := nemesis.CheckDiskFull(); err != nil {
			return nil, err
		}
	}
	return acquireRunLock()
}

// seedBugBinary returns a chaos build of opts.Bin for the seeded bug,
// built into a temporary directory when opts.Bin is not one; remove
// deletes that directory once the run is over.
func seedBugBinary(ctx context.Context, opts Options) (bin string, remove func(), err error) {
	tmp, err := os.MkdirTemp("", "wimms-jepsen-chaos")
	if err != nil {
		return "", nil, err
	}
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "jepsen: "+format+"\n", args...)
		}
	}
	if bin, err = chaosBinary(ctx, opts.Bin, opts.SeedBug, tmp, progress); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(tmp) }, nil
}

// runLogger is opts.Logger or, without one, a debug log in
// OutDir/jepsen.log; closeLog closes that file once the run is over.
func runLogger(opts Options) (logger hclog.Logger, closeLog func(), err error) {
	if opts.Logger != nil {
		return opts.Logger, func() {}, nil
	}
	f, err := os.OpenFile(filepath.Join(opts.OutDir, "jepsen.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open jepsen.log: %w", err)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "jepsen", Output: f, Level: hclog.Debug}), func() { f.Close() }, nil
}

// finish tears the cluster down and writes summary.json for a run that
// ended with sum and err; a run that could not be judged gets the unknown
// verdict and its error in the summary.
func (r *runner) finish(sum Summary, err error) (Summary, error) {
	if err == nil {
		err = r.takePanic()
	}
	// Before the summary lists the output files: a docker target writes the
	// members' logs as it tears down.
	r.teardown()
	if err == nil && sum.Valid {
		// A target may copy the members' data out as it tears down.
		os.RemoveAll(filepath.Join(r.opts.OutDir, "data"))
	}
	if info, ok := r.dockerInfo(); ok {
		sum.Docker = &info
	}

	if err != nil {
		sum.Verdict, sum.Valid, sum.Error = checker.VerdictUnknown, false, err.Error()
		r.log.Error("run failed", "error", err)
	}
	r.fillSummary(&sum)
	if werr := r.writeSummary(sum); werr != nil && err == nil {
		err = werr
	}
	return sum, err
}

func (r *runner) clock() time.Duration { return time.Since(r.start) }

// goSafe runs fn in a goroutine; a panic there is recorded and cancels the
// run instead of killing the process with members and rules left behind.
func (r *runner) goSafe(wg *sync.WaitGroup, cancel context.CancelFunc, name string, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				r.panicMu.Lock()
				r.panicErr = errors.Join(r.panicErr, fmt.Errorf("panic in %s: %v\n%s", name, p, debug.Stack()))
				r.panicMu.Unlock()
				cancel()
			}
		}()
		fn()
	}()
}

func (r *runner) takePanic() error {
	r.panicMu.Lock()
	defer r.panicMu.Unlock()
	return r.panicErr
}

func (r *runner) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(r.notes, msg) {
		r.notes = append(r.notes, msg)
		r.log.Info("note", "note", msg)
	}
}

// teardown stops every member and removes every rule. It runs on every exit
// path of Run, panics included; a second call does nothing.
func (r *runner) teardown() {
	if r.target == nil {
		return
	}
	t := r.target
	if err := t.Close(); err != nil {
		r.log.Error("tear down the cluster", "error", err)
		cleanup := "wimms jepsen --cleanup"
		if r.opts.Docker != nil {
			cleanup = "wimms jepsen --docker --cleanup"
		}
		fmt.Fprintf(os.Stderr, "jepsen: WARNING: teardown incomplete: %v (run `%s`)\n", err, cleanup)
	}
	if d, ok := t.(*dockerCluster); ok {
		r.lastDocker = d.info()
	}
	r.target = nil
}

// dockerInfo describes the docker target of the run, if it had one.
func (r *runner) dockerInfo() (DockerInfo, bool) {
	if d, ok := r.target.(*dockerCluster); ok {
		return d.info(), true
	}
	return r.lastDocker, r.lastDocker.Project != ""
}

// run is one run from cluster start to verdict: set up, load under
// faults, heal and read the final state, judge. The caller tears down.
func (r *runner) run(ctx context.Context) (Summary, error) {
	o := r.opts
	r.log.Info("run starting", "members", o.Members, "clients", o.Clients, "duration", o.Duration,
		"nemesis", o.Nemesis, "seed", o.Seed, "seed_bug", o.SeedBug, "bin", o.Bin)
	if err := r.setUp(ctx); err != nil {
		return Summary{}, err
	}
	if err := r.loadUnderFaults(ctx); err != nil {
		return Summary{}, err
	}
	final, extra, err := r.healAndRead(ctx)
	if err != nil {
		return Summary{}, err
	}
	return r.judge(final, extra)
}

// setUp creates the target, starts its members and prepares the
// workload's service, nodes and shared users.
func (r *runner) setUp(ctx context.Context) error {
	o := r.opts
	if o.Docker != nil {
		d, err := newDockerCluster(ctx, o, r.log, r.progressf)
		if d != nil {
			r.target = d // even half set up: teardown removes what exists
		}
		if err != nil {
			return fmt.Errorf("set up the docker cluster: %w", err)
		}
	} else {
		r.target = newLocalCluster(o, r.log)
	}
	r.members = r.target.Members()
	r.progressf("starting %d members", len(r.members))
	if err := r.startCluster(ctx); err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	if err := r.setupWorkload(ctx); err != nil {
		return fmt.Errorf("set up the workload's service and nodes: %w", err)
	}
	if err := r.allocateSharedUsers(ctx); err != nil {
		return fmt.Errorf("allocate the shared users: %w", err)
	}
	r.target.Audit(r.note)
	return nil
}

// loadUnderFaults runs the clients and the nemesis for Duration; a failure of either
// (a panic) or Ctrl-C ends them early and the run with an error.
func (r *runner) loadUnderFaults(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, r.opts.Duration)
	defer cancel()
	var wg sync.WaitGroup
	stopProgress := r.startProgress(r.clock())
	r.goSafe(&wg, cancel, "nemesis", func() { r.nemesisLoop(wctx) })
	for i := range r.opts.Clients {
		r.goSafe(&wg, cancel, fmt.Sprintf("client %d", i), func() { r.clientLoop(wctx, i) })
	}
	wg.Wait()
	stopProgress()
	if err := r.takePanic(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

// healAndRead heals every fault, waits for the cluster to recover, reads
// the final state and stops the members. A cluster that does not recover
// and a member that crashed are anomalies for the verdict, not errors; the
// error is only an interruption.
func (r *runner) healAndRead(ctx context.Context) (checker.FinalState, []checker.Anomaly, error) {
	r.progressf("healing and waiting for recovery")
	var extra []checker.Anomaly
	r.healAll()
	if err := r.waitRecovered(ctx, r.opts.RecoveryTimeout); err != nil {
		if ctx.Err() != nil {
			return checker.FinalState{}, nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		extra = append(extra, checker.Anomaly{Kind: checker.AnomalyNoRecovery, Detail: err.Error()})
	}
	r.progressf("reading the final state")
	final, err := r.readFinal(ctx)
	if err != nil && ctx.Err() != nil {
		return checker.FinalState{}, nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	// Stop the members before judging, so that a crash at shutdown counts.
	r.target.StopAll()
	for _, m := range r.members {
		for _, c := range r.target.Crashes(m.Index) {
			extra = append(extra, checker.Anomaly{Kind: checker.AnomalyMemberCrashed,
				Detail: fmt.Sprintf("%s %s; see %s", m.ID, c, filepath.Base(m.LogPath))})
		}
	}
	return final, extra, nil
}

// judge checks the history against the final state, adds the anomalies
// the run itself found, and writes the history files.
func (r *runner) judge(final checker.FinalState, extra []checker.Anomaly) (Summary, error) {
	r.progressf("checking %d operations", len(r.hist.Ops()))
	ops := r.hist.Ops()
	res := checker.Check(checker.CheckInput{History: ops, Final: final, Emails: r.wl.AllEmails(),
		MaxCapacity: r.wl.MaxCapacity(ops), Timeout: r.opts.CheckTimeout})
	res.AddAnomalies(extra...)

	sum := Summary{Verdict: res.Verdict, Valid: res.Valid(), Anomalies: res.Anomalies,
		Linearizable: res.Linearizable, StaleReads: res.StaleReads, LostAcknowledgedWrites: res.LostAcknowledgedWrites,
		Final: finalSummary(final)}
	if err := r.writeHistory(ops, res); err != nil {
		return sum, err
	}
	if res.Valid() {
		// Members' data is evidence only when something was wrong.
		if err := os.RemoveAll(filepath.Join(r.opts.OutDir, "data")); err != nil {
			r.log.Warn("remove data of a valid run", "error", err)
		}
	}
	return sum, nil
}

func finalSummary(f checker.FinalState) *FinalSummary {
	s := &FinalSummary{Nodes: f.Nodes}
	for _, recs := range f.Records {
		if len(recs) > 0 {
			s.Users++
		}
		s.Records += len(recs)
	}
	return s
}

// clientLoop issues operations until ctx ends; an operation in flight then
// completes (or times out) rather than being cut short.
func (r *runner) clientLoop(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.opts.Seed, uint64(1000+id)))
	c := workload.NewClients(r.opts.RequestTimeout, r.clientTLS)
	// Each client waits Clients/Rate on average between operations.
	pause := time.Duration(float64(r.opts.Clients) / r.opts.Rate * float64(time.Second))
	for ctx.Err() == nil {
		p := r.wl.Next(rng)
		m := r.members[rng.IntN(len(r.members))]
		op := r.wl.Execute(context.Background(), c, m.HTTPAddr, m.ID, id, p, r.clock)
		r.hist.Add(op)
		if !ctxtime.Sleep(ctx, time.Duration(rng.Int64N(int64(2*pause)+1))) {
			return
		}
	}
}

// setupWorkload creates the service and its nodes, retrying while the
// cluster settles. Node ids come from a linearizable read.
func (r *runner) setupWorkload(ctx context.Context) error {
	addr := r.members[0].HTTPAddr
	deadline := time.Now().Add(30 * time.Second)
	retry := func(what string, fn func() (bool, error)) error {
		for {
			done, err := fn()
			if done {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, errors.Join(err, ctx.Err()))
			}
			r.log.Debug("setup retry", "step", what, "error", err)
			ctxtime.Sleep(ctx, 300*time.Millisecond)
		}
	}
	err := retry("create service", func() (bool, error) {
		_, meta, err := r.admin.Of(addr).PutService(ctx, workload.Service, wire.PutServiceRequest{Pattern: workload.ServicePattern})
		return err == nil, errors.New(workload.Describe(meta, err))
	})
	if err != nil {
		return err
	}
	for i := range r.opts.Nodes {
		node := wire.AddNodeRequest{
			Node:     fmt.Sprintf("https://node-%d.jepsen.test", i+1),
			Capacity: r.opts.NodeCapacity,
			// Far more slots released than capacity: the throttle never
			// stops an allocation, so capacity alone must.
			NodeState: wire.NodeState{Available: wire.Int64(int64(r.opts.Emails))},
		}
		err := retry("add node", func() (bool, error) {
			_, meta, err := r.admin.Of(addr).AddNode(ctx, workload.Service, node)
			var ae *client.APIError
			added := err == nil || errors.As(err, &ae) && ae.HTTPStatus == http.StatusConflict
			return added, errors.New(workload.Describe(meta, err))
		})
		if err != nil {
			return err
		}
	}
	return retry("list nodes", func() (bool, error) {
		nodes, err := r.readNodes(ctx, addr)
		if err != nil {
			return false, err
		}
		if len(nodes) != r.opts.Nodes {
			return false, fmt.Errorf("%d nodes listed, want %d", len(nodes), r.opts.Nodes)
		}
		var ids []int64
		for _, n := range nodes {
			ids = append(ids, n.ID)
		}
		r.wl.SetNodes(r.opts.NodeCapacity, ids)
		return true, nil
	})
}

// allocateSharedUsers allocates every shared user before the clients start,
// so that all of them have a record to read and change while capacity runs
// out for the churn users. The allocations are ordinary operations of the
// history, on the harness's own lane.
func (r *runner) allocateSharedUsers(ctx context.Context) error {
	c := workload.NewClients(r.opts.RequestTimeout, r.clientTLS)
	deadline := time.Now().Add(30 * time.Second)
	emails := r.wl.Emails()
	for i, email := range emails {
		p := r.wl.AllocatePlan(i)
		for attempt := 0; ; attempt++ {
			m := r.members[attempt%len(r.members)]
			op := r.hist.Add(r.wl.Execute(ctx, c, m.HTTPAddr, m.ID, r.opts.Clients, p, r.clock))
			if op.Outcome == history.OutcomeOK && op.Output.Status == "" {
				break
			}
			if op.Outcome == history.OutcomeOK {
				return fmt.Errorf("%s: %s (capacity %d on %d nodes is too small for %d users)",
					email, op.Output.Status, r.opts.NodeCapacity, r.opts.Nodes, len(emails))
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s: %s", email, op.Error)
			}
			ctxtime.Sleep(ctx, 200*time.Millisecond)
		}
	}
	return nil
}

func (r *runner) readNodes(ctx context.Context, addr string) ([]history.NodeView, error) {
	nodes, _, err := r.admin.Of(addr).ListNodes(ctx, workload.Service, client.CallOptions{Consistency: "linearizable"})
	if err != nil {
		return nil, fmt.Errorf("list nodes via %s: %w", addr, err)
	}
	out := []history.NodeView{}
	for _, n := range nodes {
		out = append(out, workload.NodeViewOf(n))
	}
	return out, nil
}

func (r *runner) readRecords(ctx context.Context, addr, email string) ([]history.RecordView, error) {
	recs, _, err := r.admin.Of(addr).Records(ctx, workload.Service, email, client.CallOptions{Consistency: "linearizable"})
	if client.IsStatus(err, fsm.StatusNotFound) {
		return []history.RecordView{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("records of %s via %s: %w", email, addr, err)
	}
	out := []history.RecordView{}
	for _, rec := range recs {
		out = append(out, workload.RecordViewOf(rec))
	}
	return out, nil
}

// readFinal reads, linearizably and from any member that answers, every
// user's stored records, the user itself (recorded in the history, as a
// last check of the model) and the nodes.
func (r *runner) readFinal(ctx context.Context) (checker.FinalState, error) {
	final := checker.FinalState{Records: map[string][]history.RecordView{}}
	deadline := time.Now().Add(30 * time.Second)
	finalClient := r.opts.Clients // its own lane in history.html
	c := workload.NewClients(r.opts.RequestTimeout, r.clientTLS)
	var errs []error
	attempt := func(what string, fn func(m memberInfo) error) {
		var err error
		for i := 0; ; i++ {
			m := r.members[i%len(r.members)]
			if err = fn(m); err == nil {
				return
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
				return
			}
			ctxtime.Sleep(ctx, 200*time.Millisecond)
		}
	}
	// Records first, then the user: the read that starts later must show a
	// record at least as new (a late write can only add newer ones).
	for _, email := range r.wl.AllEmails() {
		attempt("records of "+email, func(m memberInfo) error {
			recs, err := r.readRecords(ctx, m.HTTPAddr, email)
			if err == nil {
				final.Records[email] = recs
			}
			return err
		})
		attempt("final read of "+email, func(m memberInfo) error {
			op := r.wl.Execute(ctx, c, m.HTTPAddr, m.ID, finalClient, workload.ReadPlan(email), r.clock)
			op.Final = true
			r.hist.Add(op)
			if op.Outcome != history.OutcomeOK {
				return errors.New(op.Error)
			}
			return nil
		})
	}
	attempt("nodes", func(m memberInfo) error {
		nodes, err := r.readNodes(ctx, m.HTTPAddr)
		if err == nil {
			final.Nodes = nodes
		}
		return err
	})
	return final, errors.Join(errs...)
}
