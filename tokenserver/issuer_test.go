package tokenserver

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/tokenserver/fxa"
	"github.com/wimms-dev/wimms/tokenserver/tokenlib"
)

func TestLoadSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(path, []byte("# old\n aaaa \n\nbbbb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSecrets(path, "UNUSED_ENV")
	if err != nil || !slices.Equal(got, []string{"aaaa", "bbbb"}) {
		t.Fatalf("%v %v", got, err)
	}
	t.Setenv("WIMMS_TEST_SECRET", "cc,dd")
	if got, err := LoadSecrets("", "WIMMS_TEST_SECRET"); err != nil || !slices.Equal(got, []string{"cc", "dd"}) {
		t.Fatalf("env: %v %v", got, err)
	}
	if got, err := LoadSecrets("", "WIMMS_TEST_UNSET"); err != nil || got != nil {
		t.Fatalf("unset: %v %v", got, err)
	}
	empty := filepath.Join(t.TempDir(), "e")
	_ = os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	if _, err := LoadSecrets(empty, ""); err == nil {
		t.Fatal("accepted a file without a secret")
	}
	if _, err := LoadSecrets(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Fatal("accepted a missing file")
	}
}

func TestIssue(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := &fxa.Verifier{Keys: fxa.StaticKeys{}}
	if _, err := New(Config{Verifier: v, Mode: tokenlib.SecretModeMaster, MetricsHashSecret: []byte("h")}); err == nil {
		t.Fatal("accepted no master secret")
	}
	if _, err := New(Config{Verifier: v, MasterSecrets: []string{"m"}, Mode: "x", MetricsHashSecret: []byte("h")}); err == nil {
		t.Fatal("accepted an unknown mode")
	}
	master := "00112233445566778899aabbccddeeff"
	iss, err := New(Config{Verifier: v, MasterSecrets: []string{"older", master}, Mode: tokenlib.SecretModeDerived,
		MetricsHashSecret: []byte("h"), Duration: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for req, want := range map[time.Duration]time.Duration{0: time.Hour, time.Minute: time.Minute, 2 * time.Hour: time.Hour} {
		tok, err := iss.Issue(Grant{Node: "https://n1", UID: 5, FxaUID: "u", FxaKid: "k", Duration: req})
		if err != nil {
			t.Fatal(err)
		}
		nodeSecret, _ := tokenlib.NodeSecret(tokenlib.SecretModeDerived, master, "https://n1")
		p, _, err := tokenlib.ParseToken(tok.ID, nodeSecret)
		if err != nil || tok.Duration != want || p.Expires != float64(now.Add(want).Unix()) || p.UID != 5 || p.HashedFxaUID != tok.HashedFxaUID {
			t.Fatalf("requested %v: %+v %+v %v", req, tok, p, err)
		}
	}
}
