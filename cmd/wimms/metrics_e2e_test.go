package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// scrape parses a member's /metrics.
func scrape(t *testing.T, m *member) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	a := expect(t, call(t, "GET", m.url("/metrics"), nil), 200, "GET /metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(a.raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams, []byte(a.raw)
}

// sample returns the value of the family's series with exactly these
// labels (a counter, gauge or a histogram's sample count), or -1.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAnswerQuestions drives a real member through the situations
// an on-call engineer asks about and reads the answers from /metrics.
func TestMetricsAnswerQuestions(t *testing.T) {
	m := startSolo(t, "m1", "zone-a")

	const svc = "sync-1.5"
	expect(t, call(t, "PUT", m.url("/v1/services/"+svc), map[string]any{"pattern": "{node}/1.5/{uid}"}), 201, "service")
	expect(t, call(t, "PUT", m.url("/v1/services/empty-1.0"), map[string]any{"pattern": "{node}/{uid}"}), 201, "service without nodes")
	expect(t, call(t, "POST", m.url("/v1/services/"+svc+"/nodes"), map[string]any{"node": "https://n1.example.com", "capacity": 100}), 201, "node 1")
	expect(t, call(t, "POST", m.url("/v1/services/"+svc+"/nodes"), map[string]any{"node": "https://n2.example.com", "capacity": 50, "downed": true}), 201, "node 2")

	expect(t, allocate(t, m, "a@example.com"), 201, "allocate a")
	expect(t, allocate(t, m, "a@example.com"), 200, "allocate a again")
	expect(t, call(t, "POST", m.url("/v1/services/empty-1.0/users"), map[string]any{"email": "a@example.com"}), 503, "allocate without nodes")
	login := func(gen int, code int, what string) {
		expect(t, call(t, "POST", m.url("/v1/services/"+svc+"/users/b@example.com/login"),
			map[string]any{"generation": gen, "client_state": ""}), code, what)
	}
	login(5, 200, "login creates b")
	login(5, 200, "login b again")
	login(3, 401, "login with an older generation")

	fams, raw := scrape(t, m)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wimms_node_current_load", []string{"service", svc, "node", "https://n1.example.com"}, 2},
		{"wimms_node_current_load", []string{"service", svc, "node", "https://n2.example.com"}, 0},
		{"wimms_node_capacity", []string{"service", svc, "node", "https://n2.example.com"}, 50},
		{"wimms_node_downed", []string{"service", svc, "node", "https://n2.example.com"}, 1},
		{"wimms_node_downed", []string{"service", svc, "node", "https://n1.example.com"}, 0},
		{"wimms_node_backoff", []string{"service", svc, "node", "https://n1.example.com"}, 0},
		{"wimms_service_users", []string{"service", svc}, 2},
		{"wimms_service_records", []string{"service", svc}, 2},
		{"wimms_service_nodes", []string{"service", "empty-1.0"}, 0},
		{"wimms_allocations_total", []string{"service", svc, "result", "created"}, 1},
		{"wimms_allocations_total", []string{"service", svc, "result", "existing"}, 1},
		{"wimms_allocations_total", []string{"service", "empty-1.0", "result", "no-node-available"}, 1},
		// Every login is counted once, by the member that decided it:
		// the one that created b (proposed), the repeat and the rejection
		// (decided from reads).
		{"wimms_logins_total", []string{"service", svc, "outcome", "ok"}, 2},
		{"wimms_logins_total", []string{"service", svc, "outcome", "invalid-generation"}, 1},
		// The deprecated series, kept one release: applied logins (every
		// member counts each) and read-decided ones.
		{"wimms_logins_applied_total", []string{"service", svc, "outcome", "new-user"}, 1},
		{"wimms_login_reads_total", []string{"service", svc, "outcome", "ok"}, 1},
		{"wimms_login_reads_total", []string{"service", svc, "outcome", "invalid-generation"}, 1},
		{"wimms_logins_applied_total", []string{"service", svc, "outcome", "ok"}, -1},
		{"wimms_cluster_leader_known", nil, 1},
		{"wimms_cluster_member_up", []string{"member", "m1", "zone", "zone-a"}, 1},
	}
	for _, c := range checks {
		if got := sample(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := sample(fams, "wimms_node_available", "service", svc, "node", "https://n1.example.com"); got < 0 || got > 100 {
		t.Errorf("wimms_node_available of n1 = %v, want a value within capacity", got)
	}
	if n := sample(fams, "wimms_raft_fsm_apply_duration_seconds"); n < 1 {
		t.Errorf("raft apply latency histogram has %v samples, want at least one batch", n)
	}
	for _, stage := range []string{"leader_append", "log_append", "watermark_sync"} {
		if n := sample(fams, "wimms_raft_stage_duration_seconds", "stage", stage); n < 1 {
			t.Errorf("write stage %s has %v samples, want at least one append", stage, n)
		}
	}
	if _, ok := fams["wimms_raft_commit_duration_seconds"]; !ok {
		t.Error("raft commit latency histogram missing")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", raw)
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(testutil.Tool(t, "prometheus", "promtool"), "check", "metrics")
		cmd.Stdin = bytes.NewReader(raw)
		if out, code := testutil.Run(t, cmd); code != 0 {
			t.Fatalf("promtool check metrics: exit status %d\n%s", code, out)
		}
	})
}

// TestDeployPrometheusFiles: the scrape example and the alert rules load in
// Prometheus's own checker, and the alerts fire on the situations they
// name (promtool test rules with deploy/prometheus/alerts_test.yml).
func TestDeployPrometheusFiles(t *testing.T) {
	promtool := testutil.Tool(t, "prometheus", "promtool")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		if out, code := testutil.Run(t, cmd); code != 0 {
			t.Errorf("promtool %s: exit status %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	checkDashboardQueries(t, promtool)
}

// checkDashboardQueries parses every query of the Grafana dashboard with
// Prometheus's parser: they become recording rules of a temporary file
// that `promtool check rules` must accept.
func checkDashboardQueries(t *testing.T, promtool string) {
	raw, err := os.ReadFile("../../deploy/grafana/wimms-dashboard.json")
	if err != nil {
		t.Fatalf("grafana dashboard: %v", err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana dashboard is not JSON: %v", err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			expr := strings.ReplaceAll(tg.Expr, "$job", "wimms")
			q, _ := json.Marshal(expr) // a JSON string is a valid YAML string
			fmt.Fprintf(&rules, "      - record: dashboard_query_%d\n        expr: %s\n", n, q)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("dashboard has only %d queries", n)
	}
	path := testutil.TempFile(t, "dashboard-rules.yml", []byte(rules.String()))
	if out, code := testutil.Run(t, exec.Command(promtool, "check", "rules", path)); code != 0 {
		t.Errorf("dashboard queries do not parse: exit status %d\n%s", code, out)
	}
}
