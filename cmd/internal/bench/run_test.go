package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret"

func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }

// twoMembers serves one fake state through two "members", so per-member
// accounting can be checked.
func twoMembers(t *testing.T, f *fakeAPI) []string {
	return []string{hostOf(f.server(t, "f1").URL), hostOf(f.server(t, "f2").URL)}
}

func checkNoProblems(t *testing.T, f *fakeAPI) {
	t.Helper()
	if p := f.problemList(); len(p) > 0 {
		t.Fatalf("fake saw %d malformed requests, first: %s", len(p), p[0])
	}
}

// runOnTwoMembers runs cfg with the test token against twoMembers of f
// and fails t on a run error or a malformed request.
func runOnTwoMembers(t *testing.T, f *fakeAPI, cfg Config) *Summary {
	t.Helper()
	cfg.Addrs, cfg.APIToken = twoMembers(t, f), testToken
	s, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkNoProblems(t, f)
	return s
}

// checkAllOK fails t unless the run measured ops operations, all of them
// successful.
func checkAllOK(t *testing.T, s *Summary, ops int64) {
	t.Helper()
	if s.Ops != ops || s.OK != ops || s.Errors != 0 {
		t.Fatalf("ops/ok/errors = %d/%d/%d, want %d/%d/0 (errors: %v)", s.Ops, s.OK, s.Errors, ops, ops, s.ErrorsByStatus)
	}
}

