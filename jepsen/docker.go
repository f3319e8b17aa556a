package jepsen

// The docker target: `wimms jepsen --docker` runs the same workload, nemesis
// and checker as a loopback run, against the deployment itself — the real
// docker-compose.yml and an image built by the real Dockerfile — instead of
// processes the harness starts.
//
// What it owns: one compose project per run (random name, free host ports,
// a free /24), the image it builds for the run, the members' logs, and the
// DROP rules in a chain of its own inside each container's network
// namespace. What it must never do: touch another project's containers,
// networks, volumes or images (everything it removes carries its project
// name, and a run holds a lock on that name), add a rule outside the
// containers' namespaces, or leave anything behind on any exit path
// (Close runs `docker-compose down -v` and removes the image it built;
// `wimms jepsen --docker --cleanup` covers a harness that was SIGKILLed).
//
// Faults, as an operator or a network would make them:
//   - kill: `docker kill -s KILL`, then `docker start` (same container, same
//     volume);
//   - pause: `docker pause` / `docker unpause` (cgroup freezer: the kernel
//     still completes TCP handshakes, the process never answers);
//   - partitions: iptables DROP rules on INPUT in each container's network
//     namespace, run with the host's iptables through nsenter (the image is
//     FROM scratch and has no iptables). Each container has one address on
//     the compose network, so cutting by source address is exact;
//   - membership: the documented replacement of a lost member —
//     `docker-compose rm -s -f`, `docker volume rm`, `up -d --no-deps` with
//     the member's join list — after the runner removed it through the API.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// DockerOptions select the compose deployment a --docker run tests.
type DockerOptions struct {
	// ComposeFile is the docker-compose.yml to run. The Dockerfile and
	// .dockerignore next to it build the image when Image is empty.
	ComposeFile string
	// Image every member runs; it must exist. Empty: build one from
	// Options.Bin (a static binary), tagged wimms-jepsen:<project> and
	// removed at the end of the run.
	Image string
	// Project is the compose project name; empty: wimmsjepsen<random>.
	Project string
}

// DockerInfo is summary.json's "docker": where the run happened.
type DockerInfo struct {
	Project     string            `json:"project"`
	ComposeFile string            `json:"compose_file"`
	Image       string            `json:"image"`
	ImageBuilt  bool              `json:"image_built"`
	Subnet      string            `json:"subnet"`
	Containers  map[string]string `json:"containers"` // member id -> container id (the last one, after replacements)
	MemberIPs   map[string]string `json:"member_ips"`
}

// ErrNoDocker: a --docker run needs a Docker engine and docker-compose v1.
var ErrNoDocker = errors.New("docker runs need a Docker engine and docker-compose")

// CheckDocker says why a --docker run with these faults cannot run here, or
// nil. Kills and pauses need only Docker; partitions also need root,
// nsenter and iptables(-restore), which run in the containers' namespaces.
func CheckDocker(kinds []nemesis.FaultKind) error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("%w: no docker command on PATH", ErrNoDocker)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: no Docker engine answers (docker info: %v: %s)", ErrNoDocker, err, firstLine(out))
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		return fmt.Errorf("%w: no docker-compose (v1) command on PATH", ErrNoDocker)
	}
	if !nemesis.NeedsIptables(kinds) {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: partitions of containers need root (nsenter into their network namespaces)", nemesis.ErrNoIptables)
	}
	for _, tool := range []string{"nsenter", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH (partitions of containers run the host's %s in their namespaces)",
				nemesis.ErrNoIptables, tool, tool)
		}
	}
	return nil
}

// containerHTTPPort is the port members serve HTTP on inside the compose
// network (docker-compose.yml: WIMMS_HTTP_ADDR 0.0.0.0:8080); join lists
// name it.
const containerHTTPPort = 8080

// dockerMember is one compose service. id, ip and the flags change as the
// nemesis works; mu guards them (healAll restarts members in parallel).
type dockerMember struct {
	Index    int
	Service  string // compose service name, which is also the member's id
	HTTPAddr string // published port on the host
	LogPath  string

	mu          sync.Mutex
	container   string // container id; a replacement makes a new one
	ip          string // address on the compose network (fixed by the file)
	running     bool
	paused      bool
	crashes     []string
	logsWritten map[string]bool // container ids whose logs are in LogPath
}

