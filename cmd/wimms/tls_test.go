package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/tlsconf"
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

func TestToolTLSFlags(t *testing.T) {
	if cfg, err := (toolTLSFlags{}).config(); cfg != nil || err != nil {
		t.Fatalf("no flags: %v, %v; want plain HTTP", cfg, err)
	}
	if (toolTLSFlags{}).scheme() != "http://" {
		t.Fatal("plain scheme")
	}
	if _, err := (toolTLSFlags{cert: "x.pem", key: "x-key.pem"}).config(); err == nil {
		t.Fatal("a client certificate without --tls-ca was accepted")
	}
	caFile, issued := newCAWithCert(t, "op")
	f := toolTLSFlags{ca: caFile, cert: issued.CertFile, key: issued.KeyFile}
	cfg, err := f.config()
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 || f.scheme() != "https://" {
		t.Fatalf("config: %+v, %v", cfg, err)
	}
	if _, err := (toolTLSFlags{ca: issued.KeyFile}).config(); err == nil {
		t.Fatal("a key file was accepted as a CA")
	}
}

// newCAWithCert creates a CA of its own in a temporary directory and
// issues it a certificate named name for 127.0.0.1; it returns the CA's
// certificate file and the issued pair.
func newCAWithCert(t *testing.T, name string) (caFile string, issued tlsconf.Issued) {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsconf.CreateCA(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	issued, err := tlsconf.CreateCert(dir, tlsconf.CertRequest{Role: tlsconf.RoleMember, Name: name, Hosts: []string{"127.0.0.1"}}, dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, tlsconf.CACertFile), issued
}
