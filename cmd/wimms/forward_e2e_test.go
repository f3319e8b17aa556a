package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestApplyTimeoutSetsTheForwardTimeout: --apply-timeout reaches the
// cluster layer, whose relays then wait that long plus the hop for the
// leader's answer; with the old fixed 15 s, a relayed write under a
// longer apply timeout got 504 while the leader still worked on it.
func TestApplyTimeoutSetsTheForwardTimeout(t *testing.T) {
	m := startSolo(t, "m1", "z1", "--apply-timeout", "40s")
	want := "forward_timeout=45s"
	eventually(t, 10*time.Second, "the member to log its forward timeout", func() error {
		log := m.log(t)
		if !strings.Contains(log, "relaying to the leader") {
			return fmt.Errorf("no forward timeout logged yet")
		}
		if !strings.Contains(log, want) {
			return fmt.Errorf("log lacks %s", want)
		}
		return nil
	})
}
