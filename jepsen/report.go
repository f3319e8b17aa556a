package jepsen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"golang.org/x/term"

	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/history"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// Files of the output directory.
const (
	SummaryFile = "summary.json"
	HistoryHTML = "history.html"
	HistoryFile = "history.jsonl"
	LogFile     = "jepsen.log"
)

// progressf prints one phase line.
func (r *runner) progressf(format string, args ...any) {
	r.log.Info(fmt.Sprintf(format, args...))
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, "jepsen: "+format+"\n", args...)
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress prints a status line every second (rewritten in place on a
// terminal, every 10 s otherwise) until the returned stop is called.
func (r *runner) startProgress(since time.Duration) (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	tty := isTerminal(r.opts.Progress)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-done:
				if tty {
					fmt.Fprintln(r.opts.Progress)
				}
				return
			case <-tick.C:
			}
			if !tty && n%10 != 0 {
				continue
			}
			ok, fail, info := r.hist.Counts()
			fault := "none"
			if f := r.fault.Load(); f != nil {
				fault = *f
			}
			line := fmt.Sprintf("jepsen: %3ds/%ds  ops ok %d fail %d info %d  fault: %s",
				int((r.clock() - since).Seconds()), int(r.opts.Duration.Seconds()), ok, fail, info, fault)
			if tty {
				fmt.Fprintf(r.opts.Progress, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(r.opts.Progress, line)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// fillSummary adds what is known whatever the outcome: counts, events, files.
func (r *runner) fillSummary(s *Summary) {
	o := r.opts
	s.Members, s.Clients, s.Nemesis, s.Seed, s.SeedBug = o.Members, o.Clients, append([]nemesis.FaultKind{}, o.Nemesis...), o.Seed, o.SeedBug
	s.Duration, s.StartedAt, s.Elapsed, s.OutDir = o.Duration.String(), r.start, r.clock().Round(time.Millisecond).String(), o.OutDir
	s.OpsByKind = map[history.OpKind]map[history.Outcome]int{}
	for _, op := range r.hist.Ops() {
		s.Ops++
		switch op.Outcome {
		case history.OutcomeOK:
			s.OpsOK++
		case history.OutcomeFail:
			s.OpsFail++
		case history.OutcomeInfo:
			s.OpsInfo++
		}
		if s.OpsByKind[op.Kind] == nil {
			s.OpsByKind[op.Kind] = map[history.Outcome]int{}
		}
		s.OpsByKind[op.Kind][op.Outcome]++
	}
	r.mu.Lock()
	s.Events = append([]nemesis.Event(nil), r.events...)
	s.Notes = append(s.Notes, r.notes...)
	r.mu.Unlock()
	s.NemesisKinds = map[nemesis.FaultKind]int{}
	for _, ev := range s.Events {
		if ev.Injected {
			s.NemesisEvents++
			s.NemesisKinds[ev.Kind]++
		}
	}
	if s.Anomalies == nil {
		s.Anomalies = []checker.Anomaly{}
	}
	entries, _ := os.ReadDir(o.OutDir)
	for _, e := range entries {
		if !e.IsDir() {
			s.Files = append(s.Files, e.Name())
		}
	}
	if !contains(s.Files, SummaryFile) {
		s.Files = append(s.Files, SummaryFile)
	}
	sort.Strings(s.Files)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *runner) writeSummary(s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.opts.OutDir, SummaryFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// writeHistory writes every operation (history.jsonl) and porcupine's
// visualisation of the checked operations with the faults as annotations.
func (r *runner) writeHistory(ops []history.Op, res checker.CheckResult) error {
	f, err := os.Create(filepath.Join(r.opts.OutDir, HistoryFile))
	if err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := history.WriteJSONLines(w, ops); err != nil {
		f.Close()
		return fmt.Errorf("write history: %w", err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write history: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	r.mu.Lock()
	events := append([]nemesis.Event(nil), r.events...)
	r.mu.Unlock()
	return writeVisualization(filepath.Join(r.opts.OutDir, HistoryHTML), res, events)
}

func writeVisualization(path string, res checker.CheckResult, events []nemesis.Event) error {
	var notes []porcupine.Annotation
	for _, ev := range events {
		desc := fmt.Sprintf("%s %v", ev.Kind, ev.Targets)
		if ev.Error != "" {
			desc += " (error)"
		}
		notes = append(notes, porcupine.Annotation{Tag: "nemesis", Start: int64(ev.Start), End: int64(ev.End),
			Description: desc, Details: ev.Detail + errorSuffix(ev.Error), BackgroundColor: "#f6d6d6"})
	}
	return res.Visualize(path, notes)
}

func errorSuffix(e string) string {
	if e == "" {
		return ""
	}
	return "; error: " + e
}
