package tokenserver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Setup refuses an incomplete configuration with the flag to fix and
// never the secret's value; a complete one verifies tokens the JWKS
// trusts.
func TestSetupIssuer(t *testing.T) {
	t.Setenv(EnvMasterSecret, "")
	t.Setenv(EnvMetricsHashSecret, "")
	dir := t.TempDir()
	keyFile, jwks := filepath.Join(dir, "k.pem"), filepath.Join(dir, "jwks.json")
	if n, err := WriteKeyPair("k1", keyFile, jwks, nil); err != nil || n != 1 {
		t.Fatalf("keygen: %d %v", n, err)
	}
	master := writeFile(t, "master", "do-not-print-me\n")
	hash := writeFile(t, "hash", "hash-secret\n")
	full := Setup{JWKSFile: jwks, MaxVerify: 1, MasterSecretFile: master, MetricsHashSecretFile: hash, NodeSecretMode: "master"}
	log := hclog.NewNullLogger()

	if iss, err := (&Setup{}).Issuer(log); iss != nil || err != nil {
		t.Fatalf("not enabled: %v %v", iss, err)
	}
	for name, c := range map[string]struct {
		change func(*Setup)
		want   string
	}{
		"webhook without keys": {func(s *Setup) { s.JWKSFile = ""; s.Webhook.ClientID = "c" }, "--fxa-webhook-*"},
		"no master secret":     {func(s *Setup) { s.MasterSecretFile = "" }, "--master-secret-file or $" + EnvMasterSecret},
		"missing master file":  {func(s *Setup) { s.MasterSecretFile = filepath.Join(dir, "none") }, "--master-secret-file"},
		"unknown mode":         {func(s *Setup) { s.NodeSecretMode = "both" }, "--node-secret-mode"},
		"no hash secret":       {func(s *Setup) { s.MetricsHashSecretFile = "" }, "--metrics-hash-secret-file or $" + EnvMetricsHashSecret},
		"no verify slots":      {func(s *Setup) { s.MaxVerify = 0 }, "--fxa-verify-concurrency 0"},
		"bad JWKS file":        {func(s *Setup) { s.JWKSFile = master }, "--fxa-jwks-file"},
		"half a webhook":       {func(s *Setup) { s.Webhook.ClientID = "c" }, "both a client id and an issuer"},
	} {
		s := full
		c.change(&s)
		iss, err := s.Issuer(log)
		if err == nil || iss != nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "do-not-print-me") {
			t.Errorf("%s: %v %v, want an error naming %q", name, iss, err, c.want)
		}
	}

	iss, err := full.Issuer(log)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MintTestToken(keyFile, "abc", fxa.SyncScope, 7, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := iss.Authenticate(context.Background(), tok); err != nil || id != (fxa.Identity{FxaUID: "abc", Generation: 7}) {
		t.Fatalf("authenticate: %+v %v", id, err)
	}
	if iss.EmailDomain() != DefaultEmailDomain || iss.MaxDuration() != DefaultTokenDuration {
		t.Fatalf("defaults: %q %v", iss.EmailDomain(), iss.MaxDuration())
	}
	t.Setenv(EnvMasterSecret, "a,b")
	m, err := (&Setup{NodeSecretMode: "derived"}).Minter()
	if err != nil || len(m.MasterSecrets) != 2 || m.Mode != "derived" {
		t.Fatalf("minter from the environment: %+v %v", m, err)
	}
}

// The helpers never overwrite a private key or a secret, and keep older
// keys trusted across a rotation.
func TestToolsRefuseOverwrite(t *testing.T) {
	dir := t.TempDir()
	k1, k2, jwks := filepath.Join(dir, "k1.pem"), filepath.Join(dir, "k2.pem"), filepath.Join(dir, "jwks.json")
	if _, err := WriteKeyPair("k1", k1, jwks, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(k1)
	if _, err := WriteKeyPair("again", k1, jwks, nil); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("overwrote a key: %v", err)
	}
	if after, _ := os.ReadFile(k1); string(after) != string(before) {
		t.Fatal("the key file changed")
	}
	if n, err := WriteKeyPair("k2", k2, jwks, []string{k1}); err != nil || n != 2 {
		t.Fatalf("rotation: %d %v", n, err)
	}
	keys, err := fxa.NewJWKSFile(jwks)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{k1, k2} {
		tok, err := MintTestToken(k, "abc", fxa.SyncScope, 0, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (&fxa.Verifier{Keys: keys}).Verify(context.Background(), tok); err != nil {
			t.Fatalf("%s after rotation: %v", k, err)
		}
	}
	if _, err := MintTestToken(k1, "", fxa.SyncScope, 0, time.Hour, time.Now()); err == nil {
		t.Fatal("minted a token without --sub")
	}
	secret := filepath.Join(dir, "s")
	if err := WriteSecretFile(secret); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(secret)
	if err != nil || len(strings.TrimSpace(string(b))) != 64 {
		t.Fatalf("secret %q %v", b, err)
	}
	if err := WriteSecretFile(secret); err == nil {
		t.Fatal("overwrote a secret")
	}
}
