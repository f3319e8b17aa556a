package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

// The helpers make a key, a JWKS that trusts it, and tokens it signs.
func TestTokenServerHelpers(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("wimms %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	key, jwks := filepath.Join(dir, "k.pem"), filepath.Join(dir, "jwks.json")
	run("tokenserver", "keygen", "--kid", "k1", "--key-out", key, "--jwks-out", jwks)
	if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", info, err)
	}
	tok := strings.TrimSpace(run("tokenserver", "jwt", "--key", key, "--sub", "abc", "--generation", "7"))
	keys, err := fxa.NewJWKSFile(jwks)
	if err != nil {
		t.Fatal(err)
	}
	id, err := (&fxa.Verifier{Keys: keys}).Verify(context.Background(), tok)
	if err != nil || id != (fxa.Identity{FxaUID: "abc", Generation: 7}) {
		t.Fatalf("minted token: %+v %v", id, err)
	}
	// Rotation: a new key, the old one kept in the JWKS.
	key2 := filepath.Join(dir, "k2.pem")
	run("tokenserver", "keygen", "--kid", "k2", "--key-out", key2, "--jwks-out", jwks, "--also", key)
	for _, k := range []string{key, key2} {
		tok := strings.TrimSpace(run("tokenserver", "jwt", "--key", k, "--sub", "abc"))
		if _, err := (&fxa.Verifier{Keys: keys}).Verify(context.Background(), tok); err != nil {
			t.Fatalf("%s after rotation: %v", k, err)
		}
	}
	root := newRootCmd()
	root.SetArgs([]string{"tokenserver", "keygen", "--key-out", key, "--jwks-out", jwks})
	root.SetOut(&bytes.Buffer{})
	if err := root.Execute(); err == nil {
		t.Fatal("keygen overwrote a private key")
	}
	secret := filepath.Join(dir, "s")
	run("tokenserver", "secret", "--out", secret)
	if b, err := os.ReadFile(secret); err != nil || len(strings.TrimSpace(string(b))) != 64 {
		t.Fatalf("secret file %q %v", b, err)
	}
}

// A member asked to serve tokens without the secrets to sign them refuses
// to start, and says which setting is missing without echoing any value.
func TestServerRefusesTokenServerWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	k, err := fxa.GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	jwks := testutil.TempFile(t, "jwks.json", fxa.JWKS(k))
	masterFile := testutil.TempFile(t, "master", []byte("do-not-print-me\n"))
	p := freePorts(t, 3)
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--fxa-jwks-file", jwks}, "master secret is required"},
		{[]string{"--fxa-jwks-file", jwks, "--master-secret-file", masterFile}, "metrics hash secret is required"},
		{[]string{"--fxa-jwks-file", jwks, "--master-secret-file", masterFile, "--metrics-hash-secret-file", masterFile, "--node-secret-mode", "both"}, "node-secret-mode"},
		{[]string{"--fxa-jwks-file", filepath.Join(dir, "missing.json"), "--master-secret-file", masterFile, "--metrics-hash-secret-file", masterFile}, "--fxa-jwks-file"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"),
			"--http-addr", "127.0.0.1:" + strconv.Itoa(p[0]), "--raft-addr", "127.0.0.1:" + strconv.Itoa(p[1]), "--gossip-addr", "127.0.0.1:" + strconv.Itoa(p[2])}, c.extra...)
		// testutil.WimmsContext leaves out the caller's WIMMS_MASTER_SECRET and
		// WIMMS_METRICS_HASH_SECRET, which would supply the missing secrets.
		out, code := testutil.Run(t, testutil.WimmsContext(ctx, t, args...))
		cancel()
		if code == 0 || !strings.Contains(out, c.want) || strings.Contains(out, "do-not-print-me") {
			t.Fatalf("%v: exit status %d, output %s", c.extra, code, out)
		}
	}
}
