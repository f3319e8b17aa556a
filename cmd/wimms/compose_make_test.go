package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/launch"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/jepsen"
)

// TestMakeClusterUpSecured runs the README's compose path as a new user
// does: `make cluster-up` (certificates, image, the secured three-member
// cluster), the admin CLI over HTTPS through each member, the dashboard
// over HTTPS, `make cluster-status`, `make cluster-down`. It runs the
// repository's own Makefile and compose files, copied into a scratch
// directory so that the checkout's deploy/secrets and bin/ stay untouched;
// GO=true makes the Makefile's build step keep the binary this test built.
func TestMakeClusterUpSecured(t *testing.T) {
	composeSkipUnlessDocker(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make cluster-up test: no make on PATH")
	}
	root := composeRepoRoot(t)
	work := t.TempDir()
	for _, f := range []string{"Makefile", "Dockerfile", ".dockerignore", "docker-compose.yml", "deploy/compose-tls.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gobuild := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(work, "bin", "wimms"), "./cmd/wimms")
	gobuild.Dir = root
	gobuild.Env = launch.GoEnv("CGO_ENABLED=0")
	if out, code := testutil.Run(t, gobuild); code != 0 {
		t.Fatalf("go build ./cmd/wimms: exit status %d\n%s", code, out)
	}

	suffix := composeRandomSuffix(t)
	prefix, err := jepsen.FreeSubnetPrefix(jepsen.ComposeSubnetLow, jepsen.ComposeSubnetHigh)
	if err != nil {
		t.Fatalf("compose subnet: %v", err)
	}
	image := "wimms-make-test:" + suffix
	env := append(jepsen.ComposeEnv(),
		"COMPOSE_PROJECT_NAME=wimmsmake"+suffix,
		"WIMMS_IMAGE="+image,
		"WIMMS_SUBNET_PREFIX="+prefix,
		"WIMMS_PUBLISH_IP=127.0.0.1",
		"WIMMS_API_TOKEN=", "WIMMS_ADMIN_TOKEN=", "WIMMS1_JOIN=",
	)
	addrs := make([]string, len(composeMembers))
	for i, port := range freePorts(t, len(composeMembers)) {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		env = append(env, fmt.Sprintf("WIMMS%d_HTTP_PORT=%d", i+1, port))
	}
	makeArgs := []string{"-C", work, "GO=true", "VERSION=make-test-" + suffix}
	runMake := func(timeout time.Duration, target string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", append(makeArgs, target)...)
		cmd.Env = env
		out, code := testutil.Run(t, cmd)
		if code != 0 {
			t.Fatalf("make %s: exit status %d\n%s", target, code, out)
		}
		return out
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		down := exec.CommandContext(ctx, "docker-compose", "-f", "docker-compose.yml", "-f", "deploy/compose-tls.yml", "down", "-v", "--remove-orphans")
		down.Dir, down.Env = work, env
		if out, code := testutil.Run(t, down); code != 0 {
			t.Logf("docker-compose down -v: exit status %d: %s", code, composeFirstLine(out))
		}
		for _, img := range []string{image, "wimms:make-test-" + suffix} {
			_, _ = testutil.Run(t, exec.CommandContext(ctx, "docker", "rmi", "-f", img))
		}
	})

	runMake(8*time.Minute, "cluster-up")

	ca := filepath.Join(work, "deploy", "secrets", "ca.pem")
	bin := filepath.Join(work, "bin", "wimms")
	cli := func(member int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--addr", addrs[member], "--tls-ca", ca)...)
		cmd.Env = os.Environ()
		out, code := testutil.Run(t, cmd)
		if code != 0 {
			t.Fatalf("wimms %s via %s: exit status %d\n%s", strings.Join(args, " "), composeMembers[member], code, out)
		}
		return out
	}
	// A write through each member: followers forward over mutual TLS.
	cli(0, "service", "put", "sync-1.5", "--pattern", "{node}/1.5/{uid}")
	cli(1, "node", "add", "https://node1.example.com", "--service", "sync-1.5", "--capacity", "10")
	cli(2, "user", "allocate", "make@example.com", "--service", "sync-1.5")
	if out := cli(0, "user", "get", "make@example.com", "--service", "sync-1.5", "--consistency", "linearizable"); !strings.Contains(out, "node1.example.com") {
		t.Fatalf("the user allocated through wimms3 is not on node1 as wimms1 reads it:\n%s", out)
	}

	// The dashboard over HTTPS, trusting the CA `make certs` issued.
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", ca)
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, a := range addrs {
		resp, err := hc.Get("https://" + a + "/ui/")
		if err != nil {
			t.Fatalf("dashboard at https://%s/ui/: %v", a, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), "<html") {
			t.Fatalf("dashboard at https://%s/ui/: %d %.200s", a, resp.StatusCode, body)
		}
	}

	if out := runMake(2*time.Minute, "cluster-status"); !strings.Contains(out, "wimms3") {
		t.Fatalf("make cluster-status does not list every member:\n%s", out)
	}
	runMake(3*time.Minute, "cluster-down")
	ps := exec.Command("docker-compose", "-f", "docker-compose.yml", "-f", "deploy/compose-tls.yml", "ps", "-q")
	ps.Dir, ps.Env = work, env
	if out, code := testutil.Run(t, ps); code != 0 || strings.TrimSpace(out) != "" {
		t.Fatalf("after make cluster-down: docker-compose ps -q: exit %d, containers:\n%s", code, out)
	}
}