func TestRunAllocCountsEveryRequest(t *testing.T) {
	f := newFakeAPI(testToken)
	addrs := twoMembers(t, f)
	s, err := Run(context.Background(), Config{
		Addrs: addrs, APIToken: testToken, Workload: WorkloadAlloc,
		Clients: 8, Ops: 200, Setup: true, Nodes: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkNoProblems(t, f)
	checkAllOK(t, s, 200)
	if got := f.count("alloc"); got != 200 {
		t.Fatalf("fake served %d allocations, summary says 200", got)
	}
	if got := f.count("put-service"); got != 1 {
		t.Fatalf("service PUT %d times, want 1", got)
	}
	if got := f.count("add-node"); got != 3 {
		t.Fatalf("%d nodes added, want 3", got)
	}
	// Every allocation must be a brand-new user, or alloc measures lookups.
	if got := f.distinctUsers(""); got != 200 {
		t.Fatalf("%d distinct users allocated, want 200", got)
	}
	if k := s.OpsByKind["alloc"]; k.Ops != 200 || k.OK != 200 {
		t.Fatalf("ops_by_kind[alloc] = %+v", k)
	}
	if len(s.PerMember) != 2 {
		t.Fatalf("per_member has %d entries, want 2", len(s.PerMember))
	}
	var sum int64
	for i, m := range s.PerMember {
		if m.Addr != addrs[i] || m.Clients != 4 {
			t.Fatalf("per_member[%d] = %+v, want addr %s with 4 clients", i, m, addrs[i])
		}
		sum += m.Ops
	}
	if sum != 200 {
		t.Fatalf("per-member ops sum to %d, want 200", sum)
	}
	if s.AnsweredBy["f1"]+s.AnsweredBy["f2"] != 200 || s.AnsweredBy["f1"] == 0 || s.AnsweredBy["f2"] == 0 {
		t.Fatalf("answered_by = %v", s.AnsweredBy)
	}
	if s.Latency.P50 <= 0 || s.Latency.P50 > s.Latency.P99 || s.Latency.P99 > s.Latency.Max {
		t.Fatalf("latency not ordered: %+v", s.Latency)
	}
}

func TestRunSecondSetupAcceptsExistingServiceAndNodes(t *testing.T) {
	f := newFakeAPI(testToken)
	addrs := twoMembers(t, f)
	cfg := Config{Addrs: addrs, APIToken: testToken, Workload: WorkloadAlloc, Clients: 2, Ops: 10, Setup: true, Nodes: 2}
	for i := 0; i < 2; i++ {
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	if got := f.distinctUsers(""); got != 20 {
		t.Fatalf("two runs allocated %d distinct users, want 20 (fresh emails must differ across runs)", got)
	}
}

func TestRunLookupUsesReadLevel(t *testing.T) {
	f := newFakeAPI(testToken)
	s := runOnTwoMembers(t, f, Config{
		Workload: WorkloadLookup, ReadLevel: ReadLinearizable,
		Clients: 6, Ops: 300, Setup: true, Nodes: 1, Users: 50,
	})
	checkAllOK(t, s, 300)
	if got := f.count("alloc"); got != 50 {
		t.Fatalf("setup allocated %d users, want 50", got)
	}
	if got := f.count("get"); got != 300 {
		t.Fatalf("fake served %d GETs, want 300", got)
	}
	f.mu.Lock()
	lin := f.consistency[ReadLinearizable]
	f.mu.Unlock()
	if lin != 300 {
		t.Fatalf("%d of 300 GETs asked for linearizable", lin)
	}
	if s.ReadLevel != ReadLinearizable {
		t.Fatalf("summary read_level %q", s.ReadLevel)
	}
}

// The fake applies docs/spec.md §4's login checks, so zero errors means the bench's
// view of every user (generation, keys_changed_at, client state) stayed
// exact through logins, new users and key changes.
func TestRunMixKeepsUserStateExact(t *testing.T) {
	f := newFakeAPI(testToken)
	mix := Mix{Login: 60, New: 20, KeyChange: 20}
	s := runOnTwoMembers(t, f, Config{
		Workload: WorkloadMix, Mix: mix,
		Clients: 4, Ops: 600, Setup: true, Nodes: 2, Users: 40,
	})
	checkAllOK(t, s, 600)
	login, nw, kc := s.OpsByKind["login"], s.OpsByKind["new"], s.OpsByKind["keychange"]
	if login.Ops+nw.Ops+kc.Ops != 600 {
		t.Fatalf("kinds %+v %+v %+v do not sum to 600", login, nw, kc)
	}
	// With 600 draws at 20% the chance of fewer than 60 is negligible; zero
	// would mean the kind is never picked.
	if nw.Ops < 60 || kc.Ops < 60 || login.Ops < 240 {
		t.Fatalf("mix not followed: login %d new %d keychange %d", login.Ops, nw.Ops, kc.Ops)
	}
	if got := f.count("login-new"); int64(got) != nw.OK {
		t.Fatalf("fake created %d users by login, summary new ok %d", got, nw.OK)
	}
	if got := f.count("login-keychange"); int64(got) != kc.OK {
		t.Fatalf("fake saw %d client-state changes, summary keychange ok %d", got, kc.OK)
	}
	if got := f.count("login"); got != 600 {
		t.Fatalf("fake served %d logins, want 600", got)
	}
	if s.Mix == nil || *s.Mix != mix {
		t.Fatalf("summary mix %+v, want %+v", s.Mix, mix)
	}
}

func TestRunCountsErrorsByStatus(t *testing.T) {
	f := newFakeAPI(testToken)
	f.failLoginEvery = 5
	s := runOnTwoMembers(t, f, Config{
		Workload: WorkloadMix, Mix: Mix{Login: 1},
		Clients: 4, Ops: 200, Setup: true, Nodes: 1, Users: 8,
	})
	injected := int64(f.count("login-failed-injected"))
	if injected == 0 {
		t.Fatal("the fake injected no failures")
	}
	if s.Ops != 200 || s.Errors != injected || s.ErrorsByStatus["503 no-leader"] != injected {
		t.Fatalf("ops %d errors %d by status %v, want 200 ops and %d × 503 no-leader", s.Ops, s.Errors, s.ErrorsByStatus, injected)
	}
	if len(s.ErrorsByStatus) != 1 {
		t.Fatalf("unexpected error kinds: %v", s.ErrorsByStatus)
	}
	if s.OK+s.Errors != s.Ops {
		t.Fatalf("ok %d + errors %d != ops %d", s.OK, s.Errors, s.Ops)
	}
}

func TestRunTransportErrorsAreCounted(t *testing.T) {
	f := newFakeAPI(testToken)
	srv := f.server(t, "dead")
	dead := hostOf(srv.URL)
	srv.Close()
	s, err := Run(context.Background(), Config{
		Addrs: []string{dead}, APIToken: testToken, Workload: WorkloadAlloc,
		Clients: 2, Ops: 6, Setup: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ops != 6 || s.OK != 0 || s.ErrorsByStatus["transport"] != 6 {
		t.Fatalf("ops %d ok %d errors %v, want 6 transport errors", s.Ops, s.OK, s.ErrorsByStatus)
	}
	if s.PerMember[0].Errors != 6 {
		t.Fatalf("per_member = %+v", s.PerMember)
	}
	if s.Latency.Max != 0 {
		t.Fatalf("failed operations entered the latency histogram: %+v", s.Latency)
	}
}

func TestRunWithoutTokenFailsSetup(t *testing.T) {
	f := newFakeAPI(testToken)
	_, err := Run(context.Background(), Config{
		Addrs: twoMembers(t, f), Workload: WorkloadAlloc, Clients: 1, Ops: 1, Setup: true,
	})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want a setup error naming HTTP 401", err)
	}
}

func TestRunDurationExcludesWarmup(t *testing.T) {
	f := newFakeAPI(testToken)
	s := runOnTwoMembers(t, f, Config{
		Workload: WorkloadAlloc, Clients: 2,
		Duration: 300 * time.Millisecond, Warmup: 200 * time.Millisecond, Setup: true, Nodes: 1,
	})
	served := int64(f.count("alloc"))
	if s.Ops == 0 {
		t.Fatal("no operations measured")
	}
	// Warmup operations reached the server but must not be in the summary.
	if s.Ops >= served {
		t.Fatalf("summary counts %d ops, the server served %d: warmup ops were counted", s.Ops, served)
	}
	if s.DurationSeconds <= 0 || s.Throughput <= 0 || s.Interrupted {
		t.Fatalf("duration %v throughput %v interrupted %v", s.DurationSeconds, s.Throughput, s.Interrupted)
	}
}

func TestRunInterruptedReturnsPartialSummary(t *testing.T) {
	f := newFakeAPI(testToken)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once load is flowing; the run is set to last an hour.
		for f.count("alloc") < 50 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	s, err := Run(ctx, Config{
		Addrs: twoMembers(t, f), APIToken: testToken, Workload: WorkloadAlloc,
		Clients: 2, Duration: time.Hour, Setup: true, Nodes: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Interrupted {
		t.Fatal("summary not marked interrupted")
	}
	if s.Errors != 0 {
		t.Fatalf("cancellation counted as errors: %v", s.ErrorsByStatus)
	}
}

func TestRunProgressOnNonTerminal(t *testing.T) {
	f := newFakeAPI(testToken)
	var out syncBuffer
	runOnTwoMembers(t, f, Config{
		Workload: WorkloadLookup, Clients: 2,
		Ops: 20, Setup: true, Nodes: 1, Users: 4, Progress: &out,
	})
	got := out.String()
	// The final redraw of each phase always happens, whatever the timing.
	if !strings.Contains(got, "setup: 4/4 users") || !strings.Contains(got, "20 ops") || strings.Contains(got, "\x1b[") {
		t.Fatalf("progress output %q: want the setup and ops lines without terminal escapes", got)
	}
}

func TestSummaryJSONShape(t *testing.T) {
	f := newFakeAPI(testToken)
	s := runOnTwoMembers(t, f, Config{
		Workload: WorkloadMix, Clients: 2,
		Ops: 30, Setup: true, Nodes: 1, Users: 4,
	})
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"workload", "service", "clients", "members", "warmup_s", "setup_s", "duration_s",
		"ops", "ok", "errors", "errors_by_status", "throughput_ops_per_s", "ok_throughput_ops_per_s",
		"latency_ms", "ops_by_kind", "per_member", "answered_by", "interrupted", "mix"} {
		if _, ok := m[key]; !ok {
			t.Errorf("summary JSON lacks %q: %s", key, raw)
		}
	}
	if _, ok := m["read_level"]; ok {
		t.Errorf("read_level present for a mix run: %s", raw)
	}
	if m["workload"] != "mix" || m["ops"] != float64(30) || m["clients"] != float64(2) {
		t.Errorf("workload/ops/clients = %v/%v/%v", m["workload"], m["ops"], m["clients"])
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, key := range []string{"p50", "p90", "p99", "p999", "max", "mean"} {
		if _, ok := lat[key].(float64); !ok {
			t.Errorf("latency_ms.%s missing or not a number: %v", key, lat)
		}
	}
	members, _ := m["per_member"].([]any)
	if len(members) != 2 {
		t.Fatalf("per_member = %v", m["per_member"])
	}
	for _, pm := range members {
		pmm, _ := pm.(map[string]any)
		for _, key := range []string{"addr", "clients", "ops", "ok", "errors", "latency_ms"} {
			if _, ok := pmm[key]; !ok {
				t.Errorf("per_member entry lacks %q: %v", key, pmm)
			}
		}
	}
	if _, ok := m["errors_by_status"].(map[string]any); !ok {
		t.Errorf("errors_by_status must be an object even when empty: %s", raw)
	}

	var text strings.Builder
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"throughput", "p99.9", "login", "per member"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A follower that has not applied the setup's users yet would turn stale
// lookups into 404s: the run must wait for every member's applied index.
func TestRunWaitsForMembersToApplySetup(t *testing.T) {
	f := newFakeAPI(testToken)
	addrs := twoMembers(t, f)
	f.lagPolls["f2"] = 3
	s, err := Run(context.Background(), Config{
		Addrs: addrs, APIToken: testToken, Workload: WorkloadLookup, ReadLevel: ReadStale,
		Clients: 2, Ops: 10, Setup: true, Nodes: 1, Users: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkNoProblems(t, f)
	f.mu.Lock()
	polls1, polls2 := f.servicePoll["f1"], f.servicePoll["f2"]
	f.mu.Unlock()
	if polls1 != 1 || polls2 != 4 {
		t.Fatalf("service reads f1=%d f2=%d, want 1 and 4 (3 lagging answers, then caught up)", polls1, polls2)
	}
	if s.Errors != 0 {
		t.Fatalf("errors %v", s.ErrorsByStatus)
	}
}
