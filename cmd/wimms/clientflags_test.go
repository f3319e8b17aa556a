package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientFlagsBaseURL(t *testing.T) {
	cases := []struct {
		addr, ca, want, err string
	}{
		{addr: "127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{addr: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080"},
		{addr: "https://wimms.example.com", want: "https://wimms.example.com"},
		{addr: "127.0.0.1:8443", ca: "ca.pem", want: "https://127.0.0.1:8443"},
		{addr: "http://127.0.0.1:8443", ca: "ca.pem", err: "plain http but --tls-ca is set"},
		{addr: "ftp://127.0.0.1:21", err: "the scheme must be http or https"},
		{addr: "http://127.0.0.1:8080/v1", err: "without a path"},
		{addr: "http://127.0.0.1:8080?x=1", err: "without a path"},
		{addr: " ", err: "--addr is empty"},
	}
	for _, c := range cases {
		f := clientFlags{addr: c.addr, tls: toolTLSFlags{ca: c.ca}}
		got, err := f.baseURL()
		if c.err != "" {
			var exit exitError
			if !errors.As(err, &exit) || exit.code != exitUsage || !strings.Contains(exit.msg, c.err) {
				t.Errorf("%q: error %v, want a usage error containing %q", c.addr, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.addr, got, err, c.want)
		}
	}
}

// runRoot runs the wimms command line in-process.
func runRoot(args ...string) (string, error) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// --tls-ca makes the admin commands talk HTTPS to a member whose
// certificate that CA signed; without it the same member is refused.
func TestAdminCommandsVerifyWithTLSCA(t *testing.T) {
	var gotAuth string
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/v1/services" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"services":[{"id":1,"service":"sync-1.5","pattern":"{node}/1.5/{uid}","release_rate":0.1,"allow_new_users":true,"spread":1}]}`))
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	ts.StartTLS()
	defer ts.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(ts.URL, "https://")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := runRoot("service", "list", "--addr", hostPort, "--tls-ca", ca, "--api-token-file", tokenFile)
	if err != nil {
		t.Fatalf("with --tls-ca: %v", err)
	}
	if !strings.Contains(out, "sync-1.5") || !strings.Contains(out, "RELEASE RATE") {
		t.Fatalf("table: %q", out)
	}
	if gotAuth != "Bearer from-file" {
		t.Fatalf("token from file sent as %q", gotAuth)
	}

	_, err = runRoot("service", "list", "--addr", ts.URL)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != exitUnreachable || !strings.Contains(exit.msg, "certificate") {
		t.Fatalf("without --tls-ca: %v, want no answer because of the certificate", err)
	}

	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runRoot("service", "list", "--addr", hostPort, "--tls-ca", empty)
	if !errors.As(err, &exit) || exit.code != exitUsage || !strings.Contains(exit.msg, "no PEM certificate") {
		t.Fatalf("empty CA file: %v", err)
	}
}

// WIMMS_<FLAG> sets the connection flags not given, and only those.
func TestClientFlagsFromEnvironment(t *testing.T) {
	var gotAuth string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		_, _ = w.Write([]byte(`{"services":[]}`))
	}))
	defer ts.Close()
	t.Setenv("WIMMS_ADDR", ts.URL)
	t.Setenv("WIMMS_API_TOKEN", "env-token")
	t.Setenv("WIMMS_JSON", "true") // not a connection flag: ignored
	out, err := runRoot("service", "list")
	if err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Bearer env-token" || !strings.HasPrefix(out, "ID") {
		t.Fatalf("auth %q, output %q", gotAuth, out)
	}
	if _, err := runRoot("service", "list", "--api-token", "flag-token"); err != nil || gotAuth != "Bearer flag-token" {
		t.Fatalf("a flag does not win over its variable: %q, %v", gotAuth, err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runRoot("service", "list", "--api-token-file", file); err != nil || gotAuth != "Bearer file-token" {
		t.Fatalf("a token file on the command line does not win over WIMMS_API_TOKEN: %q, %v", gotAuth, err)
	}
}
