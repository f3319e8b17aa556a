package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Config is one comparison: every system runs every workload once per
// round with the same clients, warmup and duration.
type Config struct {
	WimmsBin string
	Mariadbd string // "" = look it up (PATH, /usr/sbin)
	Systems  []string
	Rounds   int
	Clients  int
	Duration time.Duration
	Warmup   time.Duration
	Users    int // users prepared for the lookup workload
	Nodes    int // nodes of the alloc workload's service
	JSON     bool
	// Log, when set, receives one line per step (start, run, stop).
	Log io.Writer
}

var allSystems = []string{"wimms", "etcd", "mariadb"}

func parseFlags(args []string, out io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("benchpeers", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.WimmsBin, "wimms-bin", "bin/wimms", "wimms binary (make build)")
	fs.StringVar(&cfg.Mariadbd, "mariadbd", "", "mariadbd binary (default: from PATH or /usr/sbin)")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems to compare, comma-separated")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds; the order of the systems rotates each round")
	fs.IntVar(&cfg.Clients, "clients", 64, "concurrent clients, one operation at a time each")
	fs.DurationVar(&cfg.Duration, "duration", 8*time.Second, "measured time per system, workload and round")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	fs.IntVar(&cfg.Users, "users", 10000, "users prepared for the lookup workload")
	fs.IntVar(&cfg.Nodes, "nodes", 10, "nodes of the alloc workload's service")
	short := fs.Bool("short", false, "smoke run: 1 round of 2s, 1s warmup, 1000 users (overrides those flags)")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *short {
		cfg.Rounds, cfg.Duration, cfg.Warmup, cfg.Users = 1, 2*time.Second, time.Second, 1000
	}
	if !*quiet {
		cfg.Log = out
	}
	cfg.Systems = strings.Split(*systems, ",")
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	for _, s := range c.Systems {
		if !slices.Contains(allSystems, s) {
			return fmt.Errorf("unknown system %q (known: %s)", s, strings.Join(allSystems, ", "))
		}
	}
	switch {
	case len(c.Systems) == 0:
		return errors.New("no system")
	case c.Rounds < 1, c.Clients < 1, c.Users < 1, c.Nodes < 1:
		return errors.New("-rounds, -clients, -users and -nodes must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	}
	return nil
}

func (c Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "benchpeers: "+format+"\n", args...)
	}
}
