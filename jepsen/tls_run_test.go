package jepsen

import (
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/jepsen/checker"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

// The same faults against members that run with mutual TLS and a gossip
// key: still valid, and the members really were secured.
func TestChaosWithTLSIsValid(t *testing.T) {
	skipUnlessChaos(t)
	kinds, _ := nemesis.Parse("partition,kill,pause")
	opts := Options{Members: 3, Duration: 30 * time.Second, Nemesis: kinds, Seed: 13, TLS: true,
		FaultHold: [2]time.Duration{2 * time.Second, 4 * time.Second}, FaultGap: [2]time.Duration{time.Second, 2 * time.Second}}
	sum := runForTest(t, opts)
	if sum.Verdict != checker.VerdictValid {
		t.Fatalf("TLS cluster judged %s: %+v", sum.Verdict, sum.Anomalies)
	}
	checkExercised(t, sum, 3)
	for i := 1; i <= opts.Members; i++ {
		if log := memberLog(t, sum.OutDir, i); !strings.Contains(log, "mutual TLS on") || !strings.Contains(log, "encrypted=true") {
			t.Errorf("member %d did not run with TLS and an encrypted gossip", i)
		}
	}
}
