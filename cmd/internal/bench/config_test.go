package bench

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Mix
		wantErr string
	}{
		{in: "login=90,new=5,keychange=5", want: Mix{90, 5, 5}},
		{in: " keychange=1 , login=3 ", want: Mix{Login: 3, KeyChange: 1}},
		{in: "new=7", want: Mix{New: 7}},
		{in: "login=0,new=0", wantErr: "all weights are zero"},
		{in: "", wantErr: "empty"},
		{in: "login", wantErr: "want kind=weight"},
		{in: "login=-1,new=2", wantErr: "non-negative"},
		{in: "login=x", wantErr: "non-negative integer"},
		{in: "login=1,login=2", wantErr: "given twice"},
		{in: "logout=5", wantErr: "unknown kind"},
	} {
		got, err := ParseMix(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseMix(%q) error = %v, want one containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseMix(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if back, err := ParseMix(got.String()); err != nil || back != got {
			t.Errorf("String() of %+v does not parse back: %q → %+v, %v", got, got.String(), back, err)
		}
	}
}

func TestMixPickFollowsWeights(t *testing.T) {
	w := &worker{cfg: &Config{Mix: Mix{Login: 2, New: 0, KeyChange: 1}}}
	w.rng = newTestRand()
	var counts [numKinds]int
	for i := 0; i < 3000; i++ {
		counts[w.pickMixKind()]++
	}
	if counts[kindNew] != 0 {
		t.Fatalf("a zero-weight kind was picked %d times", counts[kindNew])
	}
	// Expected 2000 / 1000; ±200 is over 8 standard deviations.
	if counts[kindLogin] < 1800 || counts[kindLogin] > 2200 || counts[kindKeyChange] < 800 || counts[kindKeyChange] > 1200 {
		t.Fatalf("login %d keychange %d of 3000, want ≈2000/1000", counts[kindLogin], counts[kindKeyChange])
	}
}

func TestConfigValidation(t *testing.T) {
	base := Config{Addrs: []string{"127.0.0.1:1"}, Workload: WorkloadAlloc, Duration: time.Second}
	if err := base.Validate(); err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	for name, c := range map[string]struct {
		mut     func(*Config)
		wantErr string
	}{
		"no addrs":       {func(c *Config) { c.Addrs = nil }, "no member addresses"},
		"bad addr":       {func(c *Config) { c.Addrs = []string{"localhost"} }, "host:port"},
		"workload":       {func(c *Config) { c.Workload = "write" }, "workload"},
		"read level":     {func(c *Config) { c.ReadLevel = "strong" }, "read level"},
		"no duration":    {func(c *Config) { c.Duration = 0 }, "duration"},
		"negative ops":   {func(c *Config) { c.Ops = -1 }, "ops"},
		"clients":        {func(c *Config) { c.Clients = -3 }, "clients"},
		"service":        {func(c *Config) { c.Service = "nodash" }, "service"},
		"negative mix":   {func(c *Config) { c.Mix = Mix{Login: -1, New: 2} }, "mix"},
		"warmup":         {func(c *Config) { c.Warmup = -time.Second }, "warmup"},
		"mix too few":    {func(c *Config) { c.Workload = WorkloadMix; c.Users = 3; c.Clients = 4 }, "users (3) ≥ clients (4)"},
		"users too many": {func(c *Config) { c.Users = maxSetupUsers + 1 }, "users"},
	} {
		cfg := base
		c.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error = %v, want one containing %q", name, err, c.wantErr)
		}
	}
	// Ops alone is enough.
	ops := base
	ops.Duration, ops.Ops = 0, 10
	if err := ops.Validate(); err != nil {
		t.Errorf("ops without duration: %v", err)
	}
}

func TestWorkerRequestBodies(t *testing.T) {
	w := &worker{rq: newAPI(1, "", 0, nil).newRequester(context.Background(), "127.0.0.1:1")}
	if got := string(w.allocBody("a@b", 0, 0, "")); got != `{"email":"a@b"}` {
		t.Errorf("alloc body %s", got)
	}
	if got := string(w.allocBody("a@b", 5, 0, "ab")); got != `{"email":"a@b","generation":5,"client_state":"ab"}` {
		t.Errorf("alloc body with fields %s", got)
	}
	if got := string(w.loginBody(9223372036854775807, 7, "")); got != `{"generation":9223372036854775807,"keys_changed_at":7,"client_state":""}` {
		t.Errorf("login body %s", got)
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
