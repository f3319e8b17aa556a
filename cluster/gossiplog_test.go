package cluster

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/netguard"
)

func badGossipCount(t *testing.T, m *netguard.Metrics) float64 {
	t.Helper()
	n, err := m.Total("wimms_gossip_bad_packets_total")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGossipLoggerCountsAndAggregatesBadPackets: a flood of packets
// without the gossip key is counted packet by packet but logged once per
// interval; memberlist's other lines pass through unchanged.
func TestGossipLoggerCountsAndAggregatesBadPackets(t *testing.T) {
	var buf bytes.Buffer
	m := netguard.NewMetrics()
	ml := newGossipLogger(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug}), m)
	for range 1000 {
		ml.Printf("[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=127.0.0.9:4000")
	}
	for range 50 {
		ml.Printf("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.9:4001")
	}
	for range 100 {
		ml.Printf("[ERR] memberlist: Error accepting TCP connection: accept tcp 127.0.0.1:1: accept4: too many open files")
	}
	ml.Printf("[INFO] memberlist: Suspect m2 has failed, no acks received")
	if got := badGossipCount(t, m); got != 1050 {
		t.Fatalf("counted %v bad packets, want 1050", got)
	}
	out := buf.String()
	if n := strings.Count(out, "dropped a bad packet"); n != 1 {
		t.Fatalf("%d log lines for 1050 bad packets in one interval, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "memberlist cannot accept connections"); n != 1 {
		t.Fatalf("%d accept-error lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "Suspect m2 has failed") || !strings.Contains(out, "[INFO]") {
		t.Fatalf("an ordinary memberlist line was lost:\n%s", out)
	}
}
