package admincli

import (
	"testing"

	"github.com/wimms-dev/wimms/internal/testutil"
)

func TestLoopbackIfUnspecified(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:8080":    "127.0.0.1:8080",
		":8080":           "127.0.0.1:8080",
		"[::]:8080":       "[::1]:8080",
		"10.0.0.1:8080":   "10.0.0.1:8080",
		"wimms1:8080":     "wimms1:8080",
		"not an address":  "not an address",
		"127.0.0.1:18080": "127.0.0.1:18080",
	} {
		if got := loopbackIfUnspecified(in); got != want {
			t.Errorf("loopbackIfUnspecified(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	if cfg, err := (TLSFlags{}).Config(); cfg != nil || err != nil {
		t.Fatalf("no flags: %v, %v; want plain HTTP", cfg, err)
	}
	if (TLSFlags{}).scheme() != "http://" {
		t.Fatal("plain scheme")
	}
	if _, err := (TLSFlags{Cert: "x.pem", Key: "x-key.pem"}).Config(); err == nil {
		t.Fatal("a client certificate without --tls-ca was accepted")
	}
	caFile, issued := testutil.CAWithCert(t, "op")
	f := TLSFlags{CA: caFile, Cert: issued.CertFile, Key: issued.KeyFile}
	cfg, err := f.Config()
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 || f.scheme() != "https://" {
		t.Fatalf("config: %+v, %v", cfg, err)
	}
	if _, err := (TLSFlags{CA: issued.KeyFile}).Config(); err == nil {
		t.Fatal("a key file was accepted as a CA")
	}
}