// dockerCluster is the target of a --docker run.
type dockerCluster struct {
	opts     Options
	log      hclog.Logger
	progress func(format string, args ...any)
	project  *composeProject
	members  []*dockerMember

	mu sync.Mutex
	// armed: network namespaces (by the container's pid) whose INPUT already
	// jumps to the harness's chain. A restarted container has a new, empty
	// namespace and a new pid.
	armed  map[int]bool
	closed bool
}

// newDockerCluster prepares the project: lock, ports, subnet, environment,
// override file, image. On error the returned cluster (if not nil) holds
// what was already made; Close removes it.
func newDockerCluster(ctx context.Context, o Options, log hclog.Logger, progress func(string, ...any)) (*dockerCluster, error) {
	p, err := newComposeProject(*o.Docker, log)
	if err != nil {
		return nil, err
	}
	c := &dockerCluster{opts: o, log: log, progress: progress, project: p, armed: map[int]bool{}}
	services, err := p.services(ctx)
	if err != nil {
		return c, err
	}
	if len(services) != o.Members {
		return c, fmt.Errorf("%s defines %d members (%s); --members must be %d",
			p.file, len(services), strings.Join(services, " "), len(services))
	}
	if err := p.configure(services, o.LeaderWait, o.SeedBug); err != nil {
		return c, err
	}
	for i, svc := range services {
		c.members = append(c.members, &dockerMember{
			Index:       i,
			Service:     svc,
			HTTPAddr:    p.httpAddr[svc],
			LogPath:     filepath.Join(o.OutDir, fmt.Sprintf("member-%d.log", i+1)),
			logsWritten: map[string]bool{},
		})
	}
	if o.Docker.Image == "" {
		progress("building image %s from %s", p.imageTag(), o.Bin)
	}
	if err := p.prepareImage(ctx, o.Bin); err != nil {
		return c, err
	}
	return c, nil
}

func (c *dockerCluster) Members() []memberInfo {
	var out []memberInfo
	for _, m := range c.members {
		out = append(out, memberInfo{Index: m.Index, ID: m.Service, HTTPAddr: m.HTTPAddr, LogPath: m.LogPath})
	}
	return out
}

// Start runs `docker-compose up -d` (which starts the first member and
// waits until it is healthy before the others join: depends_on), then
// learns each container's id and address.
func (c *dockerCluster) Start(ctx context.Context, waitReady func(i int) error) error {
	c.progress("docker-compose up -d (project %s, network %s.0/24)", c.project.name, c.project.subnetPrefix)
	if err := c.project.up(ctx); err != nil {
		return err
	}
	for _, m := range c.members {
		if err := c.refresh(ctx, m); err != nil {
			return err
		}
	}
	return waitReady(0)
}

