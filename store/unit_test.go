package store

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wimms-dev/wimms/fsm"
)

// The chaos harness cuts links by source address, so a member bound to
// 127.0.0.2 must send from 127.0.0.2, not the kernel's default 127.0.0.1.
func TestDialerBindsLocalIP(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()

	sl, err := newStreamLayer("127.0.0.2:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if got := sl.Addr().String(); !strings.HasPrefix(got, "127.0.0.2:") || strings.HasSuffix(got, ":0") {
		t.Fatalf("advertised %s: want the bound 127.0.0.2 port", got)
	}
	conn, err := sl.Dial(raft.ServerAddress(target.Addr().String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ip := conn.LocalAddr().(*net.TCPAddr).IP; !ip.Equal(net.ParseIP("127.0.0.2")) {
		t.Fatalf("outgoing connection's local address %s: want 127.0.0.2", conn.LocalAddr())
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("target accepted nothing")
	}
	defer peer.Close()
	if ip := peer.RemoteAddr().(*net.TCPAddr).IP; !ip.Equal(net.ParseIP("127.0.0.2")) {
		t.Fatalf("the peer sees us from %s: want 127.0.0.2", peer.RemoteAddr())
	}
}

func TestStreamLayerAddresses(t *testing.T) {
	if _, err := newStreamLayer("0.0.0.0:0", ""); err == nil {
		t.Fatal("an unspecified bind without advertise address was accepted")
	}
	sl, err := newStreamLayer("127.0.0.1:0", "127.0.0.9:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	if sl.Addr().String() != "127.0.0.9:7000" {
		t.Fatalf("Addr() = %s, want the advertise address", sl.Addr())
	}
	cases := []struct {
		local, target string
		want          bool
	}{
		{"127.0.0.3", "127.0.0.1:1", true},
		{"127.0.0.3", "localhost:1", true},
		{"127.0.0.3", "10.1.2.3:1", false},
		{"10.0.0.1", "10.1.2.3:1", true},
	}
	for _, c := range cases {
		if got := canSendFrom(net.ParseIP(c.local), c.target); got != c.want {
			t.Errorf("canSendFrom(%s, %s) = %v, want %v", c.local, c.target, got, c.want)
		}
	}
}

func newTestAdapter(t *testing.T) (*fsmAdapter, *fakeMachine) {
	m := newFakeMachine()
	return newFSMAdapter(m, jsonCodec, hclog.NewNullLogger()), m
}

// An undecodable entry must neither crash the member nor stall the applied
// index; its proposer gets an error and the entries around it apply.
func TestAdapterSkipsUndecodableEntries(t *testing.T) {
	a, m := newTestAdapter(t)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: jsonCodec.encode(putService("a-1.0"))},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: []byte{0xff, 0x00}},
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: jsonCodec.encode(putService("b-1.0"))},
	}
	changed := a.appliedChanged()
	out := a.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	if out[0] != nil {
		t.Fatalf("configuration entry got response %v", out[0])
	}
	if r := out[1].(*applyResponse); r.err != nil || !r.result.Created || r.index != 2 {
		t.Fatalf("entry 2: %+v", r)
	}
	if r := out[2].(*applyResponse); !errors.Is(r.err, fsm.ErrBadEncoding) || r.index != 3 {
		t.Fatalf("entry 3: %+v, want a decoding error", r)
	}
	if r := out[3].(*applyResponse); r.err != nil || r.term != 2 {
		t.Fatalf("entry 4: %+v", r)
	}
	if !m.has("a-1.0") || !m.has("b-1.0") {
		t.Fatal("the valid entries around the bad one were not applied")
	}
	if a.applied.Load() != 4 || a.appliedTerm.Load() != 2 {
		t.Fatalf("applied %d term %d, want 4 and 2", a.applied.Load(), a.appliedTerm.Load())
	}
	select {
	case <-changed:
	default:
		t.Fatal("waiters were not woken")
	}
	if single := a.Apply(&raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: jsonCodec.encode(putService("c-1.0"))}); single.(*applyResponse).index != 5 {
		t.Fatalf("single Apply response %+v", single)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func TestAdapterSnapshotRoundTrip(t *testing.T) {
	a, _ := newTestAdapter(t)
	a.ApplyBatch([]*raft.Log{
		{Index: 7, Term: 3, Type: raft.LogCommand, Data: jsonCodec.encode(putService("a-1.0"))},
		{Index: 8, Term: 3, Type: raft.LogCommand, Data: jsonCodec.encode(putService("b-1.0"))},
	})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Applies after Snapshot() must not leak into it.
	a.ApplyBatch([]*raft.Log{{Index: 9, Term: 3, Type: raft.LogCommand, Data: jsonCodec.encode(putService("late-1.0"))}})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed || sink.cancelled {
		t.Fatalf("Persist: %v (closed %v cancelled %v)", err, sink.closed, sink.cancelled)
	}
	snap.Release()

	b, m := newTestAdapter(t)
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if b.applied.Load() != 8 || b.appliedTerm.Load() != 3 {
		t.Fatalf("restored applied %d term %d, want 8 and 3", b.applied.Load(), b.appliedTerm.Load())
	}
	if !m.has("a-1.0") || !m.has("b-1.0") || m.has("late-1.0") {
		t.Fatalf("restored state %+v", m.state())
	}

	corrupt := append([]byte(nil), sink.Bytes()...)
	corrupt[0] = 'X'
	if err := b.Restore(io.NopCloser(bytes.NewReader(corrupt))); err == nil {
		t.Fatal("a snapshot with a bad magic was restored")
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()[:5]))); err == nil {
		t.Fatal("a truncated snapshot header was restored")
	}
}

type failingWriterTo struct{}

func (failingWriterTo) WriteTo(io.Writer) (int64, error) { return 0, errors.New("disk full") }

func TestSnapshotPersistCancelsOnError(t *testing.T) {
	sink := &memSink{}
	err := (&fsmSnapshot{state: failingWriterTo{}, index: 3}).Persist(sink)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !sink.cancelled || sink.closed {
		t.Fatalf("Persist of a failing state: %v (cancelled %v closed %v)", err, sink.cancelled, sink.closed)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := Open(Config{}); err == nil || !strings.Contains(err.Error(), "ID is empty") {
		t.Fatalf("Open(Config{}) = %v", err)
	}
}

func gatherMetrics(t *testing.T, s *Store) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out[f.GetName()] += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[f.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[f.GetName()+"_count"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
