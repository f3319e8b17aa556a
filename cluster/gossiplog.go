package cluster

import (
	"bytes"
	"io"
	"log"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/netguard"
)

// badPacketMarks are the texts of memberlist's log lines about a packet or
// stream it dropped as undecryptable or malformed: what a sender without
// the gossip key, or one sending garbage, causes. Such lines arrive once
// per packet (tens of thousands a minute under a flood); everything else
// memberlist says is rare and passes through unchanged.
var badPacketMarks = []string{
	"Decrypt packet failed",
	"failed to receive",
	"Got invalid checksum",
	"missing message type byte",
	"not supported",
	"Received invalid msgType",
	"discarding packet with unacceptable label",
	"discarding stream with unacceptable label",
	"failed to receive and remove the stream label header",
	"unexpected double packet label header",
	"unexpected double stream label header",
	"Failed to decode",
	"Failed to decompress payload",
}

// noisyMarks are lines memberlist repeats on every retry while a flood
// lasts (its accept loop backs off by itself): rate-limited, not counted.
var noisyMarks = []string{
	"Error accepting TCP connection",
}

// gossipLogFilter sits between memberlist's *log.Logger and hclog: it
// counts bad-packet lines in wimms_gossip_bad_packets_total and lets at
// most one of them through per interval (with how many were held back).
type gossipLogFilter struct {
	out     io.Writer // hclog's standard writer, levels inferred from [ERR] etc.
	metrics *netguard.Metrics
	limited *netguard.RateLog
	noisy   *netguard.RateLog

	mu sync.Mutex
}

func newGossipLogger(l hclog.Logger, m *netguard.Metrics) *log.Logger {
	f := &gossipLogFilter{
		out:     l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}),
		metrics: m,
		limited: netguard.NewRateLog(l, 0),
		noisy:   netguard.NewRateLog(l, 0),
	}
	return log.New(f, "", 0)
}

func (f *gossipLogFilter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	for _, mark := range badPacketMarks {
		if strings.Contains(line, mark) {
			f.metrics.BadGossipPacket()
			f.limited.Warn("gossip: dropped a bad packet (wrong gossip key or malformed)",
				"detail", strings.TrimSpace(strings.TrimPrefix(line, "[ERR]")))
			return len(p), nil
		}
	}
	for _, mark := range noisyMarks {
		if strings.Contains(line, mark) {
			f.noisy.Warn("gossip: memberlist cannot accept connections; it retries", "detail", strings.TrimSpace(strings.TrimPrefix(line, "[ERR]")))
			return len(p), nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}
