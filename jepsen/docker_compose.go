package jepsen

// A small driver for docker and docker-compose v1 (the machines have 1.29;
// `docker compose` v2 does not exist there). It follows what
// cmd/wimms/compose_test.go does for the deployment test: a private build
// context, a random project name, free host ports, a free /24 and a clean
// environment, with the same WIMMS_* knobs docker-compose.yml reads.

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/launch"
)

// DockerProjectPrefix starts the name of every project (and image tag) a
// run makes, so that --cleanup finds them and nothing else.
const DockerProjectPrefix = "wimmsjepsen"

// dockerImageRepo is the repository of the images runs build.
const dockerImageRepo = "wimms-jepsen"

// composeProject is one run's project: its name, files, environment and
// image, and the lock that says a live run owns it.
type composeProject struct {
	log          hclog.Logger
	name         string
	file         string // the compose file, absolute
	override     string // the harness's override file ("" until configure)
	tmpDir       string // override file and build context
	env          []string
	httpAddr     map[string]string // service -> published HTTP address
	subnetPrefix string
	image        string
	imageBuilt   bool // this run built image (and must remove it)
	imageRemoved bool
	upAttempted  bool
	unlock       func()
}

var projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func newComposeProject(o DockerOptions, log hclog.Logger) (*composeProject, error) {
	if o.ComposeFile == "" {
		o.ComposeFile = "docker-compose.yml"
	}
	file, err := filepath.Abs(o.ComposeFile)
	if err != nil {
		return nil, fmt.Errorf("compose file: %w", err)
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("compose file: %w", err)
	}
	name := o.Project
	if name == "" {
		name = DockerProjectPrefix + randomHex(4)
	}
	// docker-compose v1 silently rewrites other names; the labels, volume
	// names and --cleanup must agree with what it will use.
	if !projectNameRE.MatchString(name) {
		return nil, fmt.Errorf("project name %q: want lower-case letters, digits, '-' and '_'", name)
	}
	unlock, err := lockProject(name)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", projectTmpPrefix(name))
	if err != nil {
		unlock()
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	return &composeProject{log: log, name: name, file: file, tmpDir: tmp, env: ComposeEnv(),
		httpAddr: map[string]string{}, image: o.Image, unlock: unlock}, nil
}

// projectLockPath is held (flock) by the run that owns the project; the
// kernel releases it when that run dies, which is how --cleanup tells a
// live project from a leftover.
func projectLockPath(project string) string {
	return filepath.Join(os.TempDir(), "wimms-jepsen-docker-"+project+".lock")
}

// projectTmpPrefix starts the name of the project's temporary directory
// (override file, build context), so that --cleanup finds it.
func projectTmpPrefix(project string) string { return "wimms-jepsen-" + project + "-" }

// lockProject takes the project's lock without waiting.
func lockProject(project string) (unlock func(), err error) {
	path := projectLockPath(project)
	f, err := tryLock(path, fmt.Errorf("compose project %s is in use by another run", project))
	if err != nil {
		return nil, err
	}
	return func() {
		os.Remove(path)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ComposeEnv is this process's environment without the variables
// docker-compose.yml reads (WIMMS*, COMPOSE_*), so that an operator's
// exported settings (a token would lock the harness out) cannot leak into
// a project the harness or a test starts.
func ComposeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WIMMS") || strings.HasPrefix(kv, "COMPOSE_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// compose runs docker-compose on the project's files. extraEnv wins over
// the project's environment.
func (p *composeProject) compose(ctx context.Context, timeout time.Duration, extraEnv []string, args ...string) (string, error) {
	full := []string{"-f", p.file}
	if p.override != "" {
		full = append(full, "-f", p.override)
	}
	full = append(full, "-p", p.name)
	full = append(full, args...)
	p.log.Debug("docker-compose", "args", strings.Join(args, " "), "env", extraEnv)
	return runTool(ctx, timeout, append(slices.Clone(p.env), extraEnv...), "docker-compose", full...)
}

// services lists the compose services, sorted: member i is the i-th.
func (p *composeProject) services(ctx context.Context) ([]string, error) {
	out, err := p.compose(ctx, time.Minute, nil, "config", "--services")
	if err != nil {
		return nil, err
	}
	services := strings.Fields(out)
	slices.Sort(services)
	if len(services) == 0 {
		return nil, fmt.Errorf("%s defines no services", p.file)
	}
	return services, nil
}

var composeVersionRE = regexp.MustCompile(`(?m)^version:\s*["']?([0-9.]+)["']?\s*$`)

// configure picks free host ports and a free subnet, sets the environment
// docker-compose.yml reads, and writes the override file that gives the
// members what a loopback run passes as flags (--leader-wait, --seed-bug).
func (p *composeProject) configure(services []string, leaderWait time.Duration, seedBug string) error {
	prefix, err := FreeSubnetPrefix(RunSubnetLow, RunSubnetHigh)
	if err != nil {
		return err
	}
	// The ports are free when picked but not held: another process could
	// take one before docker-compose binds it, and `up` then fails loudly.
	ports, err := launch.FreePorts(len(services))
	if err != nil {
		return err
	}
	p.subnetPrefix = prefix
	p.env = append(p.env,
		"COMPOSE_PROJECT_NAME="+p.name,
		"WIMMS_SUBNET_PREFIX="+prefix,
		"WIMMS_PUBLISH_IP=127.0.0.1",
		// No auth: the harness drives the API directly.
		"WIMMS_API_TOKEN=", "WIMMS_ADMIN_TOKEN=", "WIMMS1_JOIN=",
		"WIMMS_LOG_LEVEL=info", "WIMMS_LOG_JSON=false")
	for i, svc := range services {
		p.httpAddr[svc] = fmt.Sprintf("127.0.0.1:%d", ports[i])
		p.env = append(p.env, fmt.Sprintf("WIMMS%d_HTTP_PORT=%d", i+1, ports[i]))
	}

	base, err := os.ReadFile(p.file)
	if err != nil {
		return fmt.Errorf("read compose file: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Written by wimms jepsen --docker for project " + p.name + ".\n")
	// docker-compose v1 refuses to merge files of different versions.
	if m := composeVersionRE.FindSubmatch(base); m != nil {
		fmt.Fprintf(&b, "version: %q\n", string(m[1]))
	}
	b.WriteString("services:\n")
	for _, svc := range services {
		fmt.Fprintf(&b, "  %s:\n    environment:\n", svc)
		if leaderWait > 0 {
			fmt.Fprintf(&b, "      WIMMS_LEADER_WAIT: %q\n", leaderWait.String())
		}
		if seedBug != "" {
			fmt.Fprintf(&b, "      WIMMS_SEED_BUG: %q\n", seedBug)
		}
	}
	p.override = filepath.Join(p.tmpDir, "docker-compose.jepsen.yml")
	if err := os.WriteFile(p.override, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write override file: %w", err)
	}
	return nil
}

func (p *composeProject) imageTag() string { return dockerImageRepo + ":" + p.name }

// prepareImage checks that the given image exists, or builds one the way
// `make image` does, from bin, in a private build context (a copy of the
// Dockerfile and .dockerignore next to the compose file), so that it
// neither touches bin/ nor retags the operator's wimms:latest.
func (p *composeProject) prepareImage(ctx context.Context, bin string) error {
	defer func() { p.env = append(p.env, "WIMMS_IMAGE="+p.image) }()
	if p.image != "" {
		if _, err := runTool(ctx, 30*time.Second, nil, "docker", "image", "inspect", "--format", "{{.Id}}", p.image); err != nil {
			return fmt.Errorf("image %s not found (build it with `make image`, or leave --image empty to build one from --bin): %w", p.image, err)
		}
		return nil
	}
	if err := checkStaticBinary(bin); err != nil {
		return err
	}
	buildCtx := filepath.Join(p.tmpDir, "build")
	if err := os.MkdirAll(filepath.Join(buildCtx, "bin", "docker-data"), 0o755); err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	dir := filepath.Dir(p.file)
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		if err := copyFile(filepath.Join(dir, f), filepath.Join(buildCtx, f), 0o644); err != nil {
			return fmt.Errorf("build context (the Dockerfile is expected next to the compose file): %w", err)
		}
	}
	if err := copyFile(bin, filepath.Join(buildCtx, "bin", "wimms"), 0o755); err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	tag := p.imageTag()
	if _, err := runTool(ctx, 5*time.Minute, nil, "docker", "build", "--build-arg", "VERSION=jepsen", "-t", tag, buildCtx); err != nil {
		return err
	}
	p.image, p.imageBuilt = tag, true
	return nil
}

// checkStaticBinary: the image is FROM scratch, so a binary that needs a
// dynamic loader would not even start in it.
func checkStaticBinary(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("server binary %s: %w", bin, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("server binary %s is dynamically linked; the FROM-scratch image needs a static one (CGO_ENABLED=0, as `make build` does)", bin)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// up starts the project.
func (p *composeProject) up(ctx context.Context) error {
	p.upAttempted = true
	_, err := p.compose(ctx, 5*time.Minute, nil, "up", "-d")
	return err
}

// close removes the project (containers, network, volumes), the image it
// built and its files, checks nothing labelled with the project is left,
// and releases the lock.
func (p *composeProject) close(ctx context.Context) error {
	var errs []error
	if p.upAttempted {
		if _, err := p.compose(ctx, 3*time.Minute, nil, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			errs = append(errs, err)
		}
		if left, err := projectLeftovers(ctx, p.name); err != nil {
			errs = append(errs, err)
		} else if len(left) > 0 {
			errs = append(errs, fmt.Errorf("left after docker-compose down -v: %s", strings.Join(left, ", ")))
		}
	}
	if p.imageBuilt && !p.imageRemoved {
		if _, err := runTool(ctx, 2*time.Minute, nil, "docker", "rmi", "-f", p.image); err != nil {
			errs = append(errs, err)
		} else {
			p.imageRemoved = true
		}
	}
	if p.tmpDir != "" {
		if err := os.RemoveAll(p.tmpDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p.tmpDir, err))
		}
	}
	if len(errs) == 0 {
		p.unlock()
	} else {
		// Keep the lock file so --cleanup knows the project is a leftover
		// once this process is gone; the kernel releases the flock.
		p.log.Error("docker teardown incomplete", "project", p.name, "error", errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// projectLeftovers lists containers, networks and volumes labelled with
// the project.
func projectLeftovers(ctx context.Context, project string) ([]string, error) {
	label := "label=com.docker.compose.project=" + project
	var left []string
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		out, err := runTool(ctx, 30*time.Second, nil, "docker", append(kind, "--filter", label)...)
		if err != nil {
			return nil, err
		}
		for _, id := range strings.Fields(out) {
			left = append(left, kind[0]+" "+id)
		}
	}
	return left, nil
}

// runTool runs docker or docker-compose in its own process group, so that
// a terminal's Ctrl-C reaches only the harness (which then tears down in
// order) and not a `docker-compose up` half-way.
func runTool(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out, 3))
	}
	return string(out), nil
}

func dockerCmd(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return runTool(ctx, timeout, nil, "docker", args...)
}

// dockerLogs writes a container's stdout and stderr, with timestamps.
func dockerLogs(ctx context.Context, id string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "logs", "-t", id)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker logs %s: %w", id, err)
	}
	return nil
}

