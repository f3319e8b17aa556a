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
	dir := t.TempDir()
	if _, err := tlsconf.CreateCA(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	issued, err := tlsconf.CreateCert(dir, tlsconf.CertRequest{Name: "op", Hosts: []string{"127.0.0.1"}}, dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := toolTLSFlags{ca: filepath.Join(dir, tlsconf.CACertFile), cert: issued.CertFile, key: issued.KeyFile}
	cfg, err := f.config()
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 || f.scheme() != "https://" {
		t.Fatalf("config: %+v, %v", cfg, err)
	}
	if _, err := (toolTLSFlags{ca: issued.KeyFile}).config(); err == nil {
		t.Fatal("a key file was accepted as a CA")
	}
}
