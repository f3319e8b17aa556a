package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRunAllocTrivialServer measures the load generator's own cost
// per operation against a server that does nothing, i.e. the ceiling above
// which wimms bench itself, not the cluster, would be the bottleneck.
func BenchmarkRunAllocTrivialServer(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Wimms-Member", "m1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"uid":1}`)
	}))
	defer srv.Close()
	b.ReportAllocs()
	s, err := Run(context.Background(), Config{
		Addrs: []string{hostOf(srv.URL)}, Workload: WorkloadAlloc, Clients: 16, Ops: int64(b.N),
	})
	if err != nil {
		b.Fatal(err)
	}
	if s.OK != int64(b.N) {
		b.Fatalf("ok %d of %d", s.OK, b.N)
	}
	b.ReportMetric(s.Throughput, "ops/s")
}
