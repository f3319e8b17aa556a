package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// Workload names what each client does in a loop.
type Workload string

const (
	// WorkloadAlloc allocates brand-new users (one Raft write each).
	WorkloadAlloc Workload = "alloc"
	// WorkloadLookup reads pre-created users at Config.ReadLevel.
	WorkloadLookup Workload = "lookup"
	// WorkloadMix is a token-server-like blend of logins (Config.Mix).
	WorkloadMix Workload = "mix"
	// WorkloadToken signs FxA accounts in through the token server's
	// GET /1.0/{app}/{version} with pre-minted access tokens (token.go).
	WorkloadToken Workload = "token"
)

// ParseWorkload accepts alloc, lookup, mix or token.
func ParseWorkload(s string) (Workload, error) {
	switch w := Workload(s); w {
	case WorkloadAlloc, WorkloadLookup, WorkloadMix, WorkloadToken:
		return w, nil
	}
	return "", fmt.Errorf("workload %q: want alloc, lookup, mix or token", s)
}

// Read levels of docs/api.md (?consistency=).
const (
	ReadStale        = "stale"
	ReadDefault      = "default"
	ReadLinearizable = "linearizable"
)

// Mix holds the relative weights of the mix workload's operations. They
// are weights, not percentages: login=9,new=1 is the same as login=90,new=10.
type Mix struct {
	Login     int `json:"login"`
	New       int `json:"new"`
	KeyChange int `json:"keychange"`
}

// DefaultMix is a token server's day: nearly every sign-in is an existing
// user with unchanged keys.
var DefaultMix = Mix{Login: 90, New: 5, KeyChange: 5}

func (m Mix) total() int { return m.Login + m.New + m.KeyChange }

// String renders the mix in the form ParseMix reads.
func (m Mix) String() string {
	return fmt.Sprintf("login=%d,new=%d,keychange=%d", m.Login, m.New, m.KeyChange)
}

// ParseMix reads "login=90,new=5,keychange=5". Kinds left out weigh 0; a
// kind named twice, an unknown kind, a negative weight or an all-zero mix is
// an error.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	if strings.TrimSpace(s) == "" {
		return m, errors.New("mix is empty: want e.g. login=90,new=5,keychange=5")
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix entry %q: want kind=weight", part)
		}
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 {
			return Mix{}, fmt.Errorf("mix entry %q: weight must be a non-negative integer", part)
		}
		if seen[name] {
			return Mix{}, fmt.Errorf("mix entry %q: %s given twice", part, name)
		}
		seen[name] = true
		switch name {
		case "login":
			m.Login = w
		case "new":
			m.New = w
		case "keychange":
			m.KeyChange = w
		default:
			return Mix{}, fmt.Errorf("mix entry %q: unknown kind %q (want login, new, keychange)", part, name)
		}
	}
	if m.total() == 0 {
		return Mix{}, fmt.Errorf("mix %q: all weights are zero", s)
	}
	return m, nil
}

// Config is one benchmark run. Zero values of the optional fields take the
// defaults documented on each field.
type Config struct {
	// Addrs are the members' HTTP host:port; client i talks to Addrs[i%len].
	Addrs    []string
	APIToken string
	// TLS, when set, makes the run HTTPS and verifies members with it.
	TLS *tls.Config

	Workload  Workload
	ReadLevel string // lookup only: stale, default (the default) or linearizable
	Mix       Mix    // mix only; zero value means DefaultMix

	Clients  int           // concurrent sequential clients; default 64
	Duration time.Duration // measured time, used when Ops == 0
	Ops      int64         // measured operations; overrides Duration when > 0
	Warmup   time.Duration // unmeasured load before the measurement starts

	// Setup creates the service and its nodes before the run. Users for
	// lookup and mix are prepared regardless (get-or-create), because those
	// workloads need every user's current generation and client state.
	Setup   bool
	Service string // default "bench-1.0"
	Nodes   int    // nodes added by Setup; default 10
	Users   int    // users prepared for lookup and mix, accounts minted for token; default 10000

	// TokenKey signs the token workload's access tokens: the private key
	// of a JWKS the cluster's --fxa-jwks-file holds (token only).
	TokenKey *fxa.SigningKey

	// RequestTimeout bounds one HTTP request; default 10s. A timed-out
	// request counts as a transport error.
	RequestTimeout time.Duration

	// MembersCPU, when set, reads the CPU time the members have used so
	// far (Cluster.MembersCPU for a spawned cluster); Run then reports the
	// members' CPU per operation besides its own (Summary.CPU).
	MembersCPU func() (time.Duration, error)

	// Progress receives a progress display (nil: none). A terminal gets a
	// progress bar, anything else a single self-overwriting line.
	Progress io.Writer
	Logger   hclog.Logger // nil: discard
}

// DefaultService is the service Setup creates.
const DefaultService = "bench-1.0"

// maxSetupUsers bounds Users so a typo cannot make setup run for hours.
const maxSetupUsers = 10_000_000

var serviceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,30}$`)

// Validate reports what is wrong with c once its defaults are applied.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if c.Clients == 0 {
		c.Clients = 64
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.Nodes == 0 {
		c.Nodes = 10
	}
	if c.Users == 0 {
		c.Users = 10000
	}
	if c.ReadLevel == "" {
		c.ReadLevel = ReadDefault
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if len(c.Addrs) == 0 {
		return errors.New("no member addresses: give at least one host:port")
	}
	for _, a := range c.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("member address %q: want host:port", a)
		}
	}
	if _, err := ParseWorkload(string(c.Workload)); err != nil {
		return err
	}
	switch c.ReadLevel {
	case ReadStale, ReadDefault, ReadLinearizable:
	default:
		return fmt.Errorf("read level %q: want stale, default or linearizable", c.ReadLevel)
	}
	if c.Mix.Login < 0 || c.Mix.New < 0 || c.Mix.KeyChange < 0 || c.Mix.total() == 0 {
		return fmt.Errorf("mix %s: weights must be non-negative and not all zero", c.Mix)
	}
	if c.Clients < 1 || c.Clients > 100000 {
		return fmt.Errorf("clients %d: want 1..100000", c.Clients)
	}
	if c.Ops < 0 {
		return fmt.Errorf("ops %d: must not be negative", c.Ops)
	}
	if c.Ops == 0 && c.Duration <= 0 {
		return errors.New("give a positive duration or a positive number of ops")
	}
	if c.Warmup < 0 {
		return fmt.Errorf("warmup %s: must not be negative", c.Warmup)
	}
	if !serviceName.MatchString(c.Service) || !strings.Contains(c.Service, "-") {
		return fmt.Errorf("service %q: want 1–30 characters of [A-Za-z0-9._-] containing a '-'", c.Service)
	}
	if c.Nodes < 1 || c.Nodes > 10000 {
		return fmt.Errorf("nodes %d: want 1..10000", c.Nodes)
	}
	if c.Users < 1 || c.Users > maxSetupUsers {
		return fmt.Errorf("users %d: want 1..%d", c.Users, maxSetupUsers)
	}
	if c.Workload == WorkloadMix && c.Users < c.Clients {
		return fmt.Errorf("the mix workload gives every client its own users: want users (%d) ≥ clients (%d)", c.Users, c.Clients)
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("request timeout %s: must not be negative", c.RequestTimeout)
	}
	return nil
}
