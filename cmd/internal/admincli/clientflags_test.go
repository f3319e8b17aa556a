package admincli

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/wimms-dev/wimms/internal/testutil"
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
		f := ClientFlags{Addr: c.addr, tls: TLSFlags{CA: c.ca}}
		got, err := f.baseURL()
		if c.err != "" {
			var exit ExitError
			if !errors.As(err, &exit) || exit.Code != ExitUsage || !strings.Contains(exit.Msg, c.err) {
				t.Errorf("%q: error %v, want a usage error containing %q", c.addr, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.addr, got, err, c.want)
		}
	}
}

// runRoot runs the admin commands in-process under a root command set up
// as the binary's is (cmd/wimms adds the same constructors to it).
func runRoot(args ...string) (string, error) {
	var out bytes.Buffer
	root := &cobra.Command{Use: "wimms", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(NewServiceCmd(), NewNodeCmd(), NewUserCmd(), NewUsersCmd(), NewRecordsCmd(), NewEventCmd(),
		NewStatusCmd(), NewHealthCmd(), NewTLSCmd(), NewCheckCmd())
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
	ca := startTLS(t, ts)
	defer ts.Close()
	hostPort := strings.TrimPrefix(ts.URL, "https://")
	tokenFile := testutil.TempFile(t, "token", []byte("  from-file\n"))

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
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != ExitUnreachable || !strings.Contains(exit.Msg, "certificate") {
		t.Fatalf("without --tls-ca: %v, want no answer because of the certificate", err)
	}

	empty := testutil.TempFile(t, "empty.pem", nil)
	_, err = runRoot("service", "list", "--addr", hostPort, "--tls-ca", empty)
	if !errors.As(err, &exit) || exit.Code != ExitUsage || !strings.Contains(exit.Msg, "no PEM certificate") {
		t.Fatalf("empty CA file: %v", err)
	}
}

// startTLS starts ts over TLS, quiet about the handshakes a test makes it
// refuse, and returns a CA file that trusts it.
func startTLS(t *testing.T, ts *httptest.Server) (caFile string) {
	t.Helper()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	return testutil.TempFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
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
	file := testutil.TempFile(t, "token", []byte("file-token\n"))
	if _, err := runRoot("service", "list", "--api-token-file", file); err != nil || gotAuth != "Bearer file-token" {
		t.Fatalf("a token file on the command line does not win over WIMMS_API_TOKEN: %q, %v", gotAuth, err)
	}
}

// fakeMember answers what status and health ask a member: /healthz, /readyz
// and GET /v1/cluster (a one-member cluster). auth records the last
// Authorization header.
func fakeMember(t *testing.T, auth *string) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*auth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/healthz", "/readyz":
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		case "/v1/cluster":
			w.Header().Set("Content-Type", "application/json")
			m := `{"id":"m1","raft_addr":"127.0.0.1:9","http_addr":"127.0.0.1:8","zone":"z1","voter":true,"state":"leader","last_contact_ms":0}`
			_, _ = w.Write([]byte(`{"leader":` + m + `,"term":2,"commit_index":5,"applied_index":5,"members":[` + m + `]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

// unsetEnv removes the variables for the test and restores them after it.
func unsetEnv(t *testing.T, names ...string) {
	for _, n := range names {
		t.Setenv(n, "")
		_ = os.Unsetenv(n)
	}
}

// status and health take the connection flags of every client command.
// --http-addr, their old name of --addr, still works (hidden, with a
// deprecation note), and WIMMS_HTTP_ADDR, the member's own listen address,
// is the last place they look: the image's HEALTHCHECK runs `wimms health`
// with no address in the member's environment.
func TestStatusAndHealthAddress(t *testing.T) {
	var auth string
	ts := fakeMember(t, &auth)
	ts.Start()
	live := strings.TrimPrefix(ts.URL, "http://")
	const dead = "127.0.0.1:1" // nothing listens: reaching it fails the probe
	cases := []struct {
		name             string
		args             []string
		addrEnv, httpEnv string // WIMMS_ADDR, WIMMS_HTTP_ADDR; "" is unset
	}{
		{name: "--addr", args: []string{"--addr", live}, addrEnv: dead, httpEnv: dead},
		{name: "--addr as a URL", args: []string{"--addr", ts.URL}},
		{name: "--http-addr", args: []string{"--http-addr", live}, addrEnv: dead, httpEnv: dead},
		{name: "--addr wins over --http-addr", args: []string{"--http-addr", dead, "--addr", live}},
		{name: "WIMMS_ADDR", addrEnv: live, httpEnv: dead},
		{name: "WIMMS_HTTP_ADDR", httpEnv: live},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			unsetEnv(t, "WIMMS_ADDR", "WIMMS_HTTP_ADDR", "WIMMS_API_TOKEN", "WIMMS_TLS_CA")
			if c.addrEnv != "" {
				t.Setenv("WIMMS_ADDR", c.addrEnv)
			}
			if c.httpEnv != "" {
				t.Setenv("WIMMS_HTTP_ADDR", c.httpEnv)
			}
			out, err := runRoot(append([]string{"health"}, c.args...)...)
			if err != nil || !strings.HasSuffix(out, "/healthz: ok\n") || strings.Contains(out, dead) {
				t.Fatalf("health: %v, output %q", err, out)
			}
			if deprecated := strings.Contains(out, "--http-addr has been deprecated, use --addr"); deprecated != (len(c.args) > 0 && c.args[0] == "--http-addr") {
				t.Errorf("health: deprecation note %v in %q", deprecated, out)
			}
			out, err = runRoot(append([]string{"status"}, c.args...)...)
			if err != nil || !strings.Contains(out, "leader: m1  term: 2") {
				t.Fatalf("status: %v, output %q", err, out)
			}
		})
	}

	t.Run("status sends the API token and prints JSON", func(t *testing.T) {
		unsetEnv(t, "WIMMS_ADDR", "WIMMS_HTTP_ADDR", "WIMMS_TLS_CA")
		t.Setenv("WIMMS_API_TOKEN", "env-token")
		out, err := runRoot("status", "--addr", live, "--json")
		if err != nil || !strings.HasPrefix(out, "{\n  \"leader\": {\n    \"id\": \"m1\"") || auth != "Bearer env-token" {
			t.Fatalf("status --json: %v, auth %q, output %q", err, auth, out)
		}
	})

	t.Run("a member that does not answer", func(t *testing.T) {
		unsetEnv(t, "WIMMS_ADDR", "WIMMS_HTTP_ADDR", "WIMMS_TLS_CA")
		_, err := runRoot("health", "--ready", "--addr", dead)
		var exit ExitError
		if !errors.As(err, &exit) || exit.Code != 1 || !strings.HasPrefix(exit.Msg, dead+"/readyz: ") {
			t.Fatalf("health of a dead member: %v", err)
		}
		_, err = runRoot("status", "--addr", dead)
		if !errors.As(err, &exit) || exit.Code != ExitUnreachable || !strings.HasPrefix(exit.Msg, "cluster status of "+dead+": ") {
			t.Fatalf("status of a dead member: %v", err)
		}
	})

	t.Run("--http-addr is hidden", func(t *testing.T) {
		for _, cmd := range []string{"health", "status"} {
			out, err := runRoot(cmd, "--help")
			if err != nil || strings.Contains(out, "http-addr") || !strings.Contains(out, "--addr string") {
				t.Errorf("%s --help: %v\n%s", cmd, err, out)
			}
		}
	})
}

// Over TLS the image's probe dials loopback: a member certificate names
// 127.0.0.1, not the 0.0.0.0 of WIMMS_HTTP_ADDR.
func TestHealthProbesLoopbackOverTLS(t *testing.T) {
	var auth string
	ts := fakeMember(t, &auth)
	ca := startTLS(t, ts)
	_, port, _ := strings.Cut(strings.TrimPrefix(ts.URL, "https://"), ":")
	unsetEnv(t, "WIMMS_ADDR", "WIMMS_API_TOKEN")
	t.Setenv("WIMMS_HTTP_ADDR", "0.0.0.0:"+port)
	t.Setenv("WIMMS_TLS_CA", ca)
	out, err := runRoot("health", "--timeout", "3s")
	if err != nil || out != "127.0.0.1:"+port+"/healthz: ok\n" {
		t.Fatalf("health in a TLS member's environment: %v, output %q", err, out)
	}
}
