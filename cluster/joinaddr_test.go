package cluster

import (
	"strings"
	"testing"
)

func TestNormalizeJoinAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the normalized address, when in is accepted
		err  string // what the error must mention, when in is refused
	}{
		{in: "10.0.0.1:8080", want: "10.0.0.1:8080"},
		{in: " wimms1:8080 ", want: "wimms1:8080"},
		{in: "http://10.0.0.1:8080", want: "10.0.0.1:8080"},
		{in: "http://10.0.0.1:8080/", want: "10.0.0.1:8080"},
		{in: "https://wimms1:8443", want: "wimms1:8443"},
		{in: "http://[::1]:8080", want: "[::1]:8080"},
		{in: "[fe80::1]:8082", want: "[fe80::1]:8082"},
		{in: "", err: "empty"},
		{in: "10.0.0.1", err: "host:port"},
		{in: "http://10.0.0.1", err: "explicit port"},
		{in: "ftp://10.0.0.1:21", err: "scheme"},
		{in: "http://10.0.0.1:8080/v1", err: "path"},
		{in: "http://u:p@10.0.0.1:8080", err: "credentials"},
		{in: "http://10.0.0.1:8080/?a=b", err: "query"},
		{in: ":8080", err: "host"},
	} {
		got, err := NormalizeJoinAddr(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("NormalizeJoinAddr(%q) error %v, want one mentioning %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("NormalizeJoinAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
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
