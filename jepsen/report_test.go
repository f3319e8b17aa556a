package jepsen

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/internal/histtest"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	r := &runner{opts: Options{OutDir: dir, Members: 3, Clients: 4, Duration: time.Minute, Seed: 5,
		Nemesis: []nemesis.FaultKind{nemesis.FaultKill, nemesis.FaultPartitionHalves}}, log: hclog.NewNullLogger(), start: time.Now(), hist: &history.History{}}
	run := histtest.GoodRun()
	in := checker.CheckInput{Emails: []string{histtest.Email, histtest.OtherEmail},
		Final: checker.FinalState{Nodes: run.Nodes, Records: run.Records}, MaxCapacity: run.MaxCapacity, Timeout: 10 * time.Second}
	for _, op := range run.Ops {
		r.hist.Add(op)
	}
	r.hist.Add(history.Op{Kind: history.OpUpdate, Email: histtest.Email, Input: histtest.UpdateGen(1), Outcome: history.OutcomeInfo})
	r.hist.Add(history.Op{Kind: history.OpGet, Email: histtest.Email, Input: histtest.Get(), Outcome: history.OutcomeFail})
	r.events = []nemesis.Event{
		{Kind: nemesis.FaultKill, Targets: []string{"n1"}, Start: 1, End: 2, Injected: true},
		{Kind: nemesis.FaultKill, Targets: []string{"n2"}, Start: 3, End: 4, Injected: true},
		{Kind: nemesis.FaultPartitionLeader, Error: "no running member", Start: 5, End: 5},
	}
	in.History = r.hist.Ops()
	res := checker.Check(in)
	if err := r.writeHistory(in.History, res); err != nil {
		t.Fatal(err)
	}
	sum := Summary{Verdict: res.Verdict, Valid: res.Valid(), Anomalies: res.Anomalies, Linearizable: res.Linearizable}
	r.fillSummary(&sum)
	if err := r.writeSummary(sum); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"valid", "ops", "nemesis_events", "nemesis_kinds", "anomalies"} {
		if _, ok := got[key]; !ok {
			t.Errorf("summary.json lacks %q", key)
		}
	}
	if got["valid"] != true || got["ops"] != float64(6) || got["ops_info"] != float64(1) || got["ops_fail"] != float64(1) {
		t.Errorf("counts wrong: valid=%v ops=%v info=%v fail=%v", got["valid"], got["ops"], got["ops_info"], got["ops_fail"])
	}
	// The fault that could not be injected is listed but not counted.
	if got["nemesis_events"] != float64(2) || got["nemesis_kinds"].(map[string]any)["kill"] != float64(2) {
		t.Errorf("nemesis counts wrong: %v %v", got["nemesis_events"], got["nemesis_kinds"])
	}

	html, err := os.ReadFile(filepath.Join(dir, HistoryHTML))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "nemesis") || !strings.Contains(string(html), "login gen=2001") {
		t.Error("history.html lacks the nemesis annotations or the operations")
	}
	lines, err := os.ReadFile(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(lines), "\n"); n != 6 {
		t.Errorf("history.jsonl has %d lines, want 6", n)
	}
	if !strings.Contains(string(lines), `"keys_changed_at":2000`) {
		t.Errorf("history.jsonl does not use the API's field names:\n%s", lines)
	}
}
