package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// mozlog: Mozilla's structured log format (the one its token and storage
// servers write), one JSON object per line:
//
//	{"Timestamp": <ns>, "Type": "wimms:log", "Logger": "wimms-<version>",
//	 "Hostname": …, "EnvVersion": "2.0", "Severity": <syslog level>,
//	 "Pid": …, "Fields": {"msg": …, <the line's fields>}}
//
// hclog has no pluggable formatter, so the logger writes its JSON lines
// into mozlogWriter, which rewrites each into that shape.

// mozlogSummaryType is the Type of the one line per sign-in, as Mozilla's
// servers name their request summaries.
const mozlogSummaryType = "request.summary"

type mozlogWriter struct {
	out      io.Writer
	logger   string
	hostname string
	pid      int

	mu  sync.Mutex
	buf []byte
}

func newMozlogWriter(out io.Writer) *mozlogWriter {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	v := version
	if v == "" {
		v = "dev"
	}
	return &mozlogWriter{out: out, logger: "wimms-" + v, hostname: host, pid: os.Getpid()}
}

// Write takes hclog's JSON output; whole lines are rewritten and written
// at once, a partial line waits for its end.
func (w *mozlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := w.convert(w.buf[:i])
		w.buf = w.buf[i+1:]
		if _, err := w.out.Write(line); err != nil {
			return len(p), err
		}
	}
}

type mozlogEntry struct {
	Timestamp  int64          `json:"Timestamp"`
	Type       string         `json:"Type"`
	Logger     string         `json:"Logger"`
	Hostname   string         `json:"Hostname"`
	EnvVersion string         `json:"EnvVersion"`
	Severity   int            `json:"Severity"`
	Pid        int            `json:"Pid"`
	Fields     map[string]any `json:"Fields"`
}

// syslogSeverity maps hclog's levels to the syslog numbers mozlog uses.
var syslogSeverity = map[string]int{"trace": 7, "debug": 7, "info": 6, "warn": 4, "error": 3}

func (w *mozlogWriter) convert(line []byte) []byte {
	e := mozlogEntry{Type: "wimms:log", Logger: w.logger, Hostname: w.hostname, EnvVersion: "2.0", Pid: w.pid,
		Severity: 6, Timestamp: time.Now().UnixNano()}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		// Not hclog's JSON (a library writing to the logger's output
		// directly): keep the text.
		e.Fields = map[string]any{"msg": strings.TrimSpace(string(line))}
	} else {
		e.Fields = map[string]any{}
		for k, v := range m {
			switch k {
			case "@timestamp":
				if s, ok := v.(string); ok {
					if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
						e.Timestamp = ts.UnixNano()
					}
				}
			case "@level":
				if s, ok := v.(string); ok {
					if sev, ok := syslogSeverity[s]; ok {
						e.Severity = sev
					}
				}
			case "@message":
				e.Fields["msg"] = v
				if v == mozlogSummaryType {
					e.Type = mozlogSummaryType
				}
			case "@module":
				e.Fields["module"] = v
			default:
				e.Fields[k] = v
			}
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		b, _ = json.Marshal(mozlogEntry{Type: e.Type, Logger: w.logger, Hostname: w.hostname, EnvVersion: "2.0", Pid: w.pid,
			Severity: 3, Timestamp: e.Timestamp, Fields: map[string]any{"msg": "unencodable log line"}})
	}
	return append(b, '\n')
}