// refresh reads the member's current container: id, address, and that it
// has exactly one address (partitions cut by source address).
func (c *dockerCluster) refresh(ctx context.Context, m *dockerMember) error {
	out, err := c.project.compose(ctx, time.Minute, nil, "ps", "-q", m.Service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.ContainsAny(id, " \n") {
		return fmt.Errorf("container of %s: %q: %w", m.Service, id, errors.Join(err, errors.New("not exactly one container")))
	}
	st, err := inspectContainer(ctx, id)
	if err != nil {
		return err
	}
	if len(st.IPs) != 1 {
		return fmt.Errorf("%s has addresses %v; partitions need exactly one network per member", m.Service, st.IPs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.container, m.ip, m.running, m.paused = id, st.IPs[0], st.Running, st.Paused
	return nil
}

func (c *dockerCluster) Running(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

func (c *dockerCluster) Paused(i int) bool {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running && m.paused
}

func (m *dockerMember) state() (container, ip string, running, paused bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.container, m.ip, m.running, m.paused
}

func (m *dockerMember) set(running, paused bool) {
	m.mu.Lock()
	m.running, m.paused = running, paused
	m.mu.Unlock()
}

// teardownCtx bounds a command the harness must run even when the run was
// interrupted: its own context, never the run's.
func teardownCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// Kill sends SIGKILL (no graceful shutdown) and waits until Docker reports
// the container stopped. The restart policy does not bring back a container
// stopped with `docker kill`.
func (c *dockerCluster) Kill(i int) error {
	m := c.members[i]
	id, _, running, _ := m.state()
	if !running {
		return nil
	}
	ctx, cancel := teardownCtx(30 * time.Second)
	defer cancel()
	if _, err := dockerCmd(ctx, 20*time.Second, "kill", "-s", "KILL", id); err != nil {
		return fmt.Errorf("kill %s: %w", m.Service, err)
	}
	for {
		st, err := inspectContainer(ctx, id)
		if err == nil && !st.Running {
			m.set(false, false)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kill %s: still running after docker kill: %w", m.Service, errors.Join(err, ctx.Err()))
		}
		ctxtime.Sleep(ctx, 100*time.Millisecond)
	}
}

// Restart starts the same container again (same volume, same address).
func (c *dockerCluster) Restart(i int) error {
	m := c.members[i]
	id, _, running, _ := m.state()
	if running {
		return nil
	}
	ctx, cancel := teardownCtx(time.Minute)
	defer cancel()
	c.noteCrashes(ctx, m)
	if _, err := dockerCmd(ctx, 45*time.Second, "start", id); err != nil {
		return fmt.Errorf("restart %s: %w", m.Service, err)
	}
	m.set(true, false)
	return nil
}

func (c *dockerCluster) Pause(i int) error {
	m := c.members[i]
	id, _, running, paused := m.state()
	if !running || paused {
		return fmt.Errorf("pause %s: not running or already paused", m.Service)
	}
	return m.setPaused(id, true)
}

func (c *dockerCluster) Resume(i int) error {
	m := c.members[i]
	id, _, running, paused := m.state()
	if !running || !paused {
		return nil
	}
	return m.setPaused(id, false)
}

// setPaused runs `docker pause` (or unpause) on the member's running
// container id and records its new state.
func (m *dockerMember) setPaused(id string, pause bool) error {
	verb := "unpause"
	if pause {
		verb = "pause"
	}
	ctx, cancel := teardownCtx(30 * time.Second)
	defer cancel()
	if _, err := dockerCmd(ctx, 20*time.Second, verb, id); err != nil {
		return fmt.Errorf("%s %s: %w", verb, m.Service, err)
	}
	m.set(true, pause)
	return nil
}

// Partition makes every container's chain hold exactly the DROP rules of
// this cut; a container outside the cut whose namespace has the chain gets
// it emptied, one not yet armed is left alone.
func (c *dockerCluster) Partition(cut []nemesis.Pair) error {
	ips := make([]string, len(c.members))
	for i, m := range c.members {
		_, ips[i], _, _ = m.state()
	}
	involved := map[int]bool{}
	for _, p := range cut {
		involved[p[0]], involved[p[1]] = true, true
	}
	return c.applyChains(func(i int) (string, bool) {
		return nemesis.NetnsScript(i, cut, ips), involved[i]
	})
}

// HealNetwork empties the chain in every namespace that has it: exactly the
// rules the harness added go, the jump to the (empty) chain stays.
func (c *dockerCluster) HealNetwork() error {
	return c.applyChains(func(i int) (string, bool) { return nemesis.NetnsScript(i, nil, nil), false })
}

// applyChains runs script(i) in every running member's namespace that is
// armed, or that needs arming (need). The first script of a namespace also
// installs the jump from INPUT.
func (c *dockerCluster) applyChains(script func(i int) (s string, need bool)) error {
	ctx, cancel := teardownCtx(time.Minute)
	defer cancel()
	var errs []error
	for i, m := range c.members {
		id, _, running, _ := m.state()
		if !running {
			continue // its namespace is gone; the next start makes an empty one
		}
		st, err := inspectContainer(ctx, id)
		if err != nil || st.Pid == 0 {
			errs = append(errs, fmt.Errorf("%s: no pid: %w", m.Service, errors.Join(err, errors.New("not running"))))
			continue
		}
		s, need := script(i)
		c.mu.Lock()
		armed := c.armed[st.Pid]
		c.mu.Unlock()
		if !armed && !need {
			continue
		}
		if !armed {
			s = nemesis.WithJump(s)
		}
		if err := nemesis.RestoreInNetns(ctx, st.Pid, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Service, err))
			continue
		}
		c.mu.Lock()
		c.armed[st.Pid] = true
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Replace is the deployment guide's replacement of a lost member, after the
// runner removed it from the Raft configuration: remove the container and
// its data volume, then create it again with a join list naming the
// others. docker-compose.yml gives member 1 an empty join list (it
// bootstraps) unless WIMMS1_JOIN is set; the others always have theirs, so
// WIMMS<n>_JOIN is set for whichever member is replaced.
func (c *dockerCluster) Replace(i int) error {
	m := c.members[i]
	ctx, cancel := teardownCtx(3 * time.Minute)
	defer cancel()
	id, _, _, _ := m.state()
	st, err := inspectContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("replace %s: %w", m.Service, err)
	}
	if st.DataVolume == "" {
		return fmt.Errorf("replace %s: no named volume on /data", m.Service)
	}
	c.noteCrashes(ctx, m)
	c.writeLogs(ctx, m, "removed to replace the member")
	if _, err := c.project.compose(ctx, time.Minute, nil, "rm", "-s", "-f", "-v", m.Service); err != nil {
		return fmt.Errorf("replace %s: %w", m.Service, err)
	}
	m.set(false, false)
	if _, err := dockerCmd(ctx, time.Minute, "volume", "rm", st.DataVolume); err != nil {
		return fmt.Errorf("replace %s: %w", m.Service, err)
	}
	var join []string
	for _, o := range c.members {
		if o != m {
			_, ip, _, _ := o.state()
			join = append(join, fmt.Sprintf("%s:%d", ip, containerHTTPPort))
		}
	}
	env := []string{fmt.Sprintf("WIMMS%d_JOIN=%s", i+1, strings.Join(join, ","))}
	if _, err := c.project.compose(ctx, 2*time.Minute, env, "up", "-d", "--no-deps", m.Service); err != nil {
		return fmt.Errorf("replace %s: %w", m.Service, err)
	}
	_, oldIP, _, _ := m.state()
	if err := c.refresh(ctx, m); err != nil {
		return fmt.Errorf("replace %s: %w", m.Service, err)
	}
	if _, ip, _, _ := m.state(); ip != oldIP {
		return fmt.Errorf("replace %s: address changed from %s to %s; the cluster stores Raft addresses", m.Service, oldIP, ip)
	}
	return nil
}

// noteCrashes records the restarts Docker's restart policy made since the
// harness last started the container: each is an exit no fault explains.
// `docker start` resets the count, so it must be read before every start.
func (c *dockerCluster) noteCrashes(ctx context.Context, m *dockerMember) {
	id, _, running, _ := m.state()
	st, err := inspectContainer(ctx, id)
	if err != nil {
		c.log.Warn("inspect for crashes", "member", m.Service, "error", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st.RestartCount > 0 {
		m.crashes = append(m.crashes, fmt.Sprintf("exited on its own and was restarted %d time(s) by Docker's restart policy (last exit code %d, OOM-killed %v)",
			st.RestartCount, st.ExitCode, st.OOMKilled))
	}
	if running && !st.Running {
		m.crashes = append(m.crashes, fmt.Sprintf("found %s, exit code %d, at %s", st.Status, st.ExitCode, time.Now().Format(time.RFC3339)))
	}
}

// StopAll counts crashes, then stops every container gracefully (SIGTERM,
// 10 s before Docker kills it).
func (c *dockerCluster) StopAll() {
	ctx, cancel := teardownCtx(2 * time.Minute)
	defer cancel()
	var ids []string
	for _, m := range c.members {
		c.noteCrashes(ctx, m)
		if id, _, running, _ := m.state(); running {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	if _, err := dockerCmd(ctx, time.Minute, append([]string{"stop", "-t", "10"}, ids...)...); err != nil {
		c.log.Error("stop containers", "error", err)
	}
	for _, m := range c.members {
		m.set(false, false)
	}
}

func (c *dockerCluster) Crashes(i int) []string {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.crashes...)
}

func (c *dockerCluster) Mechanism(kind nemesis.FaultKind) string {
	switch {
	case kind.IsPartition():
		return "iptables DROP on INPUT in the containers' network namespaces"
	case kind == nemesis.FaultKill || kind == nemesis.FaultKillLeader:
		return "docker kill -s KILL, docker start on heal"
	case kind == nemesis.FaultPause || kind == nemesis.FaultPauseLeader:
		return "docker pause, docker unpause on heal"
	}
	return string(kind)
}

func (c *dockerCluster) Audit(note func(format string, args ...any)) {
	var parts []string
	for _, m := range c.members {
		id, ip, _, _ := m.state()
		parts = append(parts, fmt.Sprintf("%s=%s (container %.12s, HTTP %s)", m.Service, ip, id, m.HTTPAddr))
	}
	note("docker: project %s, image %s, network %s.0/24, members %s",
		c.project.name, c.project.image, c.project.subnetPrefix, strings.Join(parts, ", "))
}

// writeLogs appends a container's `docker logs` to the member's log, once
// per container.
func (c *dockerCluster) writeLogs(ctx context.Context, m *dockerMember, why string) {
	id, _, _, _ := m.state()
	m.mu.Lock()
	done := id == "" || m.logsWritten[id]
	m.mu.Unlock()
	if done {
		return
	}
	f, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.log.Error("open member log", "member", m.Service, "error", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== jepsen %s: docker logs -t of container %s (%s, %s)\n", time.Now().Format(time.RFC3339Nano), id, m.Service, why)
	if err := dockerLogs(ctx, id, f); err != nil {
		fmt.Fprintf(f, "=== jepsen: docker logs failed: %v\n", err)
		c.log.Error("docker logs", "member", m.Service, "container", id, "error", err)
		return
	}
	m.mu.Lock()
	m.logsWritten[id] = true
	m.mu.Unlock()
}

// Close unpauses, saves every container's logs, runs `docker-compose down
// -v` (containers, network and volumes; the rules die with the namespaces),
// removes the image it built, checks nothing of the project is left and
// releases the project. Safe to call twice.
func (c *dockerCluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	ctx, cancel := teardownCtx(5 * time.Minute)
	defer cancel()
	for i := range c.members {
		if err := c.Resume(i); err != nil {
			c.log.Warn("unpause before teardown", "member", c.members[i].Service, "error", err)
		}
	}
	for _, m := range c.members {
		c.writeLogs(ctx, m, "end of run")
	}
	return c.project.close(ctx)
}

func (c *dockerCluster) info() DockerInfo {
	p := c.project
	info := DockerInfo{Project: p.name, ComposeFile: p.file, Image: p.image, ImageBuilt: p.imageBuilt,
		Subnet: p.subnetPrefix + ".0/24", Containers: map[string]string{}, MemberIPs: map[string]string{}}
	for _, m := range c.members {
		id, ip, _, _ := m.state()
		info.Containers[m.Service], info.MemberIPs[m.Service] = id, ip
	}
	return info
}

// containerState is what the harness reads with docker inspect.
type containerState struct {
	Running, Paused, OOMKilled bool
	Status                     string
	Pid, ExitCode              int
	RestartCount               int
	IPs                        []string
	DataVolume                 string // the named volume mounted on /data
}

const inspectFormat = `{{.State.Running}}|{{.State.Paused}}|{{.State.OOMKilled}}|{{.State.Status}}|{{.State.Pid}}|{{.State.ExitCode}}|{{.RestartCount}}|` +
	`{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}|` +
	`{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}`

func inspectContainer(ctx context.Context, id string) (containerState, error) {
	out, err := dockerCmd(ctx, 20*time.Second, "inspect", "--format", inspectFormat, id)
	if err != nil {
		return containerState{}, err
	}
	return parseInspect(out)
}

func parseInspect(out string) (containerState, error) {
	f := strings.Split(strings.TrimSpace(out), "|")
	if len(f) != 9 {
		return containerState{}, fmt.Errorf("docker inspect: unexpected output %q", out)
	}
	var st containerState
	var errs []error
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		errs = append(errs, err)
		return n
	}
	st.Running, st.Paused, st.OOMKilled, st.Status = f[0] == "true", f[1] == "true", f[2] == "true", f[3]
	st.Pid, st.ExitCode, st.RestartCount = atoi(f[4]), atoi(f[5]), atoi(f[6])
	st.IPs = strings.Fields(f[7])
	sort.Strings(st.IPs)
	st.DataVolume = f[8]
	if err := errors.Join(errs...); err != nil {
		return containerState{}, fmt.Errorf("docker inspect: %q: %w", out, err)
	}
	return st, nil
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

// FillDisk is not offered for containers (withDefaults refuses disk-full
// with --docker): their data is on Docker volumes.
func (c *dockerCluster) FillDisk(int) (string, error) {
	return "", errors.New("disk-full is not available with --docker")
}

func (c *dockerCluster) FreeDisk(int) error { return nil }

// Tail damage is not offered for containers either (withDefaults refuses
// tail-damage with --docker).
func (c *dockerCluster) DamageTail(int, string) (string, error) {
	return "", errors.New("tail-damage is not available with --docker")
}

func (c *dockerCluster) RestoreData(int) error {
	return errors.New("tail-damage is not available with --docker")
}

func (c *dockerCluster) RestartAllowingExit(i, _ int) error { return c.Restart(i) }

func (c *dockerCluster) ExitCode(int) int { return -1 }
