package cluster

import (
	"strings"
	"testing"
)

func TestNormalizeJoinAddr(t *testing.T) {
	ok := map[string]string{
		"10.0.0.1:8080":         "10.0.0.1:8080",
		" wimms1:8080 ":         "wimms1:8080",
		"http://10.0.0.1:8080":  "10.0.0.1:8080",
		"http://10.0.0.1:8080/": "10.0.0.1:8080",
		"https://wimms1:8443":   "wimms1:8443",
		"http://[::1]:8080":     "[::1]:8080",
		"[fe80::1]:8082":        "[fe80::1]:8082",
	}
	for in, want := range ok {
		got, err := NormalizeJoinAddr(in)
		if err != nil || got != want {
			t.Errorf("NormalizeJoinAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                          "empty",
		"10.0.0.1":                  "host:port",
		"http://10.0.0.1":           "explicit port",
		"ftp://10.0.0.1:21":         "scheme",
		"http://10.0.0.1:8080/v1":   "path",
		"http://u:p@10.0.0.1:8080":  "credentials",
		"http://10.0.0.1:8080/?a=b": "query",
		":8080":                     "host",
	}
	for in, want := range bad {
		_, err := NormalizeJoinAddr(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeJoinAddr(%q) error %v, want one mentioning %q", in, err, want)
		}
	}
}

func TestConfigNormalizesJoinURLs(t *testing.T) {
	cfg := Config{ID: "m1", HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2", GossipBind: "127.0.0.1:3",
		Join: []string{"http://127.0.0.1:8080", "127.0.0.2:8080"}}
	if err := cfg.normalize(); err != nil {
		t.Fatalf("normalize: %v", err)
	}
	if strings.Join(cfg.Join, ",") != "127.0.0.1:8080,127.0.0.2:8080" {
		t.Fatalf("join %v", cfg.Join)
	}
	cfg.Join = []string{"http://127.0.0.1"}
	if err := cfg.normalize(); err == nil {
		t.Fatal("a join URL without a port was accepted")
	}
}
