package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Every line hclog writes comes out in mozlog's shape, with hclog's time,
// level, message and fields.
func TestMozlogWriter(t *testing.T) {
	var out bytes.Buffer
	w := newMozlogWriter(&out)
	log := hclog.New(&hclog.LoggerOptions{Name: "wimms", JSONFormat: true, Output: w, Level: hclog.Debug}).With("member", "m1")
	before := time.Now()
	log.Warn("something odd", "n", 3)
	log.Info("request.summary", "code", 200, "uid", "abc")
	log.Debug("detail")
	_, _ = w.Write([]byte("plain text from a library\n"))
	after := time.Now()

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out.String())
	}
	host, _ := os.Hostname()
	var got []mozlogEntry
	for _, l := range lines {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		var e mozlogEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if e.EnvVersion != "2.0" || e.Hostname != host || e.Pid != os.Getpid() || !strings.HasPrefix(e.Logger, "wimms-") {
			t.Fatalf("envelope %+v", e)
		}
		// hclog's timestamps have microseconds.
		if e.Timestamp < before.Truncate(time.Millisecond).UnixNano() || e.Timestamp > after.UnixNano() {
			t.Fatalf("Timestamp %d not within the test (%d..%d)", e.Timestamp, before.UnixNano(), after.UnixNano())
		}
		got = append(got, e)
	}
	if e := got[0]; e.Severity != 4 || e.Type != "wimms:log" || e.Fields["msg"] != "something odd" || e.Fields["n"] != 3.0 ||
		e.Fields["member"] != "m1" || e.Fields["module"] != "wimms" {
		t.Errorf("warn line %+v", e)
	}
	if e := got[1]; e.Severity != 6 || e.Type != "request.summary" || e.Fields["uid"] != "abc" || e.Fields["code"] != 200.0 {
		t.Errorf("summary line %+v", e)
	}
	if e := got[2]; e.Severity != 7 {
		t.Errorf("debug line %+v", e)
	}
	if e := got[3]; e.Fields["msg"] != "plain text from a library" {
		t.Errorf("plain line %+v", e)
	}
}

func TestLogFormatFlag(t *testing.T) {
	for _, ok := range []string{"text", "json", "mozlog"} {
		if _, err := newLogger(serverFlags{logLevel: "info", logFormat: ok}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := newLogger(serverFlags{logLevel: "info", logFormat: "xml"}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("xml: %v", err)
	}
}