// lastLines keeps an error message short: docker-compose prints progress
// before the reason.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// Ranges of the third octet of 10.213.x.0/24 that callers pick from, kept
// apart so runs and the compose test never race for one subnet; 47 is the
// compose file's default (`make cluster-up`) and is never picked.
const (
	RunSubnetLow       = 1
	RunSubnetHigh      = 99
	ComposeSubnetLow   = 100
	ComposeSubnetHigh  = 249
	defaultSubnetOctet = 47
)

// FreeSubnetPrefix picks a 10.213.x.0/24 with x in [low, high] (never 47)
// that overlaps no Docker network and no host address, and returns its
// prefix "10.213.x".
func FreeSubnetPrefix(low, high int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var taken []*net.IPNet
	ids, err := dockerCmd(ctx, 30*time.Second, "network", "ls", "-q")
	if err != nil {
		return "", err
	}
	if fields := strings.Fields(ids); len(fields) > 0 {
		out, err := dockerCmd(ctx, 30*time.Second, append([]string{"network", "inspect", "--format",
			"{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, fields...)...)
		if err != nil {
			return "", err
		}
		for _, s := range strings.Fields(out) {
			if _, n, err := net.ParseCIDR(s); err == nil {
				taken = append(taken, n)
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				taken = append(taken, n)
			}
		}
	}
	var seed [1]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	span := high - low + 1
	for i := range span {
		third := low + (int(seed[0])+i)%span
		if third == defaultSubnetOctet {
			continue
		}
		_, candidate, _ := net.ParseCIDR(fmt.Sprintf("10.213.%d.0/24", third))
		if !slices.ContainsFunc(taken, func(n *net.IPNet) bool { return n.Contains(candidate.IP) || candidate.Contains(n.IP) }) {
			return fmt.Sprintf("10.213.%d", third), nil
		}
	}
	return "", errors.New("no free 10.213.x.0/24 subnet for the compose network")
}

// CleanupDocker removes what runs killed before their teardown left: every
// compose project named DockerProjectPrefix* whose run is gone (its lock is
// free), with its containers, network and volumes, and the images those
// runs built. Projects of live runs are left alone. It returns what it
// removed.
func CleanupDocker(composeFile string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	projects := map[string]bool{}
	for _, kind := range [][]string{{"ps", "-a"}, {"network", "ls"}, {"volume", "ls"}} {
		out, err := dockerCmd(ctx, 30*time.Second, append(kind, "--filter", "label=com.docker.compose.project",
			"--format", `{{.Label "com.docker.compose.project"}}`)...)
		if err != nil {
			return nil, err
		}
		for _, name := range strings.Fields(out) {
			if strings.HasPrefix(name, DockerProjectPrefix) {
				projects[name] = true
			}
		}
	}
	tags, err := dockerCmd(ctx, 30*time.Second, "images", dockerImageRepo, "--format", "{{.Tag}}")
	if err != nil {
		return nil, err
	}
	for _, tag := range strings.Fields(tags) {
		if strings.HasPrefix(tag, DockerProjectPrefix) {
			projects[tag] = true
		}
	}
	file, err := filepath.Abs(composeFile)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	names := make([]string, 0, len(projects))
	for name := range projects {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		unlock, err := lockProject(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: skipped: %w", name, err))
			continue
		}
		p := &composeProject{log: hclog.NewNullLogger(), name: name, file: file, env: ComposeEnv(), upAttempted: true,
			image: dockerImageRepo + ":" + name, unlock: unlock}
		p.env = append(p.env, "COMPOSE_PROJECT_NAME="+name)
		p.imageBuilt = strings.Contains("\n"+tags+"\n", "\n"+name+"\n")
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), projectTmpPrefix(name)+"*"))
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		if err := p.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			unlock()
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
